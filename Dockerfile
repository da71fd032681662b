# hapod's image: one static binary, nothing else. Build it with `make image`:
# the build context is dist/ (`make dist`: static binaries for each
# architecture), so no base image is pulled and arm64 builds on amd64
# without emulation.
FROM scratch
ARG TARGETARCH
ARG VERSION=dev
LABEL org.opencontainers.image.title="hapod" \
      org.opencontainers.image.description="Highly available Kubernetes API endpoint in one static pod: VRRP VIP + L4 proxy" \
      org.opencontainers.image.source="https://github.com/hapod/hapod" \
      org.opencontainers.image.licenses="Apache-2.0" \
      org.opencontainers.image.version="${VERSION}"
COPY hapod-linux-${TARGETARCH} /hapod
ENTRYPOINT ["/hapod"]
CMD ["--help"]
