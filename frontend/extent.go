package frontend

import (
	"slices"
	"sort"

	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/promql"
)

// Extents.
//
// A range query's answer at a step depends only on the step's time, the
// query and the data (once @ start() and @ end() are excluded), so the
// answer over steps [a, c] is the answer over [a, b] followed, series by
// series, by the answer over the steps after b. Extents rely on that: the
// answer of a part is assembled from cached extents and fresh evaluations
// of the steps no extent covers, and extents that meet are joined.

// Annotations are known per extent, not per step: an extent that carries
// any is never clipped, since its annotations may come from steps outside
// the clip. It answers only queries that cover it whole; others evaluate
// its steps again.

// clip returns the points of x within [from, to] (steps of the query) as an
// extent over that range; it shares x's point slices. x has no annotations
// unless [from, to] covers it.
func clip(x *extent, from, to int64) *extent {
	from, to = max(from, x.start), min(to, x.end)
	if from == x.start && to == x.end {
		return x
	}
	out := &extent{start: from, end: to}
	if len(x.annos) > 0 {
		panic("frontend: clipping an extent with annotations")
	}
	if from > to {
		return out
	}
	for _, s := range x.series {
		fl := clipPoints(s.Floats, from, to, func(p promql.FPoint) int64 { return p.T })
		hs := clipPoints(s.Histograms, from, to, func(p promql.HPoint) int64 { return p.T })
		if len(fl) == 0 && len(hs) == 0 {
			continue
		}
		out.series = append(out.series, promql.Series{Metric: s.Metric, Floats: fl, Histograms: hs})
	}
	return out
}

func clipPoints[P any](ps []P, from, to int64, t func(P) int64) []P {
	i := sort.Search(len(ps), func(i int) bool { return t(ps[i]) >= from })
	j := sort.Search(len(ps), func(j int) bool { return t(ps[j]) > to })
	if i >= j {
		return nil
	}
	return ps[i:j:j]
}

// concat joins extents that are disjoint, in time order, and together
// cover [start, end]: each series' points in time order, series sorted by
// labels as the engine sorts a range query's answer, annotations merged.
// Point slices are new: the result shares none with the inputs.
func concat(start, end int64, parts []*extent) *extent {
	out := &extent{start: start, end: end}
	// Series by the hash of their labels; series whose labels collide
	// share a slot list and are told apart by their labels.
	idx := map[uint64][]int{}
	seen := map[anno]bool{}
	var nfl, nh []int // points of each series of out
	find := func(s *promql.Series) int {
		h := s.Metric.Hash()
		for _, i := range idx[h] {
			if labels.Equal(out.series[i].Metric, s.Metric) {
				return i
			}
		}
		i := len(out.series)
		idx[h] = append(idx[h], i)
		out.series = append(out.series, promql.Series{Metric: s.Metric})
		nfl, nh = append(nfl, 0), append(nh, 0)
		return i
	}
	// First the lengths, so that each series' points are allocated once.
	for _, p := range parts {
		for _, a := range p.annos {
			if !seen[a] {
				seen[a] = true
				out.annos = append(out.annos, a)
			}
		}
		for j := range p.series {
			i := find(&p.series[j])
			nfl[i] += len(p.series[j].Floats)
			nh[i] += len(p.series[j].Histograms)
		}
	}
	for i := range out.series {
		if nfl[i] > 0 {
			out.series[i].Floats = make([]promql.FPoint, 0, nfl[i])
		}
		if nh[i] > 0 {
			out.series[i].Histograms = make([]promql.HPoint, 0, nh[i])
		}
	}
	for _, p := range parts {
		for j := range p.series {
			s := &p.series[j]
			i := find(s)
			o := &out.series[i]
			o.Floats = append(o.Floats, s.Floats...)
			o.Histograms = append(o.Histograms, s.Histograms...)
		}
	}
	sort.Sort(out.series)
	return out
}

// addExtent returns exts with x added: extents x overlaps or meets (one
// step apart) are joined with it into one, x's points winning where they
// overlap (both were evaluated on the same data: the key includes its
// generations). exts is sorted by start and disjoint, and so is the result.
func addExtent(exts []*extent, x *extent, step int64) []*extent {
	var before, after []*extent
	var join []*extent
	for _, e := range exts {
		switch {
		case e.end+step < x.start:
			before = append(before, e)
		case e.start > x.end+step:
			after = append(after, e)
		default:
			join = append(join, e)
		}
	}
	if len(join) == 0 {
		return slices.Concat(before, []*extent{x}, after)
	}
	start, end := min(join[0].start, x.start), max(join[len(join)-1].end, x.end)
	var parts []*extent
	for _, e := range join {
		if e.start < x.start {
			if len(e.annos) > 0 {
				start = x.start // its part before x cannot be told apart: dropped
				continue
			}
			parts = append(parts, clip(e, e.start, x.start-step))
		}
	}
	parts = append(parts, x)
	for _, e := range join {
		if e.end > x.end {
			if len(e.annos) > 0 {
				end = x.end
				continue
			}
			parts = append(parts, clip(e, x.end+step, e.end))
		}
	}
	return slices.Concat(before, []*extent{concat(start, end, parts)}, after)
}

// gaps returns the ranges of steps of [from, to] that no extent of exts
// covers, and the extents clipped to [from, to], each in time order. Step
// times are from + k*step.
func gaps(exts []*extent, from, to, step int64) (missing [][2]int64, covered []*extent) {
	next := from
	for _, e := range exts {
		if e.end < next || e.start > to || len(e.annos) > 0 && (e.start < next || e.end > to) {
			continue
		}
		// The extent's steps are the query's: same step, same offset (both in the key).
		if e.start > next {
			missing = append(missing, [2]int64{next, e.start - step})
		}
		c := clip(e, next, to)
		covered = append(covered, c)
		next = c.end + step
		if next > to {
			break
		}
	}
	if next <= to {
		missing = append(missing, [2]int64{next, to})
	}
	return missing, covered
}
