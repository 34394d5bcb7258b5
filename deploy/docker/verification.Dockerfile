# syntax=docker/dockerfile:1
# verification: codes and checks; public VerificationService on 50052, internal VerificationInternalService on 50062, admin HTTP on 9092.
# Build from the repository root (the context needs pkg/, services/verification/ and deploy/healthprobe/):
#   docker build -f deploy/docker/verification.Dockerfile -t icpverify/verification:dev .
# Multi-stage: a static binary built outside the workspace (GOWORK=off: services/verification/go.mod replaces pkg
# with ../../pkg), on distroless/static as uid 65532 (numeric, so Kubernetes' runAsNonRoot can verify it).
ARG GO_VERSION=1.26

FROM golang:${GO_VERSION} AS build
WORKDIR /src
# Module downloads first, so a source change does not download them again.
COPY pkg/go.mod pkg/go.sum pkg/
COPY services/verification/go.mod services/verification/go.sum services/verification/
COPY deploy/healthprobe/go.mod deploy/healthprobe/go.sum deploy/healthprobe/
RUN --mount=type=cache,target=/go/pkg/mod \
    cd services/verification && GOWORK=off go mod download && \
    cd /src/deploy/healthprobe && GOWORK=off go mod download
COPY pkg/ pkg/
COPY services/verification/ services/verification/
COPY deploy/healthprobe/ deploy/healthprobe/
RUN --mount=type=cache,target=/go/pkg/mod --mount=type=cache,target=/root/.cache/go-build \
    cd /src/services/verification && \
    CGO_ENABLED=0 GOWORK=off go build -trimpath -ldflags='-s -w' -o /out/verification ./cmd/verification && \
    cd /src/deploy/healthprobe && \
    CGO_ENABLED=0 GOWORK=off go build -trimpath -ldflags='-s -w' -o /out/healthprobe .

FROM gcr.io/distroless/static-debian12:nonroot
COPY --from=build /out/verification /usr/local/bin/verification
COPY --from=build /out/healthprobe /usr/local/bin/healthprobe
USER 65532:65532
# Listen on all interfaces (the binary's default is loopback). The same ports as deploy/compose.yaml and
# deploy/k8s; the other settings come from the environment (see the README's configuration table).
ENV GRPC_ADDR=0.0.0.0:50052 INTERNAL_GRPC_ADDR=0.0.0.0:50062 ADMIN_ADDR=0.0.0.0:9092
EXPOSE 50052 50062 9092
# /readyz on the admin listener: the gRPC listeners speak TLS in production (deploy/k8s, compose),
# and the probe would need the CA and a name; the admin listener is plain HTTP on every deployment.
HEALTHCHECK --interval=10s --timeout=5s --start-period=30s --retries=3 \
    CMD ["/usr/local/bin/healthprobe", "-http-url=http://127.0.0.1:9092/readyz"]
ENTRYPOINT ["/usr/local/bin/verification"]
