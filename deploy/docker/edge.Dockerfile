# syntax=docker/dockerfile:1
# edge: the public HTTP face (REST/JSON of FilingService and VerificationService, /openapi.json, the
# 短信核验 page at /) on 8080, admin HTTP on 9095. No database and no gRPC listener: it is a client of
# filing's and verification's PUBLIC gRPC listeners (TLS, checked with --peer-tls-ca-file).
# Build from the repository root (the context needs pkg/, services/edge/ and deploy/healthprobe/):
#   docker build -f deploy/docker/edge.Dockerfile -t icpverify/edge:dev .
# Multi-stage: a static binary built outside the workspace (GOWORK=off: services/edge/go.mod replaces pkg
# with ../../pkg), on distroless/static as uid 65532 (numeric, so Kubernetes' runAsNonRoot can verify it).
ARG GO_VERSION=1.26

FROM golang:${GO_VERSION} AS build
WORKDIR /src
# Module downloads first, so a source change does not download them again.
COPY pkg/go.mod pkg/go.sum pkg/
COPY services/edge/go.mod services/edge/go.sum services/edge/
COPY deploy/healthprobe/go.mod deploy/healthprobe/go.sum deploy/healthprobe/
RUN --mount=type=cache,target=/go/pkg/mod \
    cd services/edge && GOWORK=off go mod download && \
    cd /src/deploy/healthprobe && GOWORK=off go mod download
COPY pkg/ pkg/
COPY services/edge/ services/edge/
COPY deploy/healthprobe/ deploy/healthprobe/
RUN --mount=type=cache,target=/go/pkg/mod --mount=type=cache,target=/root/.cache/go-build \
    cd /src/services/edge && \
    CGO_ENABLED=0 GOWORK=off go build -trimpath -ldflags='-s -w' -o /out/edge ./cmd/edge && \
    cd /src/deploy/healthprobe && \
    CGO_ENABLED=0 GOWORK=off go build -trimpath -ldflags='-s -w' -o /out/healthprobe .

FROM gcr.io/distroless/static-debian12:nonroot
COPY --from=build /out/edge /usr/local/bin/edge
COPY --from=build /out/healthprobe /usr/local/bin/healthprobe
USER 65532:65532
# Listen on all interfaces (the binary's default is loopback). The same ports as deploy/compose.yaml and
# deploy/k8s; the other settings come from the environment (see the README's configuration table).
ENV HTTP_ADDR=0.0.0.0:8080 ADMIN_ADDR=0.0.0.0:9095
EXPOSE 8080 9095
# /readyz on the admin listener: 200 once filing's and verification's public listeners answer health
# SERVING (the edge dials them with TLS).
HEALTHCHECK --interval=10s --timeout=5s --start-period=30s --retries=3 \
    CMD ["/usr/local/bin/healthprobe", "-http-url=http://127.0.0.1:9095/readyz"]
ENTRYPOINT ["/usr/local/bin/edge"]
