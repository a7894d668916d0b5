// Package limits holds every per-tenant limit of Strata in one struct,
// declared once for its command-line flag, its key in the YAML
// configuration and its key in the runtime overrides file.
//
// The flags and the limits: section of the configuration file set the
// defaults of every tenant; the overrides file (see Overrides) replaces any of
// them for named tenants and is re-read while Strata runs. A zero limit means
// no limit.
package limits

import (
	"flag"
	"fmt"
	"time"

	"github.com/prometheus/common/model"

	"github.com/strata-tsdb/strata/internal/flagext"
)

// Limits are the limits of one tenant. The yaml tag is the key in both the
// limits: section of the configuration and a tenant's entry in the overrides
// file; the flag is -limits.<key with dashes>.
type Limits struct {
	// Ingestion.

	// IngestionRate is the sustained rate of samples (floats and
	// histograms) a tenant may write, per second; 0 is unlimited.
	IngestionRate float64 `yaml:"ingestion_rate"`
	// IngestionBurst is the size of the token bucket: the most samples
	// accepted at once above the rate. One request larger than the burst
	// is never accepted, so it must be at least the senders' batch size.
	IngestionBurst int `yaml:"ingestion_burst"`
	// MaxRequestBodyBytes bounds one remote-write body, compressed and
	// decompressed; 0 uses -remote-write.max-body-bytes.
	MaxRequestBodyBytes int64 `yaml:"max_request_body_bytes"`
	// MaxActiveSeries bounds the series in a tenant's head; in a cluster,
	// in the cluster (each ingester enforces its share, see LocalLimit).
	MaxActiveSeries int `yaml:"max_active_series"`
	// MaxActiveSeriesPerMetric bounds the series of one metric name in a
	// tenant's head; in a cluster, in the cluster.
	MaxActiveSeriesPerMetric int `yaml:"max_active_series_per_metric"`
	// MaxLabelNamesPerSeries bounds the labels of one series (its name included).
	MaxLabelNamesPerSeries int `yaml:"max_label_names_per_series"`
	// MaxLabelNameLength bounds the length in bytes of a label name.
	MaxLabelNameLength int `yaml:"max_label_name_length"`
	// MaxLabelValueLength bounds the length in bytes of a label value.
	MaxLabelValueLength int `yaml:"max_label_value_length"`
	// MaxExemplarsPerSeries bounds the exemplars of one series in one request.
	MaxExemplarsPerSeries int `yaml:"max_exemplars_per_series"`

	// HA pairs.

	// AcceptHASamples turns on de-duplication of HA Prometheus pairs.
	AcceptHASamples bool `yaml:"accept_ha_samples"`
	// HAClusterLabel names the label that identifies the HA cluster.
	HAClusterLabel string `yaml:"ha_cluster_label"`
	// HAReplicaLabel names the label that identifies the replica within its
	// cluster; it is removed from stored series.
	HAReplicaLabel string `yaml:"ha_replica_label"`
	// HAFailoverTimeout is how long the elected replica may be silent
	// before another replica of its cluster is elected.
	HAFailoverTimeout model.Duration `yaml:"ha_failover_timeout"`
	// HAFailoverBufferBytes bounds, per cluster, the requests of
	// non-elected replicas kept so that a failover leaves no gap.
	HAFailoverBufferBytes int `yaml:"ha_failover_buffer_bytes"`

	// Queries.

	// MaxQuerySeries bounds the series one query may touch.
	MaxQuerySeries int `yaml:"max_query_series"`
	// MaxQuerySamples bounds the samples one query may read.
	MaxQuerySamples int `yaml:"max_query_samples"`
	// QueryTimeout bounds one query's run time; 0 uses -query.timeout, and
	// no tenant's timeout exceeds -query.timeout.
	QueryTimeout model.Duration `yaml:"query_timeout"`
	// MaxQueryLength bounds the time range (end - start) of a range query.
	MaxQueryLength model.Duration `yaml:"max_query_length"`
	// MaxConcurrentQueries bounds the queries of a tenant evaluated at once;
	// further ones wait up to MaxQueryQueueWait, then get 503.
	MaxConcurrentQueries int `yaml:"max_concurrent_queries"`
	// MaxQueryQueueWait is how long a query waits for one of its tenant's
	// MaxConcurrentQueries slots.
	MaxQueryQueueWait model.Duration `yaml:"max_query_queue_wait"`

	// ResultsCacheMaxBytes bounds the bytes of a tenant's query results the
	// in-memory results cache holds (with memcached: the largest entry).
	ResultsCacheMaxBytes int64 `yaml:"results_cache_max_bytes"`

	// Retention in the bucket, per resolution; 0 keeps data forever. The
	// compactor reads them at every run, so a change in the overrides file
	// takes effect on the next one. Data past its resolution's retention is
	// deleted only once every coarser resolution still kept holds it.

	// RetentionRaw is how long raw data is kept.
	RetentionRaw model.Duration `yaml:"retention_raw"`
	// Retention1m is how long 1m-resolution data is kept.
	Retention1m model.Duration `yaml:"retention_1m"`
	// Retention1h is how long 1h-resolution data is kept.
	Retention1h model.Duration `yaml:"retention_1h"`
}

