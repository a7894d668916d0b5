package detect

import (
	"fmt"
	"math"
	"slices"
	"time"
)

// The seasonal band learns what is normal for each slot of a season (each
// hour of the day, or each hour of the week), robustly: the centre is the
// median of the slot's recent samples and the half-width is k times their
// median absolute deviation scaled to a standard deviation (1.4826·MAD).
// Medians ignore the anomalies of past seasons that a mean would absorb.
//
// Parameters:
//
//	season        period of the pattern: 1d (time of day) or 1w (day of week
//	              and time of day); any duration (default 1d). Slots are
//	              aligned to UTC midnight (and to a Thursday for 1w).
//	slot          width of one slot (default 1h): season/slot slots
//	k             band half-width in robust standard deviations (default 3)
//	per_slot      samples kept per slot, newest first out (default 128)
//	min_per_slot  samples a slot needs before it is trusted (default 12)
//	half_life     half-life of the fallback adaptive baseline (default 6h)
//
// The MAD is floored at half the fallback baseline's σ, so that a
// slot whose samples happen to be equal does not flag every small change.
//
// Cold start: while the current slot holds fewer than min_per_slot samples,
// the detector answers with its adaptive baseline (see adaptive), which is
// always learning; the rule evaluator feeds it `history` (default 4 seasons)
// of data from the store, so with that much history it is seasonal at once.
// Cost per series: season/slot × per_slot floats (24×128×8 B = 24 KiB for the
// defaults), O(per_slot) work per sample (two selections).
func init() {
	register(&Kind{
		Name: "seasonal",
		Help: "median ± k·MAD per season slot (time of day / day of week)",
		Params: []Param{
			{"season", "1d", "period of the pattern (1d, 1w, ...)"},
			{"slot", "1h", "width of one slot of the season"},
			{"k", "3", "band half-width in robust standard deviations"},
			{"per_slot", "128", "samples kept per slot"},
			{"min_per_slot", "12", "samples a slot needs before it is used"},
			{"half_life", "6h", "half-life of the fallback adaptive baseline"},
			{"history", "", "history to learn from at start (default 4 seasons)"},
		},
		build: func(p *params) (Factory, error) {
			var f seasonalFactory
			var err error
			if f.season, err = p.duration("season", time.Second); err != nil {
				return nil, err
			}
			if f.slot, err = p.duration("slot", time.Second); err != nil {
				return nil, err
			}
			if f.season%f.slot != 0 || f.season/f.slot > 100000 {
				return nil, fmt.Errorf("season %s must be a multiple of slot %s, with at most 100000 slots", f.season, f.slot)
			}
			if f.k, err = p.float("k", 0.01, 1000); err != nil {
				return nil, err
			}
			if f.perSlot, err = p.int("per_slot", 1, 1<<20); err != nil {
				return nil, err
			}
			if f.minPerSlot, err = p.int("min_per_slot", 1, f.perSlot); err != nil {
				return nil, err
			}
			if f.halfLife, err = p.duration("half_life", time.Millisecond); err != nil {
				return nil, err
			}
			f.history = 4 * f.season
			if p.raw("history") != "" {
				if f.history, err = p.duration("history", 0); err != nil {
					return nil, err
				}
			}
			f.spec = p.spec()
			return f, nil
		},
	})
}

type seasonalFactory struct {
	season, slot, halfLife, history time.Duration
	k                               float64
	perSlot, minPerSlot             int
	spec                            Spec
}

func (f seasonalFactory) New() Detector { return newSeasonal(f) }

func (f seasonalFactory) History() time.Duration { return f.history }

func (f seasonalFactory) Spec() Spec { return f.spec }

type seasonal struct {
	seasonMs, slotMs int64
	k                float64
	perSlot, minSlot int

	fallback *ewma
	slots    []ring // allocated on first use
	scratch  []float64
	lastT    int64
	seen     bool
}

// ring is a fixed-capacity buffer of a slot's newest samples.
type ring struct {
	vals []float64
	next int
}

func (r *ring) add(v float64, capacity int) {
	if len(r.vals) < capacity {
		r.vals = append(r.vals, v)
		return
	}
	r.vals[r.next] = v
	r.next = (r.next + 1) % capacity
}

