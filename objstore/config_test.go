package objstore_test

import (
	"bytes"
	"context"
	"flag"
	"io"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/common/model"
	"gopkg.in/yaml.v3"

	"github.com/strata-tsdb/strata/internal/testutil"
	"github.com/strata-tsdb/strata/objstore"
	"github.com/strata-tsdb/strata/objstore/miniotest"
)

func parseFlags(t *testing.T, args ...string) objstore.Config {
	t.Helper()
	var c objstore.Config
	fs := flag.NewFlagSet("test", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	c.RegisterFlags(fs)
	if err := fs.Parse(args); err != nil {
		t.Fatal(err)
	}
	return c
}

func TestConfigDefaults(t *testing.T) {
	c := parseFlags(t)
	want := objstore.Config{Backend: "filesystem", Timeout: model.Duration(time.Minute), MaxRetries: 5}
	if c != want {
		t.Errorf("defaults %+v, want %+v", c, want)
	}
	if err := c.Validate(); err != nil {
		t.Errorf("defaults invalid: %v", err)
	}
}

func TestConfigFlags(t *testing.T) {
	c := parseFlags(t,
		"-bucket.backend=s3",
		"-bucket.filesystem.dir=/d",
		"-bucket.s3.endpoint=minio:9000",
		"-bucket.s3.bucket=blocks",
		"-bucket.s3.region=eu-west-1",
		"-bucket.s3.access-key=ak",
		"-bucket.s3.secret-key=sk",
		"-bucket.s3.insecure",
		"-bucket.s3.path-style",
		"-bucket.timeout=30s",
		"-bucket.max-retries=2",
	)
	want := objstore.Config{
		Backend:    "s3",
		Filesystem: objstore.FilesystemConfig{Dir: "/d"},
		Timeout:    model.Duration(30 * time.Second),
		MaxRetries: 2,
	}
	want.S3.Endpoint, want.S3.Bucket, want.S3.Region = "minio:9000", "blocks", "eu-west-1"
	want.S3.AccessKey, want.S3.SecretKey, want.S3.Insecure, want.S3.PathStyle = "ak", "sk", true, true
	if c != want {
		t.Errorf("parsed %+v, want %+v", c, want)
	}
	if err := c.Validate(); err != nil {
		t.Error(err)
	}
}

func TestConfigYAML(t *testing.T) {
	c := parseFlags(t)
	doc := `
backend: s3
filesystem:
  dir: /d
s3:
  endpoint: minio:9000
  bucket: blocks
  region: eu-west-1
  access_key: ak
  secret_key: sk
  insecure: true
  path_style: true
timeout: 30s
max_retries: 2
`
	dec := yaml.NewDecoder(strings.NewReader(doc))
	dec.KnownFields(true)
	if err := dec.Decode(&c); err != nil {
		t.Fatal(err)
	}
	flags := parseFlags(t, "-bucket.backend=s3", "-bucket.filesystem.dir=/d", "-bucket.s3.endpoint=minio:9000",
		"-bucket.s3.bucket=blocks", "-bucket.s3.region=eu-west-1", "-bucket.s3.access-key=ak", "-bucket.s3.secret-key=sk",
		"-bucket.s3.insecure", "-bucket.s3.path-style", "-bucket.timeout=30s", "-bucket.max-retries=2")
	if c != flags {
		t.Errorf("YAML gave %+v, flags %+v", c, flags)
	}
	// Every key of the YAML is a flag and back.
	out, err := yaml.Marshal(c)
	if err != nil {
		t.Fatal(err)
	}
	var back objstore.Config
	dec = yaml.NewDecoder(bytes.NewReader(out))
	dec.KnownFields(true)
	if err := dec.Decode(&back); err != nil || back != c {
		t.Errorf("round trip: %+v, %v", back, err)
	}
}

func TestConfigValidate(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want string // "" for valid
	}{
		{[]string{"-bucket.backend=gcs"}, `bucket.backend "gcs"`},
		{[]string{"-bucket.backend=s3"}, "bucket name must be set"},
		{[]string{"-bucket.backend=s3", "-bucket.s3.bucket=b"}, ""},
		{[]string{"-bucket.backend=s3", "-bucket.s3.bucket=b", "-bucket.s3.access-key=a"}, "secret key"},
		{[]string{"-bucket.backend=s3", "-bucket.s3.bucket=b", "-bucket.s3.secret-key=a"}, "access key"},
		{[]string{"-bucket.backend=s3", "-bucket.s3.bucket=b", "-bucket.s3.endpoint=http://minio:9000"}, ""},
		{[]string{"-bucket.backend=s3", "-bucket.s3.bucket=b", "-bucket.s3.endpoint=minio:9000/path"}, "host[:port]"},
		{[]string{"-bucket.max-retries=-1"}, "bucket.max-retries"},
		{[]string{"-bucket.timeout=0s", "-bucket.max-retries=0"}, ""},
	} {
		c := parseFlags(t, tc.args...)
		err := c.Validate()
		switch {
		case tc.want == "" && err != nil:
			t.Errorf("%v: %v", tc.args, err)
		case tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)):
			t.Errorf("%v: %v, want an error with %q", tc.args, err, tc.want)
		}
	}
	c := parseFlags(t)
	c.Timeout = model.Duration(-time.Second)
	if err := c.Validate(); err == nil || !strings.Contains(err.Error(), "bucket.timeout") {
		t.Errorf("negative timeout: %v", err)
	}
}

