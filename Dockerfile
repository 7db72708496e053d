# syntax=docker/dockerfile:1
# canaryd and the sample greeter, as static non-root images.
#
#   docker build --target canaryd -t ghcr.io/canarydio/canaryd .
#   docker build --target greeter -t ghcr.io/canarydio/greeter .

FROM golang:1.26-bookworm AS build
WORKDIR /src
ENV CGO_ENABLED=0 GOFLAGS=-trimpath
COPY go.mod go.sum ./
RUN --mount=type=cache,target=/go/pkg/mod go mod download
COPY . .
ARG VERSION=dev
RUN --mount=type=cache,target=/go/pkg/mod --mount=type=cache,target=/root/.cache/go-build \
    go build -ldflags "-s -w -X main.version=${VERSION}" -o /out/canaryd ./cmd/canaryd && \
    go build -ldflags "-s -w" -o /out/greeter ./cmd/greeter
# The data dir, owned by the non-root user, for runs without a volume.
RUN mkdir -p /out/var/lib/canaryd

FROM gcr.io/distroless/static-debian12:nonroot AS greeter
COPY --from=build /out/greeter /greeter
USER 65532:65532
EXPOSE 50051
ENTRYPOINT ["/greeter", "-listen=:50051"]

FROM gcr.io/distroless/static-debian12:nonroot AS canaryd
COPY --from=build /out/canaryd /canaryd
COPY --from=build --chown=65532:65532 /out/var/lib/canaryd /var/lib/canaryd
USER 65532:65532
EXPOSE 8090
ENTRYPOINT ["/canaryd"]