// RegisterFlags registers a flag for every limit on fs, with its default,
// and sets l to the defaults.
func (l *Limits) RegisterFlags(fs *flag.FlagSet) {
	fs.Float64Var(&l.IngestionRate, "limits.ingestion-rate", 0, "Samples per second a tenant may write (token bucket rate); 0 is unlimited. Over it, remote write gets 429.")
	fs.IntVar(&l.IngestionBurst, "limits.ingestion-burst", 200000, "Samples a tenant may write at once above its ingestion rate (token bucket size); at least the senders' max_samples_per_send.")
	fs.Int64Var(&l.MaxRequestBodyBytes, "limits.max-request-body-bytes", 0, "Largest remote-write body of a tenant; 0 uses -remote-write.max-body-bytes. Larger ones get 413.")
	fs.IntVar(&l.MaxActiveSeries, "limits.max-active-series", 0, "Series a tenant may have in its head; 0 is unlimited. New series beyond it are rejected with 400. In a cluster it is the cluster's limit: each ingester allows its share, limit × replication factor / healthy ingesters.")
	fs.IntVar(&l.MaxActiveSeriesPerMetric, "limits.max-active-series-per-metric", 0, "Series of one metric name a tenant may have in its head; 0 is unlimited. In a cluster it is the cluster's limit, shared as -limits.max-active-series is.")
	fs.IntVar(&l.MaxLabelNamesPerSeries, "limits.max-label-names-per-series", 0, "Labels a series may have, its name included; 0 is unlimited.")
	fs.IntVar(&l.MaxLabelNameLength, "limits.max-label-name-length", 0, "Longest label name in bytes; 0 is unlimited.")
	fs.IntVar(&l.MaxLabelValueLength, "limits.max-label-value-length", 0, "Longest label value in bytes; 0 is unlimited.")
	fs.IntVar(&l.MaxExemplarsPerSeries, "limits.max-exemplars-per-series", 0, "Exemplars one series may carry in one request; 0 is unlimited. Extra exemplars are dropped with 400.")

	fs.BoolVar(&l.AcceptHASamples, "limits.accept-ha-samples", false, "De-duplicate HA Prometheus pairs: of the series carrying the cluster and replica labels, store only the elected replica's.")
	fs.StringVar(&l.HAClusterLabel, "limits.ha-cluster-label", "cluster", "Label naming the HA cluster of a series.")
	fs.StringVar(&l.HAReplicaLabel, "limits.ha-replica-label", "__replica__", "Label naming the HA replica of a series; dropped before storing.")
	flagext.DurationVar(fs, &l.HAFailoverTimeout, "limits.ha-failover-timeout", 30*time.Second, "Silence of the elected replica after which another replica of its cluster is elected.")
	fs.IntVar(&l.HAFailoverBufferBytes, "limits.ha-failover-buffer-bytes", 32<<20, "Bytes of requests of non-elected replicas, newer than the elected replica's samples, kept per HA cluster so that a failover leaves no gap; 0 keeps none.")

	fs.IntVar(&l.MaxQuerySeries, "limits.max-query-series", 0, "Series one query may touch; 0 is unlimited. Over it, the query fails with 422 (errorType cost_limit).")
	fs.IntVar(&l.MaxQuerySamples, "limits.max-query-samples", 0, "Samples one query may read; 0 is unlimited. Over it, the query fails with 422 (errorType cost_limit).")
	flagext.DurationVar(fs, &l.QueryTimeout, "limits.query-timeout", 0, "Longest a tenant's query may run; 0 uses -query.timeout, which also caps it.")
	flagext.DurationVar(fs, &l.MaxQueryLength, "limits.max-query-length", 0, "Longest time range of a range query; 0 is unlimited. Over it, 400 (bad_data).")
	fs.IntVar(&l.MaxConcurrentQueries, "limits.max-concurrent-queries", 0, "Queries of one tenant evaluated at once; 0 is unlimited.")
	flagext.DurationVar(fs, &l.MaxQueryQueueWait, "limits.max-query-queue-wait", 10*time.Second, "How long a query waits for one of its tenant's concurrent-query slots before it gets 503 (errorType unavailable).")

	fs.Int64Var(&l.ResultsCacheMaxBytes, "limits.results-cache-max-bytes", 0, "Bytes of a tenant's query results the in-memory results cache may hold (least recently used evicted first); with memcached, the largest cached entry of the tenant. 0 means the cache's whole size.")

	flagext.DurationVar(fs, &l.RetentionRaw, "limits.retention-raw", 7*24*time.Hour, "How long a tenant's raw data is kept in the bucket; 0 keeps it forever. Raw data past it is deleted once its 1m and 1h blocks are written.")
	flagext.DurationVar(fs, &l.Retention1m, "limits.retention-1m", 30*24*time.Hour, "How long a tenant's 1m-resolution data is kept; 0 keeps it forever. Deleted past it once its 1h blocks are written.")
	flagext.DurationVar(fs, &l.Retention1h, "limits.retention-1h", 365*24*time.Hour, "How long a tenant's 1h-resolution data is kept; 0 keeps it forever.")
}

