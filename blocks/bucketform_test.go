package blocks_test

import (
	"bytes"
	"context"
	"io"
	"math"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"os"
	"path"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/golang/snappy"
	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/model/value"
	"github.com/prometheus/prometheus/prompb"
	"github.com/prometheus/prometheus/tsdb/chunkenc"

	"github.com/strata-tsdb/strata/blocks"
	"github.com/strata-tsdb/strata/blocks/bucketcodec"
	"github.com/strata-tsdb/strata/internal/gen"
	"github.com/strata-tsdb/strata/objstore"
	"github.com/strata-tsdb/strata/remotewrite"
	"github.com/strata-tsdb/strata/tenant"
)

// bitSample is a sample with its value's exact bits, so that NaNs compare.
type bitSample struct {
	t int64
	v uint64
}

func readBits(t *testing.T, s *blocks.Store, id string) map[string][]bitSample {
	t.Helper()
	q, err := s.Queryable().Querier(0, 1<<62)
	if err != nil {
		t.Fatal(err)
	}
	defer q.Close()
	set := q.Select(tenant.WithID(context.Background(), id), true, nil, labels.MustNewMatcher(labels.MatchRegexp, model.MetricNameLabel, ".+"))
	out := map[string][]bitSample{}
	for set.Next() {
		it := set.At().Iterator(nil)
		var ss []bitSample
		for it.Next() == chunkenc.ValFloat {
			ts, v := it.At()
			ss = append(ss, bitSample{ts, math.Float64bits(v)})
		}
		if err := it.Err(); err != nil {
			t.Fatal(err)
		}
		out[set.At().Labels().String()] = ss
	}
	if err := set.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}

// remoteWriteHours sends hours of one node exporter's series at 15s ending
// now through the remote-write handler, plus one series of awkward floats
// (random, -0, ±Inf, a stale marker) that the bucket form keeps raw or as
// exceptions. It returns the number of samples sent.
func remoteWriteHours(t *testing.T, url, id string, hours int) int {
	t.Helper()
	const step = 15 * time.Second
	end := time.Now().Truncate(step)
	start := end.Add(-time.Duration(hours) * time.Hour)
	series := gen.NodeExporterSeries(1)
	g := gen.NewGenerator(series, step.Milliseconds(), 11)
	rng := rand.New(rand.NewPCG(1, 2))
	odd := prompb.TimeSeries{Labels: []prompb.Label{{Name: "__name__", Value: "odd_values"}, {Name: "job", Value: "test"}}}
	ts := make([]prompb.TimeSeries, len(series))
	for i, s := range series {
		s.Labels.Range(func(l labels.Label) { ts[i].Labels = append(ts[i].Labels, prompb.Label{Name: l.Name, Value: l.Value}) })
	}
	n := 0
	send := func() {
		req := &prompb.WriteRequest{Timeseries: append(ts, odd)}
		raw, err := req.Marshal()
		if err != nil {
			t.Fatal(err)
		}
		hr, err := http.NewRequest(http.MethodPost, url, bytes.NewReader(snappy.Encode(nil, raw)))
		if err != nil {
			t.Fatal(err)
		}
		hr.Header.Set("Content-Type", "application/x-protobuf")
		hr.Header.Set("Content-Encoding", "snappy")
		hr.Header.Set("X-Prometheus-Remote-Write-Version", "0.1.0")
		hr.Header.Set(tenant.HeaderName, id)
		resp, err := http.DefaultClient.Do(hr)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusNoContent {
			t.Fatalf("remote write: HTTP %d: %s", resp.StatusCode, body)
		}
		for i := range ts {
			n += len(ts[i].Samples)
			ts[i].Samples = ts[i].Samples[:0]
		}
		n += len(odd.Samples)
		odd.Samples = odd.Samples[:0]
	}
	k := 0
	for at := start; !at.After(end); at = at.Add(step) {
		ms := at.UnixMilli()
		g.Next(ms, func(i int, v float64) { ts[i].Samples = append(ts[i].Samples, prompb.Sample{Timestamp: ms, Value: v}) })
		var v float64
		switch k % 6 {
		case 0:
			v = rng.NormFloat64()
		case 1:
			v = math.Copysign(0, -1)
		case 2:
			v = math.Inf(1 - 2*(k%2))
		case 3:
			v = float64(k) / 1000
		case 4:
			v = math.Float64frombits(value.StaleNaN)
		default:
			v = 1e300 * rng.Float64()
		}
		odd.Samples = append(odd.Samples, prompb.Sample{Timestamp: ms, Value: v})
		if k++; k%40 == 0 {
			send()
		}
	}
	send()
	return n
}