func TestNewFilesystem(t *testing.T) {
	ctx := context.Background()
	def := filepath.Join(t.TempDir(), "bucket")
	reg := prometheus.NewRegistry()
	b, err := objstore.New(ctx, parseFlags(t), def, nil, reg)
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	if want := "filesystem:" + def; b.Name() != want {
		t.Errorf("name %q, want %q", b.Name(), want)
	}
	upload(t, b, "x", "x")
	if n := testutil.RequireMetric(t, reg, "strata_objstore_operations_total", "operation", "upload"); n != 1 {
		t.Errorf("uploads counted: %v", n)
	}

	dir := filepath.Join(t.TempDir(), "explicit")
	b2, err := objstore.New(ctx, parseFlags(t, "-bucket.filesystem.dir="+dir), def, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	if want := "filesystem:" + dir; b2.Name() != want {
		t.Errorf("name %q, want %q", b2.Name(), want)
	}

	if _, err := objstore.New(ctx, parseFlags(t), "", nil, nil); err == nil {
		t.Error("no directory at all: no error")
	}
	if _, err := objstore.New(ctx, parseFlags(t, "-bucket.backend=nope"), def, nil, nil); err == nil {
		t.Error("invalid config: no error")
	}
}

func TestNewS3(t *testing.T) {
	if testing.Short() {
		t.Skip("starts MinIO")
	}
	srv := miniotest.Start(t)
	ctx := context.Background()

	b, err := objstore.New(ctx, srv.Config(), "", nil, prometheus.NewRegistry())
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	if want := "s3:" + srv.Bucket; b.Name() != want {
		t.Errorf("name %q, want %q", b.Name(), want)
	}
	upload(t, b, "x", "x")
	rc, err := b.Get(ctx, "x")
	if got := readAll(t, rc, err); got != "x" {
		t.Errorf("got %q", got)
	}

	// A missing bucket is a clear, immediate error.
	c := srv.Config()
	c.S3.Bucket = "no-such-bucket"
	start := time.Now()
	_, err = objstore.New(ctx, c, "", nil, nil)
	if err == nil || !strings.Contains(err.Error(), "no-such-bucket") || !strings.Contains(err.Error(), "does not exist") {
		t.Errorf("missing bucket: %v", err)
	}
	if took := time.Since(start); took > 5*time.Second {
		t.Errorf("missing bucket reported after %s", took)
	}

	// Wrong credentials fail without retries.
	c = srv.Config()
	c.S3.SecretKey = "wrong-secret"
	if _, err := objstore.New(ctx, c, "", nil, nil); err == nil {
		t.Error("wrong credentials: no error")
	}
}
