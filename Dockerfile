# syntax=docker/dockerfile:1
# wattd as PID 1 of a container that runs a watt.json project.
#   docker build -t wattd .
#   docker run -p 3042:3042 -e PLT_SERVER_HOSTNAME=0.0.0.0 wattd
# To ship your own project, build FROM this image and COPY it to /app.

FROM golang:1.26-bookworm AS build
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY . .
RUN CGO_ENABLED=0 go build -trimpath -ldflags '-s -w' -o /out/wattd ./cmd/wattd

FROM node:24-bookworm-slim
COPY --from=build /out/wattd /usr/local/bin/wattd
WORKDIR /app
COPY testdata/examples/hello/ /app/
ENV PLT_SERVER_PORT=3042
EXPOSE 3042
# wattd stops gracefully on SIGTERM, which is what `docker stop` sends.
STOPSIGNAL SIGTERM
ENTRYPOINT ["/usr/local/bin/wattd"]
CMD ["start", "/app"]
