# hapod's image: one static binary, nothing else. Build it with `make image`
# (podman or docker); the binary comes from `make static` (CGO_ENABLED=0), so
# no base image is pulled.
FROM scratch
ARG VERSION=dev
LABEL org.opencontainers.image.title="hapod" \
      org.opencontainers.image.description="Highly available Kubernetes API endpoint in one static pod: VRRP VIP + L4 proxy" \
      org.opencontainers.image.source="https://github.com/hapod/hapod" \
      org.opencontainers.image.licenses="Apache-2.0" \
      org.opencontainers.image.version="${VERSION}"
COPY bin/hapod-static /hapod
ENTRYPOINT ["/hapod"]
CMD ["--help"]
