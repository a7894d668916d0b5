# syntax=docker/dockerfile:1
#
# Strata's container image, and the Grafana image with the Strata data
# source plugin that docker-compose.yml runs.
#
#   docker build -t strata .                      # the strata image (last stage)
#   docker build --target grafana -t strata-grafana .
#
# The strata image is a static binary on distroless (CA certificates, no
# shell), run as the unprivileged user nonroot (65532), with the data
# directory /var/lib/strata as a volume.

ARG GO_VERSION=1.26
ARG NODE_VERSION=22
ARG GRAFANA_VERSION=12.2.0

# ---- strata: a static Go binary ----
FROM golang:${GO_VERSION}-bookworm AS build
WORKDIR /src
COPY go.mod go.sum ./
RUN --mount=type=cache,target=/root/go/pkg/mod go mod download
COPY . .
ARG VERSION=0.1.0-dev
RUN --mount=type=cache,target=/root/go/pkg/mod --mount=type=cache,target=/root/.cache/go-build \
    CGO_ENABLED=0 go build -trimpath -pgo=cmd/strata/strata.pgo \
      -ldflags "-s -w -X github.com/prometheus/common/version.Version=${VERSION}" \
      -o /out/usr/bin/strata ./cmd/strata \
 && mkdir -p /out/var/lib/strata /out/etc/strata

# ---- the Grafana plugin's front end (dist/module.js, plugin.json, ...) ----
FROM node:${NODE_VERSION}-bookworm AS plugin-frontend
WORKDIR /src/grafana-plugin
COPY grafana-plugin/package.json grafana-plugin/package-lock.json ./
RUN npm ci
COPY grafana-plugin/ ./
RUN npm run build

# ---- the Grafana plugin's back end (dist/gpx_strata_linux_<arch>) ----
FROM golang:${GO_VERSION}-bookworm AS plugin-backend
ARG TARGETARCH=amd64
WORKDIR /src/grafana-plugin/pkg
COPY grafana-plugin/pkg/go.mod grafana-plugin/pkg/go.sum ./
RUN --mount=type=cache,target=/root/go/pkg/mod go mod download
COPY grafana-plugin/pkg/ ./
RUN --mount=type=cache,target=/root/go/pkg/mod --mount=type=cache,target=/root/.cache/go-build \
    CGO_ENABLED=0 GOOS=linux GOARCH=${TARGETARCH} go build -trimpath -ldflags "-s -w" \
      -o /out/dist/gpx_strata_linux_${TARGETARCH} .

# ---- Grafana with the Strata plugin (unsigned: allowed by its id) ----
FROM grafana/grafana:${GRAFANA_VERSION} AS grafana
ENV GF_PATHS_PLUGINS=/opt/strata/grafana-plugins \
    GF_PLUGINS_ALLOW_LOADING_UNSIGNED_PLUGINS=strata-tsdb-datasource
COPY --from=plugin-frontend /src/grafana-plugin/dist/ /opt/strata/grafana-plugins/strata-tsdb-datasource/
COPY --from=plugin-backend /out/dist/ /opt/strata/grafana-plugins/strata-tsdb-datasource/

# ---- strata: the final image (the default target) ----
FROM gcr.io/distroless/static-debian12:nonroot AS strata
COPY --from=build /out/usr/bin/strata /usr/bin/strata
COPY --from=build --chown=65532:65532 /out/var/lib/strata /var/lib/strata
COPY --from=build /out/etc/strata /etc/strata
USER 65532:65532
WORKDIR /var/lib/strata
VOLUME ["/var/lib/strata"]
EXPOSE 9201
HEALTHCHECK --interval=15s --timeout=5s --start-period=60s --retries=3 \
    CMD ["/usr/bin/strata", "tools", "healthcheck", "-url", "http://127.0.0.1:9201/-/ready"]
ENTRYPOINT ["/usr/bin/strata"]
CMD ["-storage.path=/var/lib/strata"]
