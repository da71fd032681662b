# hapod — see README.md. `make test` is what CI runs (as root, after .ci/run
# installed keepalived, haproxy, dnsmasq, tshark and podman).

SHELL    := /bin/bash
.SHELLFLAGS := -eo pipefail -c
# go from PATH, else where the official tarball puts it: sudo's secure_path
# (`sudo make demo`, `sudo make e2e`) lacks /usr/local/go/bin.
GO       ?= $(or $(shell command -v go 2>/dev/null),$(wildcard /usr/local/go/bin/go),go)
# A release is a tag vMAJOR.MINOR.PATCH (CHANGELOG.md); any other tree gets
# git describe's name for it (v1.2.3-4-gabcdef0, ...-dirty), which hapod
# reports as not a release.
VERSION  ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
IMAGE    ?= localhost/hapod:$(VERSION)
LDFLAGS  := -s -w -X github.com/hapod/hapod/internal/cli.Version=$(VERSION)
BIN      := bin/hapod
# Release artefacts: static binaries, SHA256SUMS and the image archive.
DIST     ?= dist
ARCHES   := amd64 arm64
HOSTARCH := $(shell $(GO) env GOARCH)
BINARIES := $(ARCHES:%=$(DIST)/hapod-linux-%)
ARCHIVE  := $(DIST)/hapod-image-$(VERSION).oci.tar
# Image timestamps from the commit, so rebuilding a commit gives the same digests.
SOURCE_DATE_EPOCH ?= $(shell git log -1 --format=%ct 2>/dev/null || echo 0)
# podman keeps the multi-arch manifest list in a store of its own: podman
# 4.3 (Debian 12) fails `podman images` on any store holding a list.
IMAGE_STORE ?= bin/image-store
PODMAN_LIST := podman --root $(abspath $(IMAGE_STORE))/root --runroot $(abspath $(IMAGE_STORE))/run --storage-driver vfs
IMAGE_BUILD := build --timestamp $(SOURCE_DATE_EPOCH) --build-arg VERSION=$(VERSION) -f $(CURDIR)/Dockerfile
# Tools installed from the Go module proxy, outside the repo.
TOOLS    ?= $(or $(XDG_CACHE_HOME),$(HOME)/.cache)/hapod-tools
ACTIONLINT_VERSION := v1.7.12
ACTIONLINT := $(TOOLS)/actionlint-$(ACTIONLINT_VERSION)
STATICCHECK_VERSION := v0.8.2
STATICCHECK := $(TOOLS)/staticcheck-$(STATICCHECK_VERSION)
# $(call go-tool,PACKAGE,VERSION): go install PACKAGE@VERSION as the
# target, a file named for the version, so a version bump reinstalls.
define go-tool
	@mkdir -p $(TOOLS)
	GOBIN=$(TOOLS) $(GO) install $(1)@$(2)
	mv $(TOOLS)/$(notdir $(1)) $@
endef

.PHONY: all build static test unit e2e e2e-kubeadm bench bench-failover bench-proxy fuzz lint lint-workflows manifests check-manifests \
	dist checksums image image-archive image-push sign release-snapshot demo clean

all: build

build:
	$(GO) build -trimpath -ldflags '$(LDFLAGS)' -o $(BIN) ./cmd/hapod

# A static binary (no libc) for this host, for the demo and the e2e tests;
# the image's binaries come from `make dist`.
static:
	CGO_ENABLED=0 $(GO) build -trimpath -ldflags '$(LDFLAGS)' -o bin/hapod-static ./cmd/hapod

# Everything CI checks: formatting, vet, unit tests, checked-in manifests,
# then the end-to-end tests (they need root; without it they skip).
test: lint check-manifests unit e2e

unit:
	$(GO) test -count=1 $$($(GO) list ./... | grep -v /e2e)

# Not e2e/kubeadm: that one needs the Kubernetes binaries (make e2e-kubeadm).
e2e: static
	$(GO) test -count=1 -timeout 40m -v $$($(GO) list ./e2e/... | grep -v /e2e/kubeadm)

