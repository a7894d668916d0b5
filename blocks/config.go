package blocks

import (
	"errors"
	"flag"
	"time"

	"github.com/prometheus/common/model"

	"github.com/strata-tsdb/strata/internal/flagext"
)

// Config configures the store.
type Config struct {
	Path                        string         `yaml:"path"`
	OutOfOrderWindow            model.Duration `yaml:"out_of_order_window"`
	BlockDuration               model.Duration `yaml:"block_duration"`
	LocalRetention              model.Duration `yaml:"local_retention"`
	MaxExemplars                int64          `yaml:"max_exemplars"`
	WALCompression              bool           `yaml:"wal_compression"`
	StartTimestampZeroIngestion bool           `yaml:"start_timestamp_zero_ingestion"`
	StartTimestampStorage       bool           `yaml:"start_timestamp_storage"`
	ShipInterval                model.Duration `yaml:"ship_interval"`
	BucketSyncInterval          model.Duration `yaml:"bucket_sync_interval"`
	BlockCacheDir               string         `yaml:"block_cache_dir"`
	BlockCacheMaxBytes          int64          `yaml:"block_cache_max_bytes"`
	FlushOnShutdown             bool           `yaml:"flush_on_shutdown"`
	MaxTenants                  int            `yaml:"max_tenants"`
	TenantIdleTimeout           model.Duration `yaml:"tenant_idle_timeout"`
	MinFreeBytes                int64          `yaml:"min_free_bytes"`
}

// RegisterFlags registers the flags of c on fs, with their defaults.
func (c *Config) RegisterFlags(fs *flag.FlagSet) {
	fs.StringVar(&c.Path, "storage.path", "./data", "Data directory: WAL, head and local blocks of every tenant.")
	flagext.DurationVar(fs, &c.OutOfOrderWindow, "storage.out-of-order-window", 10*time.Minute, "How far behind a series' newest sample a sample is still accepted.")
	flagext.DurationVar(fs, &c.BlockDuration, "storage.block-duration", 2*time.Hour, "Time range of the blocks cut from the head.")
	flagext.DurationVar(fs, &c.LocalRetention, "storage.local-retention", 24*time.Hour, "How long local copies of blocks are kept once shipped to the bucket; blocks not yet shipped are never deleted locally.")
	fs.Int64Var(&c.MaxExemplars, "storage.max-exemplars", 100000, "Exemplars kept in memory per tenant; 0 disables exemplar storage.")
	fs.BoolVar(&c.WALCompression, "storage.wal-compression", true, "Compress WAL records with snappy.")
	fs.BoolVar(&c.StartTimestampZeroIngestion, "storage.start-timestamp-zero-ingestion", false, "Store a zero sample at each series' start (created) timestamp, as Prometheus's created-timestamp-zero-ingestion.")
	fs.BoolVar(&c.StartTimestampStorage, "storage.start-timestamp-storage", false, "Keep each sample's start (created) timestamp in chunks (Prometheus's experimental st-storage, XOR2 chunks); PromQL's start-timestamp aware functions use it.")
	flagext.DurationVar(fs, &c.ShipInterval, "storage.ship-interval", 30*time.Second, "How often new local blocks are uploaded to the bucket (failed uploads are retried then).")
	flagext.DurationVar(fs, &c.BucketSyncInterval, "storage.bucket-sync-interval", time.Minute, "How often the list of blocks in the bucket is refreshed.")
	fs.StringVar(&c.BlockCacheDir, "storage.block-cache-dir", "", "Directory of the cache of bucket blocks downloaded for queries; empty means <storage.path>/block-cache.")
	fs.Int64Var(&c.BlockCacheMaxBytes, "storage.block-cache-max-bytes", 10<<30, "Size limit of the block cache; least recently used blocks are evicted beyond it.")
	fs.BoolVar(&c.FlushOnShutdown, "storage.flush-on-shutdown", false, "On shutdown, cut the whole head into blocks and ship them, so that the data directory can be lost afterwards.")
	fs.IntVar(&c.MaxTenants, "storage.max-tenants", 0, "Most tenants this process stores; a write of a new tenant beyond it gets 400 and leaves nothing on disk. Tenants named in the overrides file (-overrides.file) are always admitted. 0 means no limit.")
	flagext.DurationVar(fs, &c.TenantIdleTimeout, "storage.tenant-idle-timeout", time.Hour, "How long a tenant may go without writes or reads before its head is cut into blocks, shipped, and its TSDB closed (its memory and open files freed); it opens again on its next use. 0 keeps tenants open.")
	fs.Int64Var(&c.MinFreeBytes, "storage.min-free-bytes", 256<<20, "Free space of the data directory's file system below which writes are refused with 503 (reads are served), so that the disk never fills under the TSDBs; half of it is kept reserved in a file, released when a start finds the disk nearly full. 0 turns both off.")
	flagext.MarkBasic("storage.path", "storage.out-of-order-window")
}

// Validate reports a setting that cannot work.
func (c *Config) Validate() error {
	switch {
	case c.Path == "":
		return errors.New("storage.path must be set")
	case c.BlockDuration <= 0 || (24*time.Hour)%time.Duration(c.BlockDuration) != 0:
		return errors.New("storage.block-duration must divide 24h (1h, 2h, 3h, ..., 24h, or 5m, 10m, 30m...): the compactor merges blocks into 12h and 24h windows")
	case c.OutOfOrderWindow < 0:
		return errors.New("storage.out-of-order-window must not be negative")
	case c.MaxTenants < 0 || c.MinFreeBytes < 0:
		return errors.New("storage.max-tenants and storage.min-free-bytes must not be negative")
	case c.BlockCacheMaxBytes <= 0:
		return errors.New("storage.block-cache-max-bytes must be positive")
	}
	return nil
}

// Options returns the store options c sets; the caller adds the bucket,
// the tenants' series callback and admission, the logger and the
// registerer.
func (c *Config) Options() Options {
	return Options{
		Dir:                         c.Path,
		OutOfOrderWindow:            time.Duration(c.OutOfOrderWindow),
		BlockDuration:               time.Duration(c.BlockDuration),
		Retention:                   time.Duration(c.LocalRetention),
		MaxExemplars:                c.MaxExemplars,
		WALCompression:              c.WALCompression,
		StartTimestampZeroIngestion: c.StartTimestampZeroIngestion,
		StoreStartTimestamps:        c.StartTimestampStorage,
		ShipInterval:                time.Duration(c.ShipInterval),
		SyncInterval:                time.Duration(c.BucketSyncInterval),
		CacheDir:                    c.BlockCacheDir,
		CacheMaxBytes:               c.BlockCacheMaxBytes,
		MaxTenants:                  c.MaxTenants,
		IdleTimeout:                 time.Duration(c.TenantIdleTimeout),
		MinFreeBytes:                c.MinFreeBytes,
	}
}
