# hapod — see README.md. `make test` is what CI runs (as root, after .ci/run
# installed keepalived, haproxy, dnsmasq, tshark and podman).

SHELL    := /bin/bash
.SHELLFLAGS := -eo pipefail -c
# go from PATH, else where the official tarball puts it: sudo's secure_path
# (`sudo make demo`, `sudo make e2e`) lacks /usr/local/go/bin.
GO       ?= $(or $(shell command -v go 2>/dev/null),$(wildcard /usr/local/go/bin/go),go)
VERSION  ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
IMAGE    ?= localhost/hapod:$(VERSION)
CONTAINER ?= $(shell command -v podman >/dev/null 2>&1 && echo podman || echo docker)
LDFLAGS  := -s -w -X github.com/hapod/hapod/internal/cli.Version=$(VERSION)
BIN      := bin/hapod

.PHONY: all build static test unit e2e bench bench-failover bench-proxy fuzz lint manifests check-manifests image demo clean

all: build

build:
	$(GO) build -trimpath -ldflags '$(LDFLAGS)' -o $(BIN) ./cmd/hapod

# The image's binary: static, no libc.
static:
	CGO_ENABLED=0 $(GO) build -trimpath -ldflags '$(LDFLAGS)' -o bin/hapod-static ./cmd/hapod

# Everything CI checks: formatting, vet, unit tests, checked-in manifests,
# then the end-to-end tests (they need root; without it they skip).
test: lint check-manifests unit e2e

unit:
	$(GO) test -count=1 $$($(GO) list ./... | grep -v /e2e)

e2e: static
	$(GO) test -count=1 -timeout 40m -v ./e2e/...

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

lint:
	@out=$$(gofmt -l $$(git ls-files '*.go')); if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi
	$(GO) vet ./...
	GOOS=darwin $(GO) vet ./...
	@$(GO) mod tidy -diff >/dev/null || { echo "go mod tidy would change go.mod/go.sum"; $(GO) mod tidy -diff; exit 1; }

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

check-manifests:
	@tmp=$$(mktemp -d) && trap 'rm -rf $$tmp' EXIT && \
	  $(MAKE) -s manifests MANIFESTS_DIR=$$tmp >/dev/null && \
	  if ! diff -ru manifests $$tmp; then echo "manifests/ differ from the generator's output: run make manifests"; exit 1; fi

image: static
	$(CONTAINER) build --build-arg VERSION=$(VERSION) -t $(IMAGE) -f Dockerfile .

demo: static
	$(GO) run ./e2e/demo $(DEMO_FLAGS)

clean:
	rm -rf bin
