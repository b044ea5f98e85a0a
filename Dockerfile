# syntax=docker/dockerfile:1
# wattd as PID 1 of a container that runs a watt.json project, as the
# unprivileged user of the Node image.
#   docker build -t wattd .
#   docker run -p 3042:3042 wattd
# To ship your own project, build FROM this image and COPY it to /app
# (run `wattd build` or your npm build in a stage before).

FROM golang:1.26-bookworm AS build
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY . .
ARG VERSION=dev
# Static: the runtime image has no Go and needs no C library of a given
# version. The Node preload is embedded in the binary. urfave_cli_no_docs:
# see the Makefile.
RUN CGO_ENABLED=0 go build -trimpath -tags urfave_cli_no_docs -ldflags "-s -w -X main.version=${VERSION}" -o /out/wattd ./cmd/wattd

FROM node:24-bookworm-slim
COPY --from=build /out/wattd /usr/local/bin/wattd
WORKDIR /app
# Owned by root and only readable by the user that runs it: the app
# cannot rewrite its own code.
COPY testdata/examples/hello/ /app/
# 0.0.0.0: reachable through the container's published port.
ENV PLT_SERVER_HOSTNAME=0.0.0.0 PLT_SERVER_PORT=3042
# The Node image's "node" user (uid 1000). wattd's runtime directory is
# then /tmp/wattd-1000, which `wattd ctl` run by the same user finds.
USER node
EXPOSE 3042
# wattd stops gracefully on SIGTERM, which is what `docker stop` sends;
# give it gracefulShutdown.runtime (30 s by default) with `docker stop -t`
# (Docker waits 10 s by default before SIGKILL).
STOPSIGNAL SIGTERM
# Healthy while wattd answers on its admin socket; `wattd ctl` finds the
# runtime of the working directory.
HEALTHCHECK --interval=15s --timeout=5s --start-period=30s --retries=3 CMD ["wattd", "ctl", "status"]
# Exec form: wattd itself is PID 1, so it gets the signals and reaps the
# orphans of the container.
ENTRYPOINT ["/usr/local/bin/wattd"]
CMD ["start", "/app"]
