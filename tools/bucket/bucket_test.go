package bucket

import (
	"bytes"
	"context"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/oklog/ulid/v2"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/storage"

	"github.com/strata-tsdb/strata/blocks/blockmeta"
	"github.com/strata-tsdb/strata/blocks/bucketcodec"
	"github.com/strata-tsdb/strata/compactor"
	"github.com/strata-tsdb/strata/internal/testutil"
	"github.com/strata-tsdb/strata/objstore"
	"github.com/strata-tsdb/strata/objstore/filesystem"
)

// putBlock writes a block of n samples of one series over [start, start+2h)
// and uploads it for tenant id.
func putBlock(t *testing.T, bkt objstore.Bucket, id string, start time.Time, n int) ulid.ULID {
	t.Helper()
	dir := testutil.WriteBlock(t, 2*time.Hour, func(app storage.Appender) error {
		for i := range n {
			if _, err := app.Append(0, labels.FromStrings("__name__", "up"), start.Add(time.Duration(i)*time.Minute).UnixMilli(), 1); err != nil {
				return err
			}
		}
		return nil
	})
	u := ulid.MustParse(filepath.Base(dir))
	m, err := blockmeta.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	m.MinTime, m.MaxTime = start.UnixMilli(), start.Add(2*time.Hour).UnixMilli()
	m.Strata = &blockmeta.Ext{Source: blockmeta.SourceBackfill}
	if err := blockmeta.Upload(context.Background(), bkt, id, dir, m); err != nil {
		t.Fatal(err)
	}
	return u
}

func TestListInspectVerify(t *testing.T) {
	bkt, err := filesystem.New(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	start := time.Date(2026, 11, 1, 0, 0, 0, 0, time.UTC)
	a := putBlock(t, bkt, "team", start, 60)

	var out bytes.Buffer
	if err := List(ctx, bkt, "", &out); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"team", a.String(), "2026-11-01T00:00:00Z", "2h0m0s", "raw", "60", "backfill", "live"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("ls output lacks %q:\n%s", want, out.String())
		}
	}
	out.Reset()
	if err := Inspect(ctx, bkt, "team", a.String(), &out); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out.String(), `"numSamples": 60`) || !strings.Contains(out.String(), "chunks/000001") {
		t.Errorf("inspect output:\n%s", out.String())
	}

	levels, _ := compactor.LevelsFor(2 * time.Hour)
	opts := VerifyOptions{Levels: levels, CompactionDelay: 4 * time.Hour, Retention: compactor.DefaultRetention, Now: start.Add(3 * time.Hour)}
	if problems, err := Verify(ctx, bkt, "", opts); err != nil || len(problems) != 0 {
		t.Fatalf("healthy bucket: problems %v, err %v", problems, err)
	}
	// Two days on, the day is complete and nothing downsampled it.
	later := opts
	later.Now = start.Add(48 * time.Hour)
	problems, err := Verify(ctx, bkt, "", later)
	if err != nil || len(problems) != 1 || !strings.Contains(problems[0], "coverage hole") || !strings.Contains(problems[0], "1m0s or 1h0m0s") {
		t.Fatalf("a day nothing downsampled: problems %q, err %v; want one coverage hole", problems, err)
	}
	// Break it: an overlapping block, a block without chunks, an old partial upload.
	b := putBlock(t, bkt, "team", start.Add(time.Hour), 10)
	c := putBlock(t, bkt, "team", start.Add(4*time.Hour), 10)
	if err := bkt.Delete(ctx, "team/"+c.String()+"/"+bucketcodec.ObjectName("chunks/000001")); err != nil {
		t.Fatal(err)
	}
	old := ulid.MustNew(ulid.Timestamp(start), strings.NewReader(strings.Repeat("x", 16)))
	if err := bkt.Upload(ctx, "team/"+old.String()+"/index", strings.NewReader("x")); err != nil {
		t.Fatal(err)
	}
	problems, err = Verify(ctx, bkt, "", opts)
	if err != nil {
		t.Fatal(err)
	}
	joined := strings.Join(problems, "\n")
	for _, want := range []string{"overlap", b.String(), "missing chunks/000001", "abandoned partial upload"} {
		if !strings.Contains(joined, want) {
			t.Errorf("verify did not report %q:\n%s", want, joined)
		}
	}
	if code := Command([]string{"verify", "-bucket.filesystem.dir", bkt.Dir()}, &out, &out); code != 1 {
		t.Errorf("verify of a broken bucket exited %d, want 1", code)
	}
}
