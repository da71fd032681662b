#!/usr/bin/env bash
# Builds the container images of the real-cluster tests and saves them into
# one archive that every node's containerd imports (no registry anywhere):
# FROM-scratch images of kube-apiserver, kube-controller-manager,
# kube-scheduler and etcd (the binaries from build-k8s.sh), a pause image
# (./pause), and hapod's image under two names: as built, and retagged as
# the "new" image of the upgrade test.
#
#   images.sh CACHE K8S_VERSION ETCD_VERSION REPO HAPOD_IMAGE HAPOD_IMAGE_NEW
#
# Run from the repository root. Prints the archive's path on stdout. The
# archive is cached under $CACHE/images, keyed by the versions and hapod's
# image ID, so a warm run only checks that it exists; older archives are
# removed.
set -euo pipefail
cache=${1:?cache dir}; k8s=${2:?kubernetes version}; etcd=${3:?etcd version}
repo=${4:?image repository}; hapod=${5:?hapod image}; hapod_new=${6:?new hapod image}
GO=${GO:-go}
CONTAINER=${CONTAINER:-podman}
# kubeadm's own tags: constants.PauseVersion and DefaultEtcdVersion of the release.
pause_tag=${PAUSE_VERSION:-3.10.2}
etcd_tag=${etcd#v}-0
bin=$cache/bin/$k8s
[ -f "$bin/.complete-etcd-$etcd" ] || { echo "images.sh: no binaries in $bin: run build-k8s.sh first" >&2; exit 1; }

hid=$($CONTAINER image inspect --format '{{.Id}}' "$hapod")
dir=$cache/images
mkdir -p "$dir"
out=$dir/k8s-$k8s-etcd-$etcd_tag-pause-$pause_tag-hapod-${hid:0:12}.tar
if [ -f "$out" ]; then echo "$out"; exit 0; fi

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

# scratch_image NAME TAG BINARY...: the binaries in /usr/local/bin, PATH set
# (kubeadm's manifests call them by name), an empty /tmp.
scratch_image() {
  local ref=$repo/$1:$2; shift 2
  local ctx=$work/ctx-${ref//[\/:]/_}
  mkdir -p "$ctx/bin" "$ctx/tmp"
  cp "$@" "$ctx/bin/"
  printf 'FROM scratch\nCOPY bin/ /usr/local/bin/\nCOPY tmp /tmp\nENV PATH=/usr/local/bin\n' > "$ctx/Containerfile"
  $CONTAINER build -q -t "$ref" -f "$ctx/Containerfile" "$ctx" >/dev/null
  refs+=("$ref")
}
refs=()
for c in kube-apiserver kube-controller-manager kube-scheduler; do
  scratch_image "$c" "$k8s" "$bin/$c"
done
scratch_image etcd "$etcd_tag" "$bin/etcd"

pctx=$work/ctx-pause
mkdir -p "$pctx"
CGO_ENABLED=0 $GO build -trimpath -ldflags '-s -w' -o "$pctx/pause" ./e2e/kubeadm/pause
printf 'FROM scratch\nCOPY pause /pause\nENTRYPOINT ["/pause"]\n' > "$pctx/Containerfile"
$CONTAINER build -q -t "$repo/pause:$pause_tag" -f "$pctx/Containerfile" "$pctx" >/dev/null
refs+=("$repo/pause:$pause_tag")

$CONTAINER tag "$hapod" "$hapod_new"
refs+=("$hapod" "$hapod_new")

rm -f "$dir"/*.tar "$dir"/*.tar.tmp
$CONTAINER save -q -m --format docker-archive -o "$out.tmp" "${refs[@]}"
mv "$out.tmp" "$out"
echo "$out"
