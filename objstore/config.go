package objstore

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/common/model"

	"github.com/strata-tsdb/strata/objstore/filesystem"
	"github.com/strata-tsdb/strata/objstore/s3"
	"github.com/strata-tsdb/strata/secret"
)

// Backends New can build, the values of Config.Backend.
const (
	BackendFilesystem = "filesystem"
	BackendS3         = "s3"
)

// Config configures the bucket: every setting is a flag -bucket.some-key
// and the YAML key some_key of the mapping this struct is decoded from
// (the bucket section of Strata's configuration file):
//
//	bucket:
//	  backend: s3                   # -bucket.backend=s3
//	  s3:
//	    endpoint: minio:9000        # -bucket.s3.endpoint=minio:9000
//	    bucket: strata              # -bucket.s3.bucket=strata
//	    path_style: true            # -bucket.s3.path-style
//	  timeout: 1m                   # -bucket.timeout=1m
//	  max_retries: 5                # -bucket.max-retries=5
type Config struct {
	// Backend is BackendFilesystem or BackendS3.
	Backend    string           `yaml:"backend"`
	Filesystem FilesystemConfig `yaml:"filesystem"`
	S3         s3.Config        `yaml:"s3"`
	// Timeout bounds each attempt of a bucket call; see RetryOptions.Timeout.
	Timeout model.Duration `yaml:"timeout"`
	// MaxRetries is how many times a failed call is retried.
	MaxRetries int `yaml:"max_retries"`
}

// FilesystemConfig configures the filesystem backend.
type FilesystemConfig struct {
	// Dir is the bucket's directory; empty means the default New is given
	// (<storage.path>/bucket in Strata).
	Dir string `yaml:"dir"`
}

// RegisterFlags registers every setting on fs under the prefix "bucket."
// with its default, and sets c to the defaults.
func (c *Config) RegisterFlags(fs *flag.FlagSet) {
	fs.StringVar(&c.Backend, "bucket.backend", BackendFilesystem, "Object storage for blocks: filesystem (a local directory) or s3 (any S3-compatible service).")
	fs.StringVar(&c.Filesystem.Dir, "bucket.filesystem.dir", "", "Directory of the filesystem bucket; empty means <storage.path>/bucket.")
	fs.StringVar(&c.S3.Endpoint, "bucket.s3.endpoint", "", "S3 endpoint, host[:port] (an http:// prefix implies -bucket.s3.insecure); empty means AWS S3 ("+s3.DefaultEndpoint+").")
	fs.StringVar(&c.S3.Bucket, "bucket.s3.bucket", "", "S3 bucket name; the bucket must exist.")
	fs.StringVar(&c.S3.Region, "bucket.s3.region", "", "S3 region; empty lets the client discover it.")
	fs.StringVar(&c.S3.AccessKey, "bucket.s3.access-key", "", "S3 access key; empty means the AWS credential chain (AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, ~/.aws/credentials, instance role).")
	secret.StringVar(fs, &c.S3.SecretKey, "bucket.s3.secret-key", "S3 secret key, with -bucket.s3.access-key; never shown (flags, /debug/pprof/cmdline). Prefer -bucket.s3.secret-key-file, or the environment (AWS_SECRET_ACCESS_KEY with AWS_ACCESS_KEY_ID and no -bucket.s3.access-key): a command line is visible to every user of the machine.")
	fs.StringVar(&c.S3.SecretKeyFile, "bucket.s3.secret-key-file", "", "File holding the S3 secret key, instead of -bucket.s3.secret-key.")
	fs.BoolVar(&c.S3.Insecure, "bucket.s3.insecure", false, "Talk to the S3 endpoint over plain HTTP instead of HTTPS.")
	fs.BoolVar(&c.S3.PathStyle, "bucket.s3.path-style", false, "Address the S3 bucket as endpoint/bucket instead of bucket.endpoint (most non-AWS services need it).")
	c.Timeout = model.Duration(time.Minute)
	fs.Var(&c.Timeout, "bucket.timeout", "Timeout of each attempt of a bucket call; uploads and listings time out only after this long without progress. 0 means none.")
	fs.IntVar(&c.MaxRetries, "bucket.max-retries", 5, "How many times a bucket call that failed for a transient reason is retried, with exponential backoff.")
}

// Validate reports the first setting that cannot work.
func (c *Config) Validate() error {
	switch {
	case c.Timeout < 0:
		return errors.New("bucket.timeout must not be negative")
	case c.MaxRetries < 0:
		return errors.New("bucket.max-retries must not be negative")
	}
	switch c.Backend {
	case BackendFilesystem:
		return nil
	case BackendS3:
		if err := c.S3.Validate(); err != nil {
			return fmt.Errorf("bucket.s3: %w", err)
		}
		return nil
	default:
		return fmt.Errorf("bucket.backend %q is not one of %s, %s", c.Backend, BackendFilesystem, BackendS3)
	}
}

// New builds the bucket c configures: the provider, wrapped in WithRetry
// and then Instrument (metrics on reg, none when reg is nil). The
// filesystem backend uses defaultDir when c has no directory. For s3, New
// checks that the bucket exists and is accessible, with retries, and fails
// if it is not.
func New(ctx context.Context, c Config, defaultDir string, logger *slog.Logger, reg prometheus.Registerer) (Bucket, error) {
	if err := c.Validate(); err != nil {
		return nil, err
	}
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	opts := RetryOptions{Timeout: time.Duration(c.Timeout), MaxRetries: c.MaxRetries, Logger: logger}
	var b Bucket
	switch c.Backend {
	case BackendFilesystem:
		dir := c.Filesystem.Dir
		if dir == "" {
			dir = defaultDir
		}
		if dir == "" {
			return nil, errors.New("bucket.filesystem.dir must be set")
		}
		fb, err := filesystem.New(dir)
		if err != nil {
			return nil, err
		}
		logger.Info("bucket ready", "backend", BackendFilesystem, "dir", fb.Dir())
		b = fb
	case BackendS3:
		sb, err := s3.New(c.S3)
		if err != nil {
			return nil, err
		}
		rb := WithRetry(sb, opts).(*retryBucket)
		if err := rb.do(ctx, "check bucket", c.S3.Bucket, func(a *attempt) (bool, error) {
			return false, sb.CheckBucket(a.ctx)
		}); err != nil {
			sb.Close()
			return nil, err
		}
		logger.Info("bucket ready", "backend", BackendS3, "bucket", c.S3.Bucket, "endpoint", c.S3.Endpoint)
		b = sb
	}
	return Instrument(WithRetry(b, opts), reg), nil
}