# A real kubeadm HA cluster with hapod as its endpoint (root): kubeadm,
# kubelet and the control plane built from the Go module proxy at
# K8S_VERSION (cached under K8S_CACHE: 10-13 min cold on 2 cores, seconds warm), images
# for them and hapod's, three nodes in network namespaces.
K8S_CACHE    ?= /var/cache/hapod-kubeadm
K8S_VERSION  ?= v1.37.2
ETCD_VERSION ?= v3.7.0
K8S_REPO     ?= localhost/hapod-e2e
KUBEADM_IMAGE ?= localhost/hapod:e2e-kubeadm
# KUBEADM_TESTS picks tests (go test -run), e.g. TestKubeadmUnicast: init,
# join and the holder crash only; HAPOD_CRASH_RUNS=N in the environment
# repeats the crash N times.
KUBEADM_TESTS ?= .
e2e-kubeadm:
	GO=$(GO) e2e/kubeadm/build-k8s.sh $(K8S_CACHE) $(K8S_VERSION) $(ETCD_VERSION)
	$(MAKE) image IMAGE=$(KUBEADM_IMAGE)
	archive=$$(GO=$(GO) e2e/kubeadm/images.sh $(K8S_CACHE) $(K8S_VERSION) $(ETCD_VERSION) \
	    $(K8S_REPO) $(KUBEADM_IMAGE) $(KUBEADM_IMAGE)-new) && \
	HAPOD_K8S_BIN=$(K8S_CACHE)/bin/$(K8S_VERSION) HAPOD_K8S_IMAGES=$$archive HAPOD_K8S_REPO=$(K8S_REPO) \
	HAPOD_K8S_VERSION=$(K8S_VERSION) HAPOD_IMAGE=$(KUBEADM_IMAGE) HAPOD_IMAGE_NEW=$(KUBEADM_IMAGE)-new \
	$(GO) test -count=1 -timeout 60m -v -run '$(KUBEADM_TESTS)' ./e2e/kubeadm/

# Benchmarks compare against keepalived / haproxy side by side and print ratios.
bench: bench-failover bench-proxy

bench-failover: static
	HAPOD_BENCH=1 $(GO) test -count=1 -timeout 60m -run TestBenchFailover -v ./e2e/

bench-proxy:
	$(GO) run ./bench/proxy

FUZZTIME ?= 20s
fuzz:
	@for pkg in $$($(GO) list ./...); do \
	  for f in $$($(GO) test -list '^Fuzz' $$pkg 2>/dev/null | grep '^Fuzz'); do \
	    echo "fuzz $$pkg $$f"; $(GO) test -run '^$$' -fuzz "^$$f$$" -fuzztime $(FUZZTIME) $$pkg || exit 1; \
	  done; \
	done

lint: $(STATICCHECK)
	@out=$$(gofmt -l $$(git ls-files '*.go')); if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi
	$(GO) vet ./...
	GOOS=darwin $(GO) vet ./...
	$(STATICCHECK) ./...
	@$(GO) mod tidy -diff >/dev/null || { echo "go mod tidy would change go.mod/go.sum"; $(GO) mod tidy -diff; exit 1; }
	$(MAKE) -s lint-workflows

lint-workflows: $(ACTIONLINT)
	$(ACTIONLINT) -no-color

$(ACTIONLINT):
	$(call go-tool,github.com/rhysd/actionlint/cmd/actionlint,$(ACTIONLINT_VERSION))

$(STATICCHECK):
	$(call go-tool,honnef.co/go/tools/cmd/staticcheck,$(STATICCHECK_VERSION))

# The example manifests are the generator's output for fixed inputs.
MANIFESTS_DIR ?= manifests
EXAMPLE := $(GO) run ./cmd/hapod manifest --image ghcr.io/hapod/hapod:latest --interface eth0
NODES4 := --backend 198.18.0.11:6443 --backend 198.18.0.12:6443 --backend 198.18.0.13:6443
manifests:
	@mkdir -p $(MANIFESTS_DIR)
	$(EXAMPLE) --vip 198.18.0.10/24 $(NODES4) > $(MANIFESTS_DIR)/ipv4-multicast.yaml
	$(EXAMPLE) --vip 198.18.0.10/24 --peer 198.18.0.12 --peer 198.18.0.13 $(NODES4) > $(MANIFESTS_DIR)/ipv4-unicast.yaml
	$(EXAMPLE) --vip 2001:db8::10/64 --backend '[2001:db8::11]:6443' --backend '[2001:db8::12]:6443' --backend '[2001:db8::13]:6443' > $(MANIFESTS_DIR)/ipv6.yaml
	$(EXAMPLE) --vip 198.18.0.10/24 --vrrp-version 2 --auth-pass-file /etc/hapod/vrrp-pass $(NODES4) > $(MANIFESTS_DIR)/vrrpv2-password.yaml
	$(EXAMPLE) --vip 198.18.0.10/24 --vip 2001:db8::10/64 $(NODES4) > $(MANIFESTS_DIR)/dual-stack.yaml

