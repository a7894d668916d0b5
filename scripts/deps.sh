#!/usr/bin/env bash
# Installs what Strata's tests need on a fresh Debian machine, once:
#   - Debian packages: prometheus (2.x, a remote-write 1.0 client),
#     prometheus-node-exporter (a real scrape target), prometheus-alertmanager
#     and python3-aiosmtpd (the Alertmanager and SMTP server of the alerting
#     tests); memcached (the shared results cache of the query front end's
#     tests); chromium (the Grafana plugin's headless screenshot check);
#   - Prometheus 3, built from source into the cache directory (remote write 2.0);
#   - MinIO, built from source into the cache directory (the S3 bucket of tests).
# Binaries built here are cached in $STRATA_CACHE/bin and reused.
set -euo pipefail

PROMETHEUS3_VERSION=v0.316.0
MINIO_VERSION=v0.0.0-20260212201848-7aac2a2c5b7c
CACHE=${STRATA_CACHE:-$HOME/.cache/strata}
BIN=$CACHE/bin
mkdir -p "$BIN"

need_apt=()
command -v prometheus >/dev/null 2>&1 || need_apt+=(prometheus)
command -v prometheus-node-exporter >/dev/null 2>&1 || need_apt+=(prometheus-node-exporter)
command -v prometheus-alertmanager >/dev/null 2>&1 || need_apt+=(prometheus-alertmanager)
/usr/bin/python3 -c 'import aiosmtpd' >/dev/null 2>&1 || need_apt+=(python3-aiosmtpd)
command -v memcached >/dev/null 2>&1 || need_apt+=(memcached)
[ -x /usr/bin/chromium ] || need_apt+=(chromium) # grafana-plugin's screenshot check
if [ ${#need_apt[@]} -gt 0 ]; then
	echo "deps: installing Debian packages: ${need_apt[*]}"
	SUDO=""
	[ "$(id -u)" = 0 ] || SUDO=sudo
	$SUDO apt-get update -qq
	DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${need_apt[@]}" >/dev/null
fi

stamp=$BIN/.prometheus3-$PROMETHEUS3_VERSION
if [ ! -x "$BIN/prometheus" ] || [ ! -f "$stamp" ]; then
	echo "deps: building Prometheus 3 ($PROMETHEUS3_VERSION) into $BIN (several minutes, once)"
	(cd /tmp && GOFLAGS=-buildvcs=false GOBIN="$BIN" go install -tags remove_all_sd \
		"github.com/prometheus/prometheus/cmd/prometheus@$PROMETHEUS3_VERSION")
	touch "$stamp"
fi

stamp=$BIN/.minio-$MINIO_VERSION
if [ ! -x "$BIN/minio" ] || [ ! -f "$stamp" ]; then
	echo "deps: building MinIO ($MINIO_VERSION) into $BIN (several minutes, once)"
	(cd /tmp && GOFLAGS=-buildvcs=false GOBIN="$BIN" go install "github.com/minio/minio@$MINIO_VERSION")
	touch "$stamp"
fi
echo "deps: ok (prometheus 2: $(command -v prometheus), prometheus 3: $BIN/prometheus, node exporter: $(command -v prometheus-node-exporter), alertmanager: $(command -v prometheus-alertmanager), memcached: $(command -v memcached), minio: $BIN/minio)"
