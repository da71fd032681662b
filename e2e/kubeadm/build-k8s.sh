#!/usr/bin/env bash
# Builds the pinned Kubernetes binaries and etcd for the real-cluster tests
# from the Go module proxy, in a scratch module OUTSIDE the repo (hapod's own
# module never imports k8s.io/kubernetes). Everything (module cache, build
# cache, binaries) lives under $CACHE, so a second run takes seconds.
#
#   build-k8s.sh CACHE K8S_VERSION ETCD_VERSION
#
# Output: $CACHE/bin/$K8S_VERSION/{kubeadm,kubelet,kube-apiserver,
# kube-controller-manager,kube-scheduler,kubectl,etcd}; a stamp file marks a
# complete set.
set -euo pipefail
cache=${1:?cache dir}; k8s=${2:?kubernetes version}; etcd=${3:?etcd version}
GO=${GO:-go}
bin=$cache/bin/$k8s
stamp=$bin/.complete-etcd-$etcd
if [ -f "$stamp" ]; then echo "kubernetes $k8s + etcd $etcd: cached in $bin"; exit 0; fi

export GOMODCACHE=$cache/gomod GOCACHE=$cache/gocache GOFLAGS=-mod=mod CGO_ENABLED=0
export GOTOOLCHAIN=local
mkdir -p "$bin"

# Kubernetes: require the release, replace each staging module (they point at
# ./staging/... in kubernetes' own go.mod) with its v0.X.Y tag.
mod=$cache/src/kubernetes-$k8s
mkdir -p "$mod"
staging_tag=v0.${k8s#v1.}
{
  echo "module hapod.test/k8sbuild"
  echo "go 1.26"
  echo "require k8s.io/kubernetes $k8s"
} > "$mod/go.mod"
(cd "$mod" && $GO mod download -json "k8s.io/kubernetes@$k8s" >/dev/null)
kmod=$GOMODCACHE/cache/download/k8s.io/kubernetes/@v/$k8s.mod
grep -E '^\s+k8s\.io/[a-z0-9-]+ => \./staging/' "$kmod" | awk -v t="$staging_tag" '{print "replace " $1 " => " $1 " " t}' >> "$mod/go.mod"
cat > "$mod/tools.go" <<'GO'
//go:build tools

package k8sbuild

import (
	_ "k8s.io/kubernetes/cmd/kube-apiserver"
	_ "k8s.io/kubernetes/cmd/kube-controller-manager"
	_ "k8s.io/kubernetes/cmd/kube-scheduler"
	_ "k8s.io/kubernetes/cmd/kubeadm"
	_ "k8s.io/kubernetes/cmd/kubectl"
	_ "k8s.io/kubernetes/cmd/kubelet"
)
GO
(cd "$mod" && $GO mod tidy -e >/dev/null 2>&1 || true)
minor=${k8s#v1.}; minor=${minor%%.*}
date=$(date -u +%Y-%m-%dT%H:%M:%SZ)
ld="-s -w"
for p in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
  ld="$ld -X $p.gitVersion=$k8s -X $p.gitMajor=1 -X $p.gitMinor=$minor -X $p.gitCommit=0000000000000000000000000000000000000000 -X $p.gitTreeState=clean -X $p.buildDate=$date"
done
(cd "$mod" && $GO build -trimpath -ldflags "$ld" -o "$bin/" \
  k8s.io/kubernetes/cmd/kubeadm k8s.io/kubernetes/cmd/kubelet \
  k8s.io/kubernetes/cmd/kube-apiserver k8s.io/kubernetes/cmd/kube-controller-manager \
  k8s.io/kubernetes/cmd/kube-scheduler k8s.io/kubernetes/cmd/kubectl)

# etcd: go.etcd.io/etcd/server/v3 is itself package main.
emod=$cache/src/etcd-$etcd
mkdir -p "$emod"
printf 'module hapod.test/etcdbuild\ngo 1.26\nrequire go.etcd.io/etcd/server/v3 %s\n' "$etcd" > "$emod/go.mod"
(cd "$emod" && $GO build -trimpath -ldflags "-s -w" -o "$bin/etcd" go.etcd.io/etcd/server/v3)
touch "$stamp"
echo "kubernetes $k8s + etcd $etcd: built in $bin"