check-manifests:
	@tmp=$$(mktemp -d) && trap 'rm -rf $$tmp' EXIT && \
	  $(MAKE) -s manifests MANIFESTS_DIR=$$tmp >/dev/null && \
	  if ! diff -ru manifests $$tmp; then echo "manifests/ differ from the generator's output: run make manifests"; exit 1; fi

# Static binaries for every release architecture, and their checksums.
dist: $(BINARIES)
	$(MAKE) -s checksums

$(DIST)/hapod-linux-%: FORCE
	CGO_ENABLED=0 GOOS=linux GOARCH=$* $(GO) build -trimpath -ldflags '$(LDFLAGS)' -o $@ ./cmd/hapod

# SHA256SUMS covers the binaries and, once made, this version's image archive.
checksums:
	cd $(DIST) && sha256sum $(notdir $(BINARIES)) $$(ls $(notdir $(ARCHIVE)) 2>/dev/null) > SHA256SUMS

# The multi-arch image from the static binaries: FROM scratch and COPY, so
# building arm64 on amd64 needs no emulation. The manifest list $(IMAGE)
# lives in $(IMAGE_STORE); podman's own store gets this host's
# architecture under $(IMAGE) (same digest), for podman and `podman save`.
image: dist
	rm -rf $(IMAGE_STORE)
	for arch in $(ARCHES); do \
	  $(PODMAN_LIST) $(IMAGE_BUILD) --platform linux/$$arch -t $(IMAGE)-$$arch $(DIST); done
	$(PODMAN_LIST) manifest create $(IMAGE)
	for arch in $(ARCHES); do \
	  $(PODMAN_LIST) manifest add $(IMAGE) containers-storage:$(IMAGE)-$$arch; done
	podman $(IMAGE_BUILD) --platform linux/$(HOSTARCH) -t $(IMAGE) $(DIST)

# An OCI archive of both architectures, named $(IMAGE), for air-gapped
# nodes: ctr -n k8s.io images import $(ARCHIVE)
image-archive: image
	rm -f $(ARCHIVE)
	$(PODMAN_LIST) manifest push --all --format oci $(IMAGE) oci-archive:$(abspath $(ARCHIVE)):$(IMAGE)
	$(MAKE) -s checksums

# Push the list made by `make image` (IMAGE=ghcr.io/hapod/hapod:vX.Y.Z,
# after podman login); its digest goes to $(DIST)/image.digest for signing.
image-push:
	$(PODMAN_LIST) manifest push --all --format oci --digestfile $(DIST)/image.digest $(IMAGE) docker://$(IMAGE)

# cosign keyless (the CI job's OIDC identity): the pushed image by digest,
# and SHA256SUMS, whose bundle is a release asset.
sign:
	image=$(IMAGE); cosign sign --yes "$${image%:*}@$$(cat $(DIST)/image.digest)"
	cosign sign-blob --yes --bundle $(DIST)/SHA256SUMS.cosign.bundle $(DIST)/SHA256SUMS

# Every release artefact built here and checked: both binaries' file
# types, the amd64 one's version, both platforms in the image's list, the
# archive imported into a throwaway containerd and run from there, and the
# release workflow through actionlint.
release-snapshot: lint-workflows image-archive
	HAPOD_DIST=$(abspath $(DIST)) HAPOD_VERSION=$(VERSION) HAPOD_IMAGE=$(IMAGE) \
	  $(GO) test -count=1 -timeout 20m -v -run 'TestReleaseArtefacts' ./e2e/

FORCE:

demo: static
	$(GO) run ./e2e/demo $(DEMO_FLAGS)

clean:
	rm -rf bin $(DIST)
