package api

import "flag"

// Config configures what the API serves beyond the engine: remote read.
// Its keys live in the query: section of the configuration file.
type Config struct {
	RemoteReadSampleLimit int `yaml:"remote_read_sample_limit"`
	RemoteReadConcurrency int `yaml:"remote_read_concurrency"`
}

// RegisterFlags registers the flags of c on fs, with their defaults.
func (c *Config) RegisterFlags(fs *flag.FlagSet) {
	fs.IntVar(&c.RemoteReadSampleLimit, "query.remote-read-sample-limit", 50000000, "Most samples one SAMPLES remote-read response may hold; 0 means no limit.")
	fs.IntVar(&c.RemoteReadConcurrency, "query.remote-read-concurrency", 10, "Most remote-read requests served at once.")
}
