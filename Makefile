# Strata. `make run` starts Strata on the embedded defaults; `make test`
# installs what the tests need (once, cached) and runs every test.

STRATA_CACHE ?= $(HOME)/.cache/strata
export STRATA_CACHE
export STRATA_PROMETHEUS3 ?= $(STRATA_CACHE)/bin/prometheus
export STRATA_MINIO ?= $(STRATA_CACHE)/bin/minio
GO ?= go
# -count=1: e2e, deploy and the plugin's tests build and run the strata binary
# from the tree, which Go's test cache cannot see, so a cached pass could be stale.
GOTEST_FLAGS ?= -race -count=1 -timeout 30m

.PHONY: all build run deps test test-unit test-long-horizon vet fmt-check fuzz clean bench bench-dashboard docs pgo webui

all: build

# The binary is built with profile-guided optimisation from
# cmd/strata/strata.pgo, CPU profiles of the bench's query set and ingest
# (make pgo):
# about 12% less CPU for the query set. Tests build without it.
PGO ?= -pgo=cmd/strata/strata.pgo

build:
	$(GO) build $(PGO) -o bin/strata ./cmd/strata

run:
	$(GO) run ./cmd/strata

deps:
	./scripts/deps.sh
	$(MAKE) -C web/ui deps

# Regenerate the configuration reference (docs/configuration.md) from the
# flag and YAML declarations; config.TestReferenceUpToDate fails until it is.
docs:
	$(GO) run ./cmd/strata tools config-reference -update docs/configuration.md

# stdmethods is off: Prometheus's chunkenc.Iterator interface, which Strata's
# iterators implement, has Seek(int64) ValueType, not io.Seeker's signature.
vet:
	$(GO) vet -stdmethods=false ./...

fmt-check:
	@out=$$(gofmt -l $$(git ls-files '*.go')); if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi

# Every test, integration suites included (they start real Prometheus and
# node-exporter processes and fail when those are missing; web/browsertest
# drives the web UI in headless Chromium), then the web UI's type check, Jest
# and the check that web/dist is what web/ui builds, then the Grafana
# plugin's (its own Go module, Jest, headless Chromium).
test: deps fmt-check vet
	$(GO) test $(GOTEST_FLAGS) ./...
	$(MAKE) -C web/ui test
	$(MAKE) -C grafana-plugin test

# Rebuild the web UI (web/ui) into web/dist, which the binary embeds: commit
# web/dist with the sources. web.TestDistUpToDate fails until it is rebuilt.
webui:
	$(MAKE) -C web/ui build

# The long-horizon test (e2e/longhorizon_test.go) over more simulated days
# than make test's 42: 400 by default, past the 1h resolution's retention.
# It runs the strata binary beside Prometheus 3 fed the same remote-write
# traffic and compares every hour of the history after compactor runs.
LONG_HORIZON_DAYS ?= 400
test-long-horizon: deps
	STRATA_LONG_HORIZON_DAYS=$(LONG_HORIZON_DAYS) $(GO) test -race -count=1 -timeout 4h -run TestLongHorizon -v ./e2e/

# Unit tests only: no external programs.
test-unit:
	$(GO) test $(GOTEST_FLAGS) -short ./...

# Run each decoder fuzz target for a while (FUZZTIME=30s by default).
FUZZTIME ?= 30s
fuzz:
	$(GO) test ./remotewrite -run '^$$' -fuzz FuzzWriteV1 -fuzztime $(FUZZTIME)
	$(GO) test ./remotewrite -run '^$$' -fuzz FuzzWriteV2 -fuzztime $(FUZZTIME)
	$(GO) test ./ingest/rwproto -run '^$$' -fuzz FuzzDecodeV1 -fuzztime $(FUZZTIME)
	$(GO) test ./ingest/rwproto -run '^$$' -fuzz FuzzDecodeV2 -fuzztime $(FUZZTIME)

clean:
	rm -rf bin data

# Compare Strata with Prometheus 3 on the same generated load (100k
# node-exporter series over one hour by default; BENCH_FLAGS=-small for a
# quick run) and write bench/RESULTS.md.
BENCH_FLAGS ?=
bench:
	$(GO) build $(PGO) -o bin/strata ./cmd/strata
	$(GO) build -o bin/strata-bench ./bench/cmd/strata-bench
	./bin/strata-bench -prometheus $(STRATA_PROMETHEUS3) -strata bin/strata -out bench/RESULTS.md $(BENCH_FLAGS)

# The dashboard-refresh benchmark: the first six queries of the load tool
# asked again every 15s over moving 1h, 6h and 24h windows while ingest
# continues, Strata (results cache on) vs VictoriaMetrics (rollup cache on),
# written to bench/DASHBOARD.md. VictoriaMetrics is built into the tool cache
# for the benchmark only; it is not a dependency of Strata.
VICTORIA_METRICS_VERSION ?= v1.150.0
STRATA_VICTORIA_METRICS ?= $(STRATA_CACHE)/bin/victoria-metrics
DASHBOARD_FLAGS ?=
bench-dashboard:
	@test -x $(STRATA_VICTORIA_METRICS) || (cd /tmp && CGO_ENABLED=0 GOFLAGS=-buildvcs=false GOBIN=$(STRATA_CACHE)/bin \
		$(GO) install github.com/VictoriaMetrics/VictoriaMetrics/app/victoria-metrics@$(VICTORIA_METRICS_VERSION))
	$(GO) build $(PGO) -o bin/strata ./cmd/strata
	$(GO) build -o bin/strata-bench ./bench/cmd/strata-bench
	./bin/strata-bench -dashboard -victoria-metrics $(STRATA_VICTORIA_METRICS) -strata bin/strata -out bench/DASHBOARD.md $(DASHBOARD_FLAGS)

# Regenerate cmd/strata/strata.pgo: CPU profiles of Strata while it ingests
# and answers the query set of a bench run (30k series; its figures are
# skewed by the profiling and not kept), merged.
pgo:
	$(GO) build $(PGO) -o bin/strata ./cmd/strata
	$(GO) build -o bin/strata-bench ./bench/cmd/strata-bench
	rm -rf bin/pgo
	./bin/strata-bench -prometheus $(STRATA_PROMETHEUS3) -strata bin/strata -series 30000 -cpu-profile-dir bin/pgo
	$(GO) tool pprof -proto bin/pgo/*.pprof > cmd/strata/strata.pgo
