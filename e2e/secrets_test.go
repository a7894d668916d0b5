package e2e

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/golang/snappy"
	"github.com/prometheus/prometheus/prompb"

	"github.com/strata-tsdb/strata/objstore"
	"github.com/strata-tsdb/strata/objstore/miniotest"
)

// TestNoSecretInAnswers starts the binary against a real MinIO with
// authentication on and the S3 secret key given each way Strata takes it
// (a flag, a file, the environment through the configuration file), proves
// the key is used (a flush uploads to MinIO), and checks that no HTTP answer
// and no log line shows it: the profiles, the command line and the admin
// endpoints answer 401 without credentials, and with them the command line
// and the flag listing show the key masked.
func TestNoSecretInAnswers(t *testing.T) {
	requireE2E(t)
	minio := miniotest.Start(t)
	dir := t.TempDir()
	authFile := filepath.Join(dir, "auth.yaml")
	keyFile := filepath.Join(dir, "s3-secret")
	cfgFile := filepath.Join(dir, "strata.yaml")
	for path, content := range map[string]string{
		authFile: "tenants:\n  team-a: {bearer_token: tok-a}\n",
		keyFile:  minio.SecretKey + "\n",
		cfgFile:  "bucket:\n  s3:\n    secret_key: ${STRATA_E2E_S3_SECRET}\n",
	} {
		if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	bkt, err := objstore.New(context.Background(), minio.Config(), "", nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = bkt.Close() })
	common := []string{
		"-tenant.auth-file", authFile,
		"-bucket.backend=s3", "-bucket.s3.endpoint", minio.Endpoint, "-bucket.s3.bucket", minio.Bucket,
		"-bucket.s3.access-key", minio.AccessKey, "-bucket.s3.insecure", "-bucket.s3.path-style",
		"-compactor.enabled=false",
	}
	for _, tc := range []struct {
		name string
		env  []string
		args []string
	}{
		{"flag", nil, []string{"-bucket.s3.secret-key", minio.SecretKey}},
		{"flag=", nil, []string{"-bucket.s3.secret-key=" + minio.SecretKey}},
		{"file", nil, []string{"-bucket.s3.secret-key-file", keyFile}},
		{"environment", []string{"STRATA_E2E_S3_SECRET=" + minio.SecretKey}, []string{"-config.file", cfgFile, "-config.expand-env"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := startStrataEnv(t, tc.env, "", filepath.Join(t.TempDir(), "data"), append(append([]string{}, common...), tc.args...)...)
			do := func(method, path, token string) (int, string) {
				t.Helper()
				req, err := http.NewRequest(method, s.url+path, nil)
				if err != nil {
					t.Fatal(err)
				}
				if token != "" {
					req.Header.Set("Authorization", "Bearer "+token)
				}
				resp, err := http.DefaultClient.Do(req)
				if err != nil {
					t.Fatalf("%s %s: %v", method, path, err)
				}
				defer resp.Body.Close()
				b, _ := io.ReadAll(resp.Body)
				return resp.StatusCode, string(b)
			}

			// The key works: a sample written and flushed is in MinIO.
			now := time.Now().UnixMilli()
			raw, _ := (&prompb.WriteRequest{Timeseries: []prompb.TimeSeries{
				newSeries([]prompb.Sample{{Timestamp: now, Value: 1}}, "__name__", "secret_probe"),
			}}).Marshal()
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			if code, body, err := sendWriteV1Auth(ctx, s.url+"/api/v1/write", "tok-a", raw); err != nil || code != http.StatusNoContent {
				t.Fatalf("write: HTTP %d %s %v", code, body, err)
			}
			if code, body := do(http.MethodPost, "/api/v1/admin/flush", "tok-a"); code != http.StatusOK {
				t.Fatalf("flush with the key from %s: HTTP %d %s", tc.name, code, body)
			}
			if n := countObjects(t, bkt, "team-a/"); n == 0 {
				t.Fatalf("flush answered 200 but MinIO holds no object of team-a")
			}

			// The status endpoints the web UI reads are the tenant's, behind its credentials too.
			status := []string{"/api/v1/status/runtimeinfo", "/api/v1/status/tenants", "/api/v1/status/compactor", "/api/v1/status/tsdb/blocks", "/api/v1/status/walreplay"}
			for _, path := range append([]string{"/debug/pprof/", "/debug/pprof/cmdline", "/debug/pprof/heap", "/api/v1/status/flags", "/api/v1/status/config", "/api/v1/admin/flush", "/-/reload"}, status...) {
				method := http.MethodGet
				if path == "/api/v1/admin/flush" || path == "/-/reload" {
					method = http.MethodPost
				}
				if code, body := do(method, path, ""); code != http.StatusUnauthorized {
					t.Errorf("%s %s without credentials: HTTP %d %.200s, want 401", method, path, code, body)
				}
			}
			for _, path := range append([]string{"/debug/pprof/cmdline", "/api/v1/status/flags", "/api/v1/status/config", "/debug/pprof/goroutine?debug=2", "/metrics"}, status...) {
				code, body := do(http.MethodGet, path, "tok-a")
				if code != http.StatusOK {
					t.Errorf("GET %s: HTTP %d %.200s", path, code, body)
				}
				if strings.Contains(body, minio.SecretKey) {
					t.Errorf("GET %s shows the S3 secret key", path)
				}
				if strings.HasPrefix(tc.name, "flag") && path == "/debug/pprof/cmdline" && !strings.Contains(body, "<secret>") {
					t.Errorf("GET %s = %q, want the key masked as <secret>", path, body)
				}
			}
			if code, body := do(http.MethodGet, "/api/v1/status/flags", "tok-a"); !strings.Contains(body, `"bucket.s3.secret-key":"`) || code != http.StatusOK {
				t.Errorf("flags: HTTP %d %.300s, want every flag listed", code, body)
			}
			if err := s.Stop(30 * time.Second); err != nil {
				t.Logf("stop: %v", err)
			}
			if strings.Contains(s.Log(), minio.SecretKey) {
				t.Errorf("the log (%s) shows the S3 secret key", s.LogPath)
			}
		})
	}
}

// countObjects returns how many objects bkt holds below dir.
func countObjects(t *testing.T, bkt objstore.Bucket, dir string) int {
	t.Helper()
	n := 0
	if err := bkt.Iter(context.Background(), dir, func(string) error { n++; return nil }, true); err != nil {
		t.Fatalf("list %s: %v", dir, err)
	}
	return n
}

// sendWriteV1Auth sends the encoded remote write 1.0 request raw to url
// with a bearer token.
func sendWriteV1Auth(ctx context.Context, url, token string, raw []byte) (int, string, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, bytes.NewReader(snappy.Encode(nil, raw)))
	if err != nil {
		return 0, "", err
	}
	req.Header.Set("Content-Type", "application/x-protobuf")
	req.Header.Set("Content-Encoding", "snappy")
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, "", err
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b), nil
}