// TestRemoteWriteShipQueryBucketForm follows samples along the real path:
// remote write, head, flush and ship in the bucket form, loss of the local
// copy, download and query through the bucket. Every sample must come back
// bit for bit, PromQL answers must not change, and the bucket must hold the
// encoded objects.
func TestRemoteWriteShipQueryBucketForm(t *testing.T) {
	forEachBucket(t, func(t *testing.T, bkt objstore.Bucket) {
		dir := t.TempDir()
		s := openBucketStore(t, dir, bkt, nil)
		srv := httptest.NewServer(remotewrite.NewHandler(s.Store, remotewrite.Options{Tenants: tenant.Resolver{Default: "anonymous"}}))
		defer srv.Close()
		n := remoteWriteHours(t, srv.URL, "team-a", 5)
		before := readBits(t, s.Store, "team-a")
		evalEnd := time.Now().Truncate(time.Minute)
		answers := promqlAnswers(t, s.Store, "team-a", evalEnd)
		got := 0
		for _, ss := range before {
			got += len(ss)
		}
		if got != n {
			t.Fatalf("head holds %d samples, sent %d", got, n)
		}
		if err := s.Flush(context.Background()); err != nil {
			t.Fatal(err)
		}
		shipped := bucketBlockIDs(t, bkt, "team-a")
		if len(shipped) < 2 {
			t.Fatalf("5h shipped as %d blocks", len(shipped))
		}
		for _, b := range shipped {
			objs := objectsOf(t, bkt, path.Join("team-a", b))
			for _, want := range []string{"index.zst", "chunks/000001.sc", "meta.json"} {
				if !contains(objs, want) {
					t.Fatalf("block %s in the bucket: objects %v lack %s", b, objs, want)
				}
			}
			if contains(objs, "index") || contains(objs, "chunks/000001") {
				t.Fatalf("block %s in the bucket: plain objects %v", b, objs)
			}
		}
		// A plain block as shipped before the bucket form, under another tenant.
		local := localBlockDirs(t, dir, "team-a")
		uploadPlain(t, bkt, "legacy", filepath.Join(dir, "tenants", "team-a", local[0]))
		if err := s.Close(); err != nil {
			t.Fatal(err)
		}

		// The data directory is lost: everything comes from the bucket.
		s = openBucketStore(t, t.TempDir(), bkt, nil)
		defer s.Close()
		if err := s.SyncBucket(context.Background()); err != nil {
			t.Fatal(err)
		}
		equalSamples(t, "from the bucket form", readBits(t, s.Store, "team-a"), before)
		equalAnswers(t, "from the bucket form", promqlAnswers(t, s.Store, "team-a", evalEnd), answers)
		legacy := readBits(t, s.Store, "legacy")
		if len(legacy) != len(before) {
			t.Fatalf("plain block read from the bucket: %d series, want %d", len(legacy), len(before))
		}
		for k, ss := range legacy {
			if len(ss) == 0 || len(ss) > len(before[k]) {
				t.Fatalf("plain block: series %s has %d samples of %d", k, len(ss), len(before[k]))
			}
		}
	})
}

func objectsOf(t *testing.T, bkt objstore.Bucket, prefix string) []string {
	t.Helper()
	var out []string
	if err := bkt.Iter(context.Background(), prefix+"/", func(n string) error {
		out = append(out, strings.TrimPrefix(n, prefix+"/"))
		return nil
	}, true); err != nil {
		t.Fatal(err)
	}
	return out
}

func contains(ss []string, s string) bool {
	for _, x := range ss {
		if x == s {
			return true
		}
	}
	return false
}

// uploadPlain uploads the block in dir as blocks were stored before the
// bucket form: every file under its own name, meta.json last.
func uploadPlain(t *testing.T, bkt objstore.Bucket, id, dir string) {
	t.Helper()
	ctx := context.Background()
	prefix := path.Join(id, filepath.Base(dir))
	var files []string
	err := filepath.WalkDir(dir, func(p string, d os.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		rel, _ := filepath.Rel(dir, p)
		if rel != "meta.json" {
			files = append(files, filepath.ToSlash(rel))
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range append(files, "meta.json") {
		if bucketcodec.FormOf(f) == bucketcodec.Plain && f != "meta.json" && f != "tombstones" {
			t.Fatalf("unexpected block file %s", f)
		}
		b, err := os.ReadFile(filepath.Join(dir, filepath.FromSlash(f)))
		if err != nil {
			t.Fatal(err)
		}
		if err := bkt.Upload(ctx, path.Join(prefix, f), bytes.NewReader(b)); err != nil {
			t.Fatal(err)
		}
	}
}
