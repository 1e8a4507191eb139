# syntax=docker/dockerfile:1
# Static, stripped binaries on a distroless non-root base; one target per
# program: `docker build --target injector|agent|cli .`
# `make images` builds the same images without Docker (pkg/images); a test
# holds the final stages and that builder to the same user, entrypoint,
# command, labels and binary path.
ARG GO_VERSION=1.26

FROM golang:${GO_VERSION} AS build
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY cmd ./cmd
COPY pkg ./pkg
ARG VERSION=dev
ENV CGO_ENABLED=0
RUN go build -trimpath -ldflags "-s -w -X github.com/blinkchamber/blinkchamber/pkg/agent.Version=${VERSION}" -o /out/blinkchamber-agent ./cmd/agent && \
    go build -trimpath -ldflags "-s -w" -o /out/blinkchamber-injector ./cmd/injector && \
    go build -trimpath -ldflags "-s -w -X github.com/blinkchamber/blinkchamber/pkg/cli.Version=${VERSION}" -o /out/blinkchamber ./cmd/blinkchamber

FROM gcr.io/distroless/static-debian12:nonroot AS agent
ARG VERSION=dev
LABEL org.opencontainers.image.source="https://github.com/blinkchamber/blinkchamber" \
      org.opencontainers.image.title="blinkchamber-agent" \
      org.opencontainers.image.version="${VERSION}"
COPY --from=build /out/blinkchamber-agent /usr/local/bin/blinkchamber-agent
USER 65532:65532
ENTRYPOINT ["/usr/local/bin/blinkchamber-agent"]
CMD ["run"]

FROM gcr.io/distroless/static-debian12:nonroot AS cli
ARG VERSION=dev
LABEL org.opencontainers.image.source="https://github.com/blinkchamber/blinkchamber" \
      org.opencontainers.image.title="blinkchamber" \
      org.opencontainers.image.version="${VERSION}"
COPY --from=build /out/blinkchamber /usr/local/bin/blinkchamber
USER 65532:65532
ENTRYPOINT ["/usr/local/bin/blinkchamber"]

FROM gcr.io/distroless/static-debian12:nonroot AS injector
ARG VERSION=dev
LABEL org.opencontainers.image.source="https://github.com/blinkchamber/blinkchamber" \
      org.opencontainers.image.title="blinkchamber-injector" \
      org.opencontainers.image.version="${VERSION}"
COPY --from=build /out/blinkchamber-injector /usr/local/bin/blinkchamber-injector
USER 65532:65532
ENTRYPOINT ["/usr/local/bin/blinkchamber-injector"]
