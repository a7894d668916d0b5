package config_test

import (
	"errors"
	"flag"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/common/model"

	"github.com/strata-tsdb/strata/secret"

	"github.com/strata-tsdb/strata/config"
	"github.com/strata-tsdb/strata/server"
)

func writeFile(t *testing.T, body string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "strata.yml")
	if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestLoadPrecedence(t *testing.T) {
	file := writeFile(t, `
http:
  listen_address: ":7777"
storage:
  path: /from/file
  out_of_order_window: 30m
query:
  max_samples: 1000
`)
	for _, tc := range []struct {
		name       string
		args       []string
		wantAddr   string
		wantPath   string
		wantOOO    time.Duration
		wantSample int
	}{
		{"defaults", nil, server.DefaultListenAddress, "./data", 10 * time.Minute, 50000000},
		{"file", []string{"-config.file", file}, ":7777", "/from/file", 30 * time.Minute, 1000},
		{"flag over file", []string{"-config.file", file, "-storage.path", "/from/flag"}, ":7777", "/from/flag", 30 * time.Minute, 1000},
		{"flag before file flag", []string{"-storage.out-of-order-window=1m", "-config.file=" + file}, ":7777", "/from/file", time.Minute, 1000},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, err := server.LoadConfig(tc.args, io.Discard)
			if err != nil {
				t.Fatal(err)
			}
			if c.HTTP.ListenAddress != tc.wantAddr || c.Storage.Path != tc.wantPath ||
				c.Storage.OutOfOrderWindow != model.Duration(tc.wantOOO) || c.Query.Engine.MaxSamples != tc.wantSample {
				t.Fatalf("got addr=%s path=%s ooo=%s samples=%d", c.HTTP.ListenAddress, c.Storage.Path, c.Storage.OutOfOrderWindow, c.Query.Engine.MaxSamples)
			}
		})
	}
}

func TestLoadErrors(t *testing.T) {
	for _, tc := range []struct {
		name string
		args []string
		want string
	}{
		{"unknown yaml key", []string{"-config.file", writeFile(t, "storage:\n  pth: x\n")}, "field pth not found"},
		{"missing file", []string{"-config.file", "/does/not/exist.yml"}, "read config file"},
		{"bad duration", []string{"-query.timeout", "soon"}, "invalid value"},
		{"invalid level", []string{"-log.level", "loud"}, "log.level"},
		{"no default tenant", []string{"-tenant.default", ""}, "tenant.default"},
		{"stray argument", []string{"serve"}, "unexpected arguments"},
		{"negative shards", []string{"-query.shards", "-1"}, "query.shards"},
		// A write timeout must leave a query that runs to its timeout time
		// to answer, or every slow query's answer is cut.
		{"write timeout within the query timeout", []string{"-http.write-timeout", "1m", "-query.timeout", "2m"}, "http.write-timeout"},
		{"negative connection limit", []string{"-http.max-connections", "-1"}, "http.max-connections"},
		{"negative tenant limit", []string{"-storage.max-tenants", "-1"}, "storage.max-tenants"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := server.LoadConfig(tc.args, io.Discard)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err = %v, want it to mention %q", err, tc.want)
			}
		})
	}
}

func TestHelpListsFlags(t *testing.T) {
	var out strings.Builder
	_, err := server.LoadConfig([]string{"-h"}, &out)
	if !errors.Is(err, flag.ErrHelp) {
		t.Fatalf("err = %v, want flag.ErrHelp", err)
	}
	for _, f := range []string{"-http.listen-address", "-storage.path", "-config.file", "-storage.out-of-order-window", "-limits.retention-raw", "-help-all"} {
		if !strings.Contains(out.String(), f) {
			t.Errorf("help does not list %s", f)
		}
	}
	// The advanced flags are left to -help-all.
	for _, f := range []string{"-query.shards", "-storage.block-cache-max-bytes", "-runtime.gogc"} {
		if strings.Contains(out.String(), f) {
			t.Errorf("-h lists the advanced flag %s", f)
		}
	}
	var all strings.Builder
	if _, err := server.LoadConfig([]string{"-help-all"}, &all); !errors.Is(err, flag.ErrHelp) {
		t.Fatalf("-help-all: err = %v, want flag.ErrHelp", err)
	}
	fs := flag.NewFlagSet("strata", flag.ContinueOnError)
	server.NewConfig().RegisterFlags(fs)
	fs.VisitAll(func(f *flag.Flag) {
		if !strings.Contains(all.String(), "-"+f.Name+" ") && !strings.Contains(all.String(), "-"+f.Name+"\n") {
			t.Errorf("-help-all does not list -%s", f.Name)
		}
	})
	if lines := strings.Count(out.String(), "\n  -"); lines > 25 {
		t.Errorf("-h lists %d flags, not the few a new user needs", lines)
	}
}

// TestSecretsNeverShown: a secret given as a flag or through the file's
// environment expansion is used as given, and shown as secret.Mask in the
// flag listing and in a redacted command line.
func TestSecretsNeverShown(t *testing.T) {
	const key = "hunter2-s3-secret"
	t.Setenv("STRATA_TEST_S3_SECRET", key)
	file := filepath.Join(t.TempDir(), "strata.yaml")
	if err := os.WriteFile(file, []byte("bucket:\n  s3:\n    access_key: AK\n    secret_key: ${STRATA_TEST_S3_SECRET}\nnotifications:\n  pagerduty:\n    - routing_key: pay$$me\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, args := range [][]string{
		{"-bucket.s3.access-key=AK", "-bucket.s3.secret-key=" + key},
		{"-bucket.s3.access-key", "AK", "-bucket.s3.secret-key", key},
		{"-config.file=" + file, "-config.expand-env"},
	} {
		c, err := server.LoadConfig(args, io.Discard)
		if err != nil {
			t.Fatalf("%q: %v", args, err)
		}
		if c.Bucket.S3.SecretKey != key {
			t.Errorf("%q: secret key %q, want %q", args, c.Bucket.S3.SecretKey, key)
		}
		if got := c.Flags()["bucket.s3.secret-key"]; got != secret.Mask {
			t.Errorf("%q: flags show the secret key as %q", args, got)
		}
		for name, v := range c.Flags() {
			if strings.Contains(v, key) {
				t.Errorf("%q: flag %s shows the secret: %q", args, name, v)
			}
		}
		if red := strings.Join(config.RedactArgs(args, server.NewConfig), " "); strings.Contains(red, key) {
			t.Errorf("RedactArgs(%q) = %q", args, red)
		}
		if args[0] == "-config.file="+file {
			if got := c.Notifications.PagerDuty[0].RoutingKey; got != "pay$me" {
				t.Errorf("$$ expanded to %q, want a literal $", got)
			}
		}
	}
}
