# edge-agent container image: a static binary on distroless, run as non-root.
#
#   docker build -t edge-agent .
#   docker run --rm -p 8080:8080 edge-agent --demo
#
# The image has no shell: the health check is the binary's own
# `edge-agent health` (GET /health/ready on 127.0.0.1:$PORT).

FROM golang:1.26-bookworm AS build
WORKDIR /src
# Modules first, so a source change does not download them again.
COPY go.mod go.sum ./
RUN go mod download
COPY cmd ./cmd
COPY internal ./internal
# CGO off: a static binary that runs on distroless/static (no libc).
RUN CGO_ENABLED=0 GOOS=linux go build -trimpath -ldflags="-s -w" -o /out/edge-agent ./cmd/edge-agent

FROM gcr.io/distroless/static-debian12:nonroot
COPY --from=build /out/edge-agent /usr/local/bin/edge-agent
# nonroot is uid/gid 65532; Kubernetes' runAsNonRoot needs it numeric.
USER 65532:65532
# 8080: the API (PORT); 9090: /metrics (METRICS_PORT, bound to
# 127.0.0.1 unless METRICS_HOST opens it).
EXPOSE 8080 9090
HEALTHCHECK --interval=10s --timeout=4s --start-period=10s --retries=3 \
  CMD ["/usr/local/bin/edge-agent", "health"]
ENTRYPOINT ["/usr/local/bin/edge-agent"]
CMD ["serve"]
