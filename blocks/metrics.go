package blocks

import (
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"
)

type storeMetrics struct {
	blocksShipped  *prometheus.CounterVec
	uploadFailures *prometheus.CounterVec
	pendingBlocks  *prometheus.GaugeVec
	bucketBlocks   *prometheus.GaugeVec
	syncFailures   prometheus.Counter
	lastSync       prometheus.Gauge
	cacheHits      prometheus.Counter
	cacheMisses    prometheus.Counter
	cacheBytes     prometheus.Gauge
	cacheBlocks    prometheus.Gauge
	cacheEvictions prometheus.Counter
	cacheSeeds     prometheus.Counter

	tenantOpenFailures prometheus.Counter
	tenantOpenRefused  prometheus.Counter
	tenantsRefused     prometheus.Counter
}

func newStoreMetrics(reg prometheus.Registerer) *storeMetrics {
	f := promauto.With(reg)
	return &storeMetrics{
		blocksShipped: f.NewCounterVec(prometheus.CounterOpts{
			Name: "strata_shipper_blocks_shipped_total",
			Help: "Blocks uploaded to the bucket, by tenant.",
		}, []string{"tenant"}),
		uploadFailures: f.NewCounterVec(prometheus.CounterOpts{
			Name: "strata_shipper_upload_failures_total",
			Help: "Failed block uploads, by tenant; they are retried.",
		}, []string{"tenant"}),
		pendingBlocks: f.NewGaugeVec(prometheus.GaugeOpts{
			Name: "strata_shipper_pending_blocks",
			Help: "Local blocks not yet in the bucket, by tenant (the upload backlog).",
		}, []string{"tenant"}),
		bucketBlocks: f.NewGaugeVec(prometheus.GaugeOpts{
			Name: "strata_bucket_blocks",
			Help: "Blocks known in the bucket at the last sync, by tenant.",
		}, []string{"tenant"}),
		syncFailures: f.NewCounter(prometheus.CounterOpts{
			Name: "strata_bucket_sync_failures_total",
			Help: "Failed syncs of the bucket's block list.",
		}),
		lastSync: f.NewGauge(prometheus.GaugeOpts{
			Name: "strata_bucket_last_sync_timestamp_seconds",
			Help: "When the bucket's block list was last read whole (a sync that began then succeeded).",
		}),
		cacheHits: f.NewCounter(prometheus.CounterOpts{
			Name: "strata_block_cache_hits_total",
			Help: "Bucket blocks a query found in the local block cache.",
		}),
		cacheMisses: f.NewCounter(prometheus.CounterOpts{
			Name: "strata_block_cache_misses_total",
			Help: "Bucket blocks a query had to download into the local block cache.",
		}),
		cacheBytes: f.NewGauge(prometheus.GaugeOpts{
			Name: "strata_block_cache_size_bytes",
			Help: "Bytes of bucket blocks in the local block cache.",
		}),
		cacheBlocks: f.NewGauge(prometheus.GaugeOpts{
			Name: "strata_block_cache_blocks",
			Help: "Bucket blocks in the local block cache.",
		}),
		cacheSeeds: f.NewCounter(prometheus.CounterOpts{
			Name: "strata_block_cache_seeded_total",
			Help: "Blocks this process uploaded (compactor output) and placed in the local block cache, sparing the first query over them a download.",
		}),
		cacheEvictions: f.NewCounter(prometheus.CounterOpts{
			Name: "strata_block_cache_evictions_total",
			Help: "Blocks evicted from the local block cache.",
		}),
		tenantOpenFailures: f.NewCounter(prometheus.CounterOpts{
			Name: "strata_tenant_open_failures_total",
			Help: "Failed openings of a tenant's TSDB; the tenant is retried, the others are served.",
		}),
		tenantOpenRefused: f.NewCounter(prometheus.CounterOpts{
			Name: "strata_tenant_open_refused_total",
			Help: "Openings of a tenant's TSDB refused because the process had too few free file descriptors; the tenant is tried again at its next use.",
		}),
		tenantsRefused: f.NewCounter(prometheus.CounterOpts{
			Name: "strata_tenants_refused_total",
			Help: "Writes of new tenants refused because the store holds -storage.max-tenants tenants.",
		}),
	}
}
