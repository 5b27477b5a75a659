# syntax=docker/dockerfile:1
#
# The `tessera` binary in a slim Debian 12 image.
#
#   docker build -t tessera .
#   docker run --rm tessera validate /etc/tessera/topologies
#
# Stage 1 builds with the official Swift 6.3 image on Debian 12 (bookworm), the same Debian as the
# runtime stage, so the C libraries linked at build time (librdkafka, hiredis, zstd, snappy) are
# the very versions installed at run time. The Swift standard library and Foundation are linked
# statically (--static-swift-stdlib): the runtime image needs no Swift toolchain libraries, only
# Debian packages, and cannot end up with a Swift runtime that differs from the compiler's.
ARG SWIFT_IMAGE=swift:6.3-bookworm
ARG RUNTIME_IMAGE=debian:bookworm-slim

FROM ${SWIFT_IMAGE} AS build
RUN export DEBIAN_FRONTEND=noninteractive \
 && apt-get update -q \
 && apt-get install -y -q --no-install-recommends \
      pkg-config librdkafka-dev libhiredis-dev libzstd-dev libsnappy-dev libcurl4-openssl-dev \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /src
# Package.resolved is optional (the glob matches nothing when it is absent).
COPY Package.swift Package.resolve[d] ./
# SwiftPM checks that every declared target has its directory, test targets included.
COPY Sources ./Sources
COPY Tests ./Tests
# The build directory and SwiftPM's repository cache survive between builds (BuildKit cache
# mounts); the binary is copied out of the cache in the same step. Debug information is
# dropped, the symbol table is kept for readable crash reports.
RUN --mount=type=cache,id=tessera-build,target=/src/.build \
    --mount=type=cache,id=tessera-swiftpm,target=/root/.cache/org.swift.swiftpm \
    swift build -c release --product tessera --static-swift-stdlib \
 && install -D -m 0755 "$(swift build -c release --show-bin-path)/tessera" /out/tessera \
 && if command -v strip > /dev/null; then strip --strip-debug /out/tessera; fi \
 && /out/tessera --help > /dev/null

FROM ${RUNTIME_IMAGE}
# Only the C libraries the binary links (everything else is static): librdkafka 2.0.2,
# hiredis 0.14, zstd, snappy, and CA certificates for TLS to brokers.
RUN export DEBIAN_FRONTEND=noninteractive \
 && apt-get update -q \
 && apt-get install -y -q --no-install-recommends \
      librdkafka1 libhiredis0.14 libzstd1 libsnappy1v5 libcurl4 ca-certificates \
 && rm -rf /var/lib/apt/lists/* \
 && useradd --system --uid 10001 --user-group --home-dir /data --no-create-home --shell /usr/sbin/nologin tessera \
 && mkdir -p /data/offline /data/state /etc/tessera \
 && chown -R tessera:tessera /data
COPY --from=build /out/tessera /usr/local/bin/tessera
# The repository's topologies as a default; deployments mount their own over this directory.
COPY topologies /etc/tessera/topologies
USER tessera
WORKDIR /data
# 9464: worker metrics, /health and /ready; 6566: `tessera serve` (online lookups over HTTP).
EXPOSE 9464 6566
ENTRYPOINT ["/usr/local/bin/tessera"]
CMD ["--help"]
