package api

import "flag"

// Config configures what the API serves beyond the engine: remote read and
// cardinality.
// Its keys live in the query: section of the configuration file.
type Config struct {
	RemoteReadSampleLimit int `yaml:"remote_read_sample_limit"`
	RemoteReadConcurrency int `yaml:"remote_read_concurrency"`
	// CardinalityMaxSeries bounds the series one cardinality request
	// counts (the tenant's max_query_series, when lower, bounds it too).
	CardinalityMaxSeries int `yaml:"cardinality_max_series"`
}

// RegisterFlags registers the flags of c on fs, with their defaults.
func (c *Config) RegisterFlags(fs *flag.FlagSet) {
	fs.IntVar(&c.RemoteReadSampleLimit, "query.remote-read-sample-limit", 50000000, "Most samples one SAMPLES remote-read response may hold; 0 means no limit.")
	fs.IntVar(&c.RemoteReadConcurrency, "query.remote-read-concurrency", 10, "Most remote-read requests served at once.")
	fs.IntVar(&c.CardinalityMaxSeries, "query.cardinality-max-series", 1000000, "Most series one cardinality request (/api/v1/cardinality/*, /api/v1/status/tsdb over a time range) may count; over it the request fails with 422. 0 means no limit.")
}

// AdminConfig is the api: section: what the API serves beyond Prometheus's
// read endpoints.
type AdminConfig struct {
	// EnableAdmin serves Prometheus's TSDB admin endpoints that delete data
	// (delete_series, clean_tombstones), per tenant.
	EnableAdmin bool `yaml:"enable_admin"`
}

// RegisterFlags registers the flags of c on fs, with their defaults.
func (c *AdminConfig) RegisterFlags(fs *flag.FlagSet) {
	fs.BoolVar(&c.EnableAdmin, "api.enable-admin", false, "Serve /api/v1/admin/tsdb/delete_series and clean_tombstones, which delete a tenant's series from its head and the bucket (the tenant's own, authenticated when -tenant.auth-file is set). Off, they answer \"admin APIs disabled\", as Prometheus.")
}