// Defaults returns the limits the flags default to.
func Defaults() Limits {
	var l Limits
	l.RegisterFlags(flag.NewFlagSet("defaults", flag.ContinueOnError))
	return l
}

// Validate reports the first limit that cannot work.
func (l *Limits) Validate() error {
	switch {
	case l.IngestionRate < 0:
		return fmt.Errorf("ingestion_rate must not be negative")
	case l.IngestionRate > 0 && l.IngestionBurst <= 0:
		return fmt.Errorf("ingestion_burst must be positive when ingestion_rate is set")
	case l.MaxRequestBodyBytes < 0, l.MaxActiveSeries < 0, l.MaxActiveSeriesPerMetric < 0,
		l.MaxLabelNamesPerSeries < 0, l.MaxLabelNameLength < 0, l.MaxLabelValueLength < 0,
		l.MaxExemplarsPerSeries < 0, l.HAFailoverBufferBytes < 0, l.MaxQuerySeries < 0, l.MaxQuerySamples < 0, l.MaxConcurrentQueries < 0,
		l.ResultsCacheMaxBytes < 0:
		return fmt.Errorf("limits must not be negative")
	case l.QueryTimeout < 0, l.MaxQueryLength < 0, l.MaxQueryQueueWait < 0, l.HAFailoverTimeout < 0,
		l.RetentionRaw < 0, l.Retention1m < 0, l.Retention1h < 0:
		return fmt.Errorf("limit durations must not be negative")
	case l.AcceptHASamples && (l.HAClusterLabel == "" || l.HAReplicaLabel == ""):
		return fmt.Errorf("ha_cluster_label and ha_replica_label must be set when accept_ha_samples is")
	case l.AcceptHASamples && l.HAClusterLabel == l.HAReplicaLabel:
		return fmt.Errorf("ha_cluster_label and ha_replica_label must differ")
	}
	return nil
}

// Error is a limit a request or a series ran into. Its message names the limit.
type Error struct {
	// Limit is the yaml key of the limit, also the reason label of the
	// rejection metrics.
	Limit string
	// Msg says what exceeded it.
	Msg string
}

func (e *Error) Error() string { return fmt.Sprintf("%s (limit %s)", e.Msg, e.Limit) }
