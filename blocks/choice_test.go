package blocks

import (
	"context"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/oklog/ulid/v2"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/prometheus/tsdb"

	"github.com/strata-tsdb/strata/blocks/blockmeta"
	"github.com/strata-tsdb/strata/objstore/filesystem"
)

// TestRemoteBlocksBySources checks which bucket blocks a query reads, and
// where: every raw sample once, from one resolution, whatever the spans of
// the blocks. Blocks are named by letter; their sources are raw blocks
// named by letter too.
func TestRemoteBlocksBySources(t *testing.T) {
	const h = int64(time.Hour / time.Millisecond)
	type blk struct {
		name       string
		res        int64
		mint, maxt int64 // hours
		sources    string
	}
	day := []blk{{"D", 0, 0, 24, "ab"}, {"D1m", blockmeta.Res1m, 0, 24, "ab"}, {"D1h", blockmeta.Res1h, 0, 24, "ab"}}
	for _, tc := range []struct {
		name   string
		blocks []blk
		maxRes int64
		want   string // block:[from,to) in hours, sorted
	}{
		{name: "raw where allowed", blocks: day, maxRes: 0, want: "D:[0,24)"},
		{name: "coarsest allowed", blocks: day, maxRes: blockmeta.Res1m, want: "D1m:[0,24)"},
		{name: "coarser where nothing allowed is left", blocks: day[1:], maxRes: 0, want: "D1m:[0,24)"},
		{
			// A late block shipped after the day's raw data left retention
			// holds samples the 1h block does not: both are read.
			name:   "late raw block beside older downsampled data",
			blocks: []blk{{"D1h", blockmeta.Res1h, 0, 24, "ab"}, {"P", 0, 8, 10, "p"}},
			maxRes: blockmeta.Res1m, want: "D1h:[0,24) P:[8,10)",
		},
		{
			// The same, downsampled too: read besides (aggregates added).
			name:   "late downsampled block beside older downsampled data",
			blocks: []blk{{"D1h", blockmeta.Res1h, 0, 24, "ab"}, {"P1h", blockmeta.Res1h, 8, 10, "p"}, {"P", 0, 8, 10, "p"}},
			maxRes: blockmeta.Res1h, want: "D1h:[0,24) P1h:[8,10)",
		},
		{
			// A merge holds its sources' data: they are not read again.
			name:   "merged block and the block it holds",
			blocks: []blk{{"M1h", blockmeta.Res1h, 0, 24, "abp"}, {"P", 0, 8, 10, "p"}},
			maxRes: 0, want: "M1h:[0,24)",
		},
		{
			// Raw data merged with a late block, not yet downsampled again:
			// the raw merge replaces the older 1m block where it holds more.
			name:   "raw merge newer than the downsampled block",
			blocks: []blk{{"D1m", blockmeta.Res1m, 0, 14, "ab"}, {"R", 0, 0, 16, "abc"}},
			maxRes: blockmeta.Res1m, want: "R:[0,16)",
		},
		{
			name:   "adjacent days at different resolutions",
			blocks: []blk{{"X1h", blockmeta.Res1h, 0, 24, "x"}, {"Y", 0, 24, 48, "y"}, {"Y1h", blockmeta.Res1h, 24, 48, "y"}},
			maxRes: 0, want: "X1h:[0,24) Y:[24,48)",
		},
		{
			name:   "out-of-order raw block in the same window",
			blocks: []blk{{"A", 0, 0, 2, "a"}, {"O", 0, 0, 2, "o"}, {"B", 0, 2, 4, "b"}},
			maxRes: 0, want: "A:[0,2) B:[2,4) O:[0,2)",
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			bkt, err := filesystem.New(t.TempDir())
			if err != nil {
				t.Fatal(err)
			}
			s := &Store{bucket: newBucketBlocks(bkt, slog.New(slog.DiscardHandler), newStoreMetrics(prometheus.NewRegistry()), time.Now)}
			ids := map[string]ulid.ULID{}
			id := func(name string) ulid.ULID {
				if u, ok := ids[name]; ok {
					return u
				}
				u := ulid.MustNew(uint64(len(ids)+1), strings.NewReader(strings.Repeat(name+"0123456789abcdef", 2)))
				ids[name] = u
				return u
			}
			names := map[ulid.ULID]string{}
			for _, b := range tc.blocks {
				m := &blockmeta.Meta{BlockMeta: tsdb.BlockMeta{ULID: id(b.name), MinTime: b.mint * h, MaxTime: b.maxt * h}, Strata: &blockmeta.Ext{Resolution: b.res}}
				for _, src := range b.sources {
					m.Compaction.Sources = append(m.Compaction.Sources, id("src-"+string(src)))
				}
				names[m.ULID] = b.name
				s.bucket.Add("t", m)
			}
			q := &tenantQuerier{s: s, mint: 0, maxt: 48*h - 1}
			var got []string
			for _, sp := range q.remoteBlocks(blockmeta.WithMaxResolution(context.Background(), tc.maxRes), "t", nil) {
				got = append(got, fmt.Sprintf("%s:[%d,%d)", names[sp.meta.ULID], sp.mint/h, (sp.maxt+1)/h))
			}
			slices.Sort(got)
			if g := strings.Join(got, " "); g != tc.want {
				t.Errorf("read %q, want %q", g, tc.want)
			}
		})
	}
}
