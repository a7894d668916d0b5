package detect

import (
	"fmt"
	"math"
	"math/rand/v2"
	"time"
)

// The isolation forest (Liu, Ting and Zhou, 2008) judges a sample by how
// easily random axis-parallel cuts isolate it from recent history: points
// that few cuts separate are rare. Each sample is described by three
// features:
//
//	value      the sample itself
//	rate       its change per second since the previous sample
//	residual   its distance from the seasonal median of its slot (the
//	           seasonal detector's centre, or its adaptive fallback)
//
// so the forest catches spikes (value), sudden jumps and drops that stay in
// the usual range (rate) and values normal for the series but not for the
// time of day (residual).
//
// The forest is trained on the last `window` samples and retrained every
// `retrain_every` samples; every sample is scored online against the forest
// trained on samples before it. The raw isolation score s (≈0.5 for ordinary
// points, towards 1 for isolated ones) becomes the score
// max(0, (s − 0.5)/(threshold − 0.5)), so s = threshold is the band's edge.
// The band is where the forest places that edge for the current sample: the
// values below and above the seasonal centre at which s reaches threshold,
// found by bisection along the line of feature vectors the value would give.
//
// Parameters:
//
//	trees          trees in the forest (default 32)
//	sample_size    samples drawn for each tree (default 128)
//	window         recent samples kept for training (default 1024)
//	retrain_every  samples between trainings (default 128)
//	min_samples    samples needed for the first training (default 128)
//	threshold      raw isolation score at the band's edge (default 0.62)
//	season, slot   the seasonal reference of the residual (default 1d, 1h)
//	seed           seed of the random cuts (default 1)
//
// Cold start: NaN until min_samples samples have been seen; the rule
// evaluator feeds it `history` (default 4 seasons) from the store first.
// Cost per series: the window (24 B per sample) plus the forest (about
// 2·sample_size nodes of 24 B per tree: 200 KiB for the defaults) plus the
// seasonal reference; per sample, a forest walk (trees × log2(sample_size)
// nodes) and about 40 walks for the band; a training every retrain_every
// samples costs trees × sample_size × log2(sample_size).
func init() {
	register(&Kind{
		Name: "iforest",
		Help: "isolation forest over value, rate of change and seasonal residual",
		Params: []Param{
			{"trees", "32", "trees in the forest"},
			{"sample_size", "128", "samples drawn for each tree"},
			{"window", "1024", "recent samples kept for training"},
			{"retrain_every", "128", "samples between trainings"},
			{"min_samples", "128", "samples needed for the first training"},
			{"threshold", "0.62", "raw isolation score at the band's edge (0.5 to 1)"},
			{"season", "1d", "period of the seasonal reference"},
			{"slot", "1h", "slot width of the seasonal reference"},
			{"seed", "1", "seed of the random cuts"},
			{"history", "", "history to learn from at start (default 4 seasons)"},
		},
		build: func(p *params) (Factory, error) {
			var f iforestFactory
			var err error
			if f.trees, err = p.int("trees", 1, 1000); err != nil {
				return nil, err
			}
			if f.sampleSize, err = p.int("sample_size", 2, 1<<16); err != nil {
				return nil, err
			}
			if f.window, err = p.int("window", 2, 1<<20); err != nil {
				return nil, err
			}
			if f.retrain, err = p.int("retrain_every", 1, 1<<20); err != nil {
				return nil, err
			}
			if f.minSamples, err = p.int("min_samples", 2, f.window); err != nil {
				return nil, err
			}
			if f.threshold, err = p.float("threshold", 0.5001, 1); err != nil {
				return nil, err
			}
			seed, err := p.int("seed", 0, math.MaxInt32)
			if err != nil {
				return nil, err
			}
			f.seed = uint64(seed)
			sp := Spec{Detector: "seasonal", Params: map[string]string{"season": p.raw("season"), "slot": p.raw("slot")}}
			sf, err := New(sp)
			if err != nil {
				return nil, fmt.Errorf("seasonal reference: %w", err)
			}
			f.reference = sf.(seasonalFactory)
			f.history = f.reference.history
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

type iforestFactory struct {
	trees, sampleSize, window, retrain, minSamples int
	threshold                                      float64
	seed                                           uint64
	reference                                      seasonalFactory
	history                                        time.Duration
	spec                                           Spec
}

func (f iforestFactory) New() Detector {
	return &iforest{
		f:   f,
		ref: newSeasonal(f.reference),
		rng: rand.New(rand.NewPCG(f.seed, 0x5eed)),
	}
}

func (f iforestFactory) History() time.Duration { return f.history }

func (f iforestFactory) Spec() Spec { return f.spec }

const nFeatures = 3

type features [nFeatures]float64

type iforest struct {
	f   iforestFactory
	ref *seasonal
	rng *rand.Rand

	buf       []features // ring of the last window samples
	next      int
	sinceFit  int
	forest    *forest
	prevT     int64
	prevV     float64
	seen      bool
	sampleIdx []int
}

func (d *iforest) Observe(t int64, v float64) Result {
	if d.seen && t <= d.prevT {
		return Unknown
	}
	if math.IsNaN(v) || math.IsInf(v, 0) {
		return Unknown
	}
	centre, spread, seasonalOK, refOK := d.ref.expected(t)
	if !refOK {
		centre, spread = v, 0
	}
	_ = seasonalOK
	line := d.line(t, centre)
	x := line.at(v)
	res := Unknown
	if d.forest != nil {
		s := d.forest.score(x)
		res.Score = math.Max(0, (s-0.5)/(d.f.threshold-0.5))
		res.Lower, res.Upper = d.band(line, centre, spread)
	}
	// Learn.
	d.add(x)
	d.ref.Observe(t, v)
	d.prevT, d.prevV, d.seen = t, v, true
	return res
}

// featureLine gives the features a value v would have at this step: every
// feature is affine in v.
type featureLine struct {
	slope, icept features
}

func (l featureLine) at(v float64) features {
	var x features
	for i := range x {
		x[i] = l.slope[i]*v + l.icept[i]
	}
	return x
}

func (d *iforest) line(t int64, centre float64) featureLine {
	var l featureLine
	l.slope[0] = 1
	if d.seen {
		dt := float64(t-d.prevT) / 1000
		l.slope[1], l.icept[1] = 1/dt, -d.prevV/dt
	}
	l.slope[2], l.icept[2] = 1, -centre
	return l
}

func (d *iforest) add(x features) {
	if len(d.buf) < d.f.window {
		d.buf = append(d.buf, x)
	} else {
		d.buf[d.next] = x
		d.next = (d.next + 1) % d.f.window
	}
	d.sinceFit++
	if len(d.buf) >= d.f.minSamples && (d.forest == nil || d.sinceFit >= d.f.retrain) {
		d.forest = d.fit()
		d.sinceFit = 0
	}
}

// band finds, on each side of centre, where the score reaches the threshold.
func (d *iforest) band(l featureLine, centre, spread float64) (lo, hi float64) {
	thr := d.f.threshold
	f := func(v float64) bool { return d.forest.score(l.at(v)) >= thr }
	if f(centre) {
		return centre, centre
	}
	step := spread
	if step <= 0 || math.IsNaN(step) {
		step = math.Max(math.Abs(centre)*0.01, 1e-9)
	}
	edge := func(dir float64) float64 {
		in, s := centre, step
		for range 40 {
			out := centre + dir*s
			if f(out) {
				// Bisect between in (below threshold) and out.
				for range 12 {
					mid := (in + out) / 2
					if f(mid) {
						out = mid
					} else {
						in = mid
					}
				}
				return (in + out) / 2
			}
			in = out
			s *= 2
		}
		return math.Inf(int(dir))
	}
	return edge(-1), edge(1)
}

// forest is a trained isolation forest, stored flat.
type forest struct {
	trees []tree
	norm  float64 // c(sample size): average path length of an unsuccessful BST search
}

type tree []node

type node struct {
	split   float64
	feature int8 // -1 for a leaf
	size    int32
	left    int32 // right child is left+1
}

func (d *iforest) fit() *forest {
	n := len(d.buf)
	psi := min(d.f.sampleSize, n)
	limit := int(math.Ceil(math.Log2(float64(psi))))
	fo := &forest{trees: make([]tree, d.f.trees), norm: avgPath(psi)}
	if cap(d.sampleIdx) < n {
		d.sampleIdx = make([]int, n)
	}
	idx := d.sampleIdx[:n]
	sample := make([]features, psi)
	for ti := range fo.trees {
		for i := range idx {
			idx[i] = i
		}
		for i := range psi { // partial Fisher–Yates: a sample without replacement
			j := i + d.rng.IntN(n-i)
			idx[i], idx[j] = idx[j], idx[i]
			sample[i] = d.buf[idx[i]]
		}
		t := make(tree, 0, 2*psi)
		t = append(t, node{})
		t = d.grow(t, 0, sample, 0, limit)
		fo.trees[ti] = t
	}
	return fo
}

// grow builds the subtree of pts at t[at].
func (d *iforest) grow(t tree, at int, pts []features, depth, limit int) tree {
	if depth >= limit || len(pts) <= 1 {
		t[at] = node{feature: -1, size: int32(len(pts))}
		return t
	}
	var lo, hi features
	for i := range nFeatures {
		lo[i], hi[i] = math.Inf(1), math.Inf(-1)
	}
	for _, p := range pts {
		for i := range nFeatures {
			lo[i] = math.Min(lo[i], p[i])
			hi[i] = math.Max(hi[i], p[i])
		}
	}
	var cand [nFeatures]int
	nc := 0
	for i := range nFeatures {
		if hi[i] > lo[i] {
			cand[nc] = i
			nc++
		}
	}
	if nc == 0 {
		t[at] = node{feature: -1, size: int32(len(pts))}
		return t
	}
	fi := cand[d.rng.IntN(nc)]
	split := lo[fi] + d.rng.Float64()*(hi[fi]-lo[fi])
	// Partition in place.
	i, j := 0, len(pts)-1
	for i <= j {
		if pts[i][fi] < split {
			i++
		} else {
			pts[i], pts[j] = pts[j], pts[i]
			j--
		}
	}
	left := len(t)
	t = append(t, node{}, node{})
	t[at] = node{feature: int8(fi), split: split, left: int32(left)}
	t = d.grow(t, left, pts[:i], depth+1, limit)
	t = d.grow(t, left+1, pts[i:], depth+1, limit)
	return t
}

// score is the isolation score 2^(−E[h(x)]/c(ψ)).
func (fo *forest) score(x features) float64 {
	var sum float64
	for _, t := range fo.trees {
		i, depth := 0, 0
		for t[i].feature >= 0 {
			n := &t[i]
			if x[n.feature] < n.split {
				i = int(n.left)
			} else {
				i = int(n.left) + 1
			}
			depth++
		}
		sum += float64(depth) + avgPath(int(t[i].size))
	}
	return math.Exp2(-sum / float64(len(fo.trees)) / fo.norm)
}

// avgPath is c(n), the average path length of an unsuccessful search in a
// binary search tree of n points: the expected depth left below a leaf of n.
func avgPath(n int) float64 {
	switch {
	case n <= 1:
		return 0
	case n == 2:
		return 1
	}
	h := math.Log(float64(n-1)) + 0.5772156649015329
	return 2*h - 2*float64(n-1)/float64(n)
}
