package blockmeta_test

import (
	"bytes"
	"context"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"testing"
	"time"

	"github.com/oklog/ulid/v2"
	"github.com/prometheus/prometheus/storage"
	"github.com/prometheus/prometheus/tsdb"

	"github.com/strata-tsdb/strata/blocks/blockmeta"
	"github.com/strata-tsdb/strata/blocks/bucketcodec"
	"github.com/strata-tsdb/strata/internal/gen"
	"github.com/strata-tsdb/strata/internal/testutil"
	"github.com/strata-tsdb/strata/objstore"
	"github.com/strata-tsdb/strata/objstore/filesystem"
)

// writeBlock writes two hours of two node exporters' series as a TSDB block.
func writeBlock(t *testing.T) (string, ulid.ULID) {
	t.Helper()
	series := gen.NodeExporterSeries(2)
	g := gen.NewGenerator(series, 15000, 1)
	start := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC).UnixMilli()
	dir := testutil.WriteBlock(t, 2*time.Hour, func(app storage.Appender) error {
		var err error
		for s := range 480 {
			ts := start + int64(s)*15000
			g.Next(ts, func(i int, v float64) {
				if _, e := app.Append(0, series[i].Labels, ts, v); e != nil && err == nil {
					err = e
				}
			})
		}
		return err
	})
	return dir, ulid.MustParse(filepath.Base(dir))
}

// files returns every file of the block in dir but meta.json, by relative path.
func files(t *testing.T, dir string) map[string][]byte {
	t.Helper()
	out := map[string][]byte{}
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		rel, _ := filepath.Rel(dir, p)
		if rel == blockmeta.MetaFilename {
			return nil
		}
		b, err := os.ReadFile(p)
		out[filepath.ToSlash(rel)] = b
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func objectBytes(t *testing.T, bkt objstore.Bucket, prefix string) (map[string]int64, int64) {
	t.Helper()
	out := map[string]int64{}
	var total int64
	if err := bkt.Iter(context.Background(), prefix, func(n string) error {
		a, err := bkt.Attributes(context.Background(), n)
		out[n[len(prefix):]] = a.Size
		total += a.Size
		return err
	}, true); err != nil {
		t.Fatal(err)
	}
	return out, total
}

// TestUploadDownloadByteIdentical: a block goes up in the bucket form and
// comes down as the files tsdb wrote, byte for byte; a block stored plain,
// as before the bucket form, comes down the same.
func TestUploadDownloadByteIdentical(t *testing.T) {
	ctx := context.Background()
	dir, id := writeBlock(t)
	want := files(t, dir)
	bkt, err := filesystem.New(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}

	if err := blockmeta.Upload(ctx, bkt, "team", dir, nil); err != nil {
		t.Fatal(err)
	}
	objs, total := objectBytes(t, bkt, path.Join("team", id.String())+"/")
	var plain int64
	for f, b := range want {
		plain += int64(len(b))
		if _, ok := objs[bucketcodec.ObjectName(f)]; !ok {
			t.Errorf("file %s is not in the bucket as %s: %v", f, bucketcodec.ObjectName(f), objs)
		}
	}
	if _, ok := objs["index"]; ok {
		t.Errorf("plain index in the bucket: %v", objs)
	}
	t.Logf("block of %d samples: %d bytes on disk, %d in the bucket", 2*gen.SeriesPerHost()*480, plain, total)
	if total*2 > plain {
		t.Errorf("bucket form of %d bytes is not under half the block's %d bytes", total, plain)
	}
	m, err := blockmeta.Read(ctx, bkt, "team", id)
	if err != nil || m.ULID != id {
		t.Fatalf("meta.json in the bucket is not plain JSON of the block: %v", err)
	}

	check := func(what, tenantID string) {
		t.Helper()
		got := filepath.Join(t.TempDir(), id.String())
		if err := blockmeta.Download(ctx, bkt, tenantID, id, got); err != nil {
			t.Fatalf("%s: %v", what, err)
		}
		gotFiles := files(t, got)
		if len(gotFiles) != len(want) {
			t.Fatalf("%s: %d files, want %d", what, len(gotFiles), len(want))
		}
		for f, b := range want {
			if !bytes.Equal(gotFiles[f], b) {
				t.Fatalf("%s: %s differs from the file tsdb wrote", what, f)
			}
		}
		blk, err := tsdb.OpenBlock(nil, got, nil, nil)
		if err != nil {
			t.Fatalf("%s: open: %v", what, err)
		}
		blk.Close()
	}
	check("bucket form", "team")

	// As uploaded before the bucket form: plain objects under their own names.
	for f, b := range want {
		if err := bkt.Upload(ctx, path.Join("old", id.String(), f), bytes.NewReader(b)); err != nil {
			t.Fatal(err)
		}
	}
	meta, err := os.ReadFile(filepath.Join(dir, blockmeta.MetaFilename))
	if err != nil {
		t.Fatal(err)
	}
	if err := bkt.Upload(ctx, path.Join("old", id.String(), blockmeta.MetaFilename), bytes.NewReader(meta)); err != nil {
		t.Fatal(err)
	}
	check("plain form", "old")
}
