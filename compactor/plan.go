package compactor

import (
	"fmt"
	"sort"
	"time"

	"github.com/oklog/ulid/v2"

	"github.com/strata-tsdb/strata/blocks/blockmeta"
)

// Level windows decide what the compactor does, never the span of a block's
// samples: a block cut from a head starts at its first sample and ends at
// its window's end, so blocks of real scrapes rarely span a whole window.
//
// A block belongs to the window of range rng that holds its first
// millisecond, [MinTime - MinTime mod rng, that + rng), and fits the window
// when it ends within it. Blocks cut from heads fit the window of the block
// duration, and so every level's window, since each level is a multiple of
// the one below.

// dayLevels are the levels blocks are merged into above the block duration.
var dayLevels = []time.Duration{12 * time.Hour, 24 * time.Hour}

// LevelsFor returns the compactor's levels for blocks cut every
// blockDuration: the block duration, then 12h and 24h where larger. The top
// level is the window downsampled blocks are made from; a whole number of
// them makes a day, so 1h windows never straddle two of them.
func LevelsFor(blockDuration time.Duration) ([]time.Duration, error) {
	if blockDuration <= 0 || (24*time.Hour)%blockDuration != 0 {
		return nil, fmt.Errorf("block duration %v does not divide 24h", blockDuration)
	}
	levels := []time.Duration{blockDuration}
	for _, l := range dayLevels {
		if l > blockDuration {
			levels = append(levels, l)
		}
	}
	return levels, nil
}

// levelWindow returns the start of the window of range rng holding m's first
// millisecond, and whether m ends within that window.
func levelWindow(m *blockmeta.Meta, rng int64) (start int64, fits bool) {
	start = m.MinTime - mod(m.MinTime, rng)
	return start, m.MaxTime <= start+rng
}

// settled reports whether no more data can be merged into block m at the
// top level before cutoff (the end of the last window the compaction delay
// has closed): its top window is complete, or, for a block that fits no
// window (written by hand or by an older tool), its own range is.
func settled(m *blockmeta.Meta, top, cutoff int64) bool {
	start, fits := levelWindow(m, top)
	if fits {
		return start+top <= cutoff
	}
	return m.MaxTime <= cutoff
}

// coarser returns the resolutions coarser than res, finest first.
func coarser(res int64) []int64 {
	var out []int64
	for _, r := range []int64{blockmeta.Res1m, blockmeta.Res1h} {
		if r > res {
			out = append(out, r)
		}
	}
	return out
}

// hasFloats reports whether block m may hold float samples, the only ones
// downsampled. Blocks written before per-type statistics count every
// sample in NumSamples only, and are assumed to.
func hasFloats(m *blockmeta.Meta) bool {
	s := m.Stats
	return s.NumFloatSamples > 0 || s.NumHistogramSamples == 0
}

// holdings records, per resolution, the raw blocks whose data the live
// blocks of that resolution hold: the sources named in their meta.json.
// Sources identify raw data exactly: a merge's sources are the union of its
// inputs', a downsampled block's are its raw block's, so a time range
// covered by a coarser block may still lack a late block's samples, and
// only sources tell.
type holdings map[int64]map[ulid.ULID]bool

func holdingsOf(live map[ulid.ULID]*blockmeta.Meta) holdings {
	h := holdings{}
	for _, m := range live {
		h.add(m)
	}
	return h
}

func (h holdings) add(m *blockmeta.Meta) {
	set := h[m.Resolution()]
	if set == nil {
		set = map[ulid.ULID]bool{}
		h[m.Resolution()] = set
	}
	for _, s := range m.Compaction.Sources {
		set[s] = true
	}
}

// holds reports whether resolution res holds all of m's data.
func (h holdings) holds(res int64, m *blockmeta.Meta) bool {
	if len(m.Compaction.Sources) == 0 {
		return false
	}
	for _, s := range m.Compaction.Sources {
		if !h[res][s] {
			return false
		}
	}
	return true
}

// Hole is a block whose data a coarser resolution should hold by now and
// does not.
type Hole struct {
	Block *blockmeta.Meta
	// Missing are the coarser resolutions (ms) that lack its data.
	Missing []int64
}

// Holes returns the live blocks of inv whose windows are settled (per
// levels and the compaction delay, as of now) but whose data is missing
// from a coarser resolution that the retention still keeps: what a
// compactor run should have downsampled and has not. Blocks are in time
// order.
func Holes(inv *Inventory, levels []time.Duration, compactionDelay time.Duration, ret Retention, now time.Time) []Hole {
	top := levels[len(levels)-1].Milliseconds()
	cutoff := now.Add(-compactionDelay).UnixMilli()
	h := holdingsOf(inv.Live)
	var out []Hole
	for _, m := range inv.Live {
		if !settled(m, top, cutoff) || !hasFloats(m) {
			continue
		}
		var missing []int64
		for _, c := range coarser(m.Resolution()) {
			if ret.expired(c, m, now) {
				continue
			}
			if !h.holds(c, m) {
				missing = append(missing, c)
			}
		}
		if len(missing) > 0 {
			out = append(out, Hole{Block: m, Missing: missing})
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Block.MinTime < out[j].Block.MinTime })
	return out
}

// expired reports whether all of block m is older than the retention of
// resolution res.
func (r Retention) expired(res int64, m *blockmeta.Meta, now time.Time) bool {
	keep := r.For(res)
	return keep > 0 && m.MaxTime < now.Add(-keep).UnixMilli()
}