func newSeasonal(f seasonalFactory) *seasonal {
	return &seasonal{
		seasonMs: f.season.Milliseconds(),
		slotMs:   f.slot.Milliseconds(),
		k:        f.k,
		perSlot:  f.perSlot,
		minSlot:  f.minPerSlot,
		fallback: newEWMA(f.halfLife, f.k, 10),
	}
}

func (s *seasonal) slotOf(t int64) int {
	return int(((t%s.seasonMs)+s.seasonMs)%s.seasonMs) / int(s.slotMs)
}

// expected returns the centre and half-width of the band at t, and whether
// the slot is trusted (otherwise they are the fallback's).
func (s *seasonal) expected(t int64) (c, w float64, seasonalOK, ok bool) {
	if s.slots != nil {
		r := &s.slots[s.slotOf(t)]
		if len(r.vals) >= s.minSlot {
			med, mad := s.medianMAD(r.vals)
			floor := 0.0
			if s.fallback.ready() {
				floor = 0.5 * math.Sqrt(s.fallback.vr)
			}
			return med, math.Max(s.k*math.Max(1.4826*mad, floor), spreadFloor(med)), true, true
		}
	}
	if s.fallback.ready() {
		c, w := s.fallback.band()
		return c, w, false, true
	}
	return 0, 0, false, false
}

func (s *seasonal) medianMAD(vals []float64) (med, mad float64) {
	s.scratch = append(s.scratch[:0], vals...)
	med = median(s.scratch)
	for i, v := range vals {
		s.scratch[i] = math.Abs(v - med)
	}
	return med, median(s.scratch[:len(vals)])
}

func (s *seasonal) Observe(t int64, v float64) Result {
	if s.seen && t <= s.lastT {
		return Unknown
	}
	if math.IsNaN(v) || math.IsInf(v, 0) {
		return Unknown
	}
	res := Unknown
	if c, w, _, ok := s.expected(t); ok {
		res = Result{Score: deviation(v, c, w), Lower: c - w, Upper: c + w}
	}
	s.learn(t, v)
	return res
}

func (s *seasonal) learn(t int64, v float64) {
	s.seen, s.lastT = true, t
	s.fallback.learn(t, v)
	if s.slots == nil {
		s.slots = make([]ring, s.seasonMs/s.slotMs)
	}
	s.slots[s.slotOf(t)].add(v, s.perSlot)
}

// median returns the median of xs, reordering xs.
func median(xs []float64) float64 {
	n := len(xs)
	if n == 0 {
		return math.NaN()
	}
	if n <= 32 {
		slices.Sort(xs)
		if n%2 == 1 {
			return xs[n/2]
		}
		return (xs[n/2-1] + xs[n/2]) / 2
	}
	hi := selectK(xs, n/2)
	if n%2 == 1 {
		return hi
	}
	// The lower middle is the largest of the elements left of n/2.
	lo := xs[0]
	for _, x := range xs[1 : n/2] {
		lo = math.Max(lo, x)
	}
	return (lo + hi) / 2
}

// selectK reorders xs so that xs[k] is the k-th smallest and everything
// before it is not larger (Hoare's selection with a median-of-three pivot).
func selectK(xs []float64, k int) float64 {
	lo, hi := 0, len(xs)-1
	for lo < hi {
		mid := lo + (hi-lo)/2
		if xs[mid] < xs[lo] {
			xs[mid], xs[lo] = xs[lo], xs[mid]
		}
		if xs[hi] < xs[lo] {
			xs[hi], xs[lo] = xs[lo], xs[hi]
		}
		if xs[hi] < xs[mid] {
			xs[hi], xs[mid] = xs[mid], xs[hi]
		}
		pivot := xs[mid]
		i, j := lo, hi
		for i <= j {
			for xs[i] < pivot {
				i++
			}
			for xs[j] > pivot {
				j--
			}
			if i <= j {
				xs[i], xs[j] = xs[j], xs[i]
				i++
				j--
			}
		}
		switch {
		case k <= j:
			hi = j
		case k >= i:
			lo = i
		default:
			return xs[k]
		}
	}
	return xs[k]
}
