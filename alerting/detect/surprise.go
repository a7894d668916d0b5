package detect

import (
	"math"
	"slices"
	"time"
)

// The surprise detector, Strata's default, asks of each sample how rare a
// deviation of its size has been in this series' own history, and alerts on
// the rare ones once per incident. It combines two experts, each of which
// turns a deviation into a tail probability learned from the series itself:
//
//	level      the mean of the last `window` samples (the new one included)
//	           against a slow baseline (exponentially weighted mean with
//	           half-life `half_life` samples), in units of the series' usual
//	           sample-to-sample noise (the mean absolute deviation from a fast
//	           baseline of half-life half_life/10). Catches spikes, bursts,
//	           drops and level shifts; averaging a few samples keeps single
//	           noisy samples of a busy series from counting as incidents.
//	seasonal   the sample against what this time of day usually holds (the
//	           exponentially weighted mean and mean absolute deviation of its
//	           slot of the day, half-life `season_half_life`). Catches the
//	           missing daily peak, the flat line at the wrong hour, the
//	           nightly job that did not run. It only speaks for series whose
//	           time of day predicts them: its surprise is weighted by how much
//	           smaller its error has been than the slow baseline's (weight
//	           gain/season_gain, at most 1, for a relative error reduction
//	           gain: none when the time of day does not help, full when it
//	           cuts the error by season_gain or more).
//
// What happens every day is not an incident: each slot of the day remembers
// the largest level deviation seen in it (or in the slots either side) on
// each of the `recur_days` previous days, and the level expert measures only
// the excess over the `recur_count`-th largest of them (weighted by
// `recur`): by default, what came on at least 2 of the 3 previous days. A
// nightly backup's spike or a cron job's burst that came at this hour on
// most recent days scores as noise, also when it skipped a day (a weekend, a
// run that moved by more than a slot); one that is much larger than usual
// still counts, by its excess. Requiring two days keeps a single burst
// yesterday from hiding one today.
//
// Each expert's deviation goes into its own histogram (log-spaced bins,
// exponentially forgotten with half-life `memory` samples) `lag` samples
// after it has been scored, so a sample never influences its own score, and
// an incident in progress is not measured against its own first samples: a
// level shift takes `window` samples to rise through the level expert's
// mean, and a histogram that learned each step at once measured every step
// against the one before (a clear shift then peaked near score 1). The
// memory is long enough (10^4 samples by default) for the histogram to tell
// deviations as rare as 1 in 10^surprise from its own counts. The tail
// probability p of a deviation is the weight of the histogram at or above
// it; beyond the largest deviation the histogram remembers, p keeps falling
// as (1+deviation)^−4, so a spike far beyond anything seen outranks one just
// beyond it. An expert's surprise is −log10 p, the detector's the larger of
// the two (the seasonal one weighted), and the score is surprise/`surprise`:
// it reaches 1 when a deviation is rarer than 1 in 10^surprise samples of
// this series (by default 1 in 10^4, which the histograms can only say of
// deviations beyond everything they remember, by a margin). Deviations are
// relative to each series' own history, so one threshold (score > 1) suits
// quiet and noisy series alike.
//
// An incident is reported once: a surprise of `onset` or more (default
// 2.65, 1 in ~450) starts a rest of `rest` (default 1d, in time, so that it
// means the same for series sampled every minute or every hour) during which
// the score is 0, unless a deviation is at least ten times rarer than the one
// that started it, or reaches score 1 while the rest was started by a near
// miss (below 1); either reports the score and starts a new rest. The detector
// keeps learning meanwhile. So an alert on `score > 1` fires for the
// evaluation that crosses it and is resolved at the next one unless the
// incident keeps getting worse: alerting rules should set `keep_firing_for`.
// Between onset/surprise and 1 the score shows near misses.
//
// The band is the range of values the sample could have taken and scored
// below 1 (rest aside): for the level expert, the values that would keep the
// window's mean within the deviation its histogram puts at p = 10^−surprise
// (plus the slot's recurring deviation);
// for a trusted seasonal expert, the same around the slot's mean; the band
// is the intersection of the two (the level band alone when they do not
// overlap, which happens while a level shift is under way). The band moves
// with the window: after a spike it narrows on the side of the spike until
// the spike leaves the window, because the window's mean already carries it.
//
// Parameters (counts are samples, so at a rule's evaluation interval they
// are multiples of it):
//
//	window            samples averaged by the level expert (default 6)
//	half_life         half-life of the slow baseline (default 70)
//	memory            half-life of the deviation histograms (default 10000)
//	surprise          −log10 of the tail probability at score 1 (default 4)
//	onset             surprise that starts a rest (default 2.65)
//	rest              duration of a rest (default 1d)
//	season, slot      the seasonal expert's period and slot (default 1d, 30m)
//	season_half_life  half-life of a slot's mean and deviation, in time: a
//	                  slot's samples of one day together weigh as one
//	                  sample, whatever the interval (default 16h: a slot
//	                  forgets 65% of what it knew each day)
//	season_gain       relative error reduction at which the seasonal expert
//	                  counts fully (default 0.2)
//	recur             weight of the recurring deviation of the time of day
//	                  subtracted from the level deviation (default 1, 0: off)
//	recur_days        previous days a recurring deviation is looked for in
//	                  (default 3, at most 3)
//	recur_count       days of those it must have come on (default 2)
//	warmup            samples learned before the first score (default 50)
//	lag               samples a deviation waits before its histogram learns
//	                  it (default 6, the window: 0 learns at once)
//	history           history a rule's new detector learns from (default 3d)
//
// The defaults are one parameter set for every series; bench/nab reports how
// they score on the Numenta Anomaly Benchmark, per kind of series.
//
// Cold start: NaN for the first `warmup` samples; the histograms learn from
// the second half of them on (before, the baselines and the noise they
// measure deviations against are still settling). A histogram of few
// samples cannot call anything rarer than 1 in that many from what it holds,
// // so early alerts need deviations well beyond everything seen. The rule
// evaluator feeds `history` from the store first.
// Cost per series: about 3.1 KiB of state (two histograms of 96 float32
// bins, 48 seasonal slots of 40 B, the window, `lag` pairs of float32, a
// dozen numbers; see BenchmarkDetectors), O(bins) work per sample: about
// 1 µs.
func init() {
	register(&Kind{
		Name: "surprise",
		Help: "rarity of the deviation in the series' own history (level and time of day); alerts once per incident",
		Params: []Param{
			{"window", "6", "samples averaged by the level expert"},
			{"half_life", "70", "half-life of the slow baseline, in samples"},
			{"memory", "10000", "half-life of the deviation histograms, in samples"},
			{"surprise", "4", "-log10 of the tail probability at score 1"},
			{"rest", "1d", "time reported as 0 after an onset, unless more surprising"},
			{"onset", "2.65", "surprise that marks an incident's onset and starts a rest"},
			{"season", "1d", "period of the seasonal expert"},
			{"slot", "30m", "slot width of the seasonal expert"},
			{"season_half_life", "16h", "half-life of a slot's mean and deviation"},
			{"season_gain", "0.2", "relative error reduction at which the seasonal expert counts fully"},
			{"recur", "1", "weight of the time of day's recurring level deviation (0: off)"},
			{"recur_days", "3", "previous days a recurring deviation is looked for in"},
			{"recur_count", "2", "days of recur_days a deviation must have come on to recur"},
			{"warmup", "50", "samples learned before scoring starts"},
			{"lag", "6", "samples a deviation waits before its histogram learns it"},
			{"history", "3d", "history a new detector learns from"},
		},
		build: func(p *params) (Factory, error) {
			f := &surpriseFactory{}
			var err error
			if f.window, err = p.int("window", 1, 1024); err != nil {
				return nil, err
			}
			if f.halfLife, err = p.float("half_life", 1, 1e9); err != nil {
				return nil, err
			}
			if f.memory, err = p.float("memory", 10, 1e12); err != nil {
				return nil, err
			}
			if f.surprise, err = p.float("surprise", 0.01, 30); err != nil {
				return nil, err
			}
			if f.onset, err = p.float("onset", 0.01, 30); err != nil {
				return nil, err
			}
			rest, err := p.duration("rest", 0)
			if err != nil {
				return nil, err
			}
			f.restMs = rest.Milliseconds()
			season, err := p.duration("season", time.Second)
			if err != nil {
				return nil, err
			}
			slot, err := p.duration("slot", time.Second)
			if err != nil {
				return nil, err
			}
			if season%slot != 0 || season/slot > 10000 {
				return nil, errorString("season " + season.String() + " must be a multiple of slot " + slot.String() + ", with at most 10000 slots")
			}
			f.seasonMs, f.slotMs = season.Milliseconds(), slot.Milliseconds()
			shl, err := p.duration("season_half_life", time.Second)
			if err != nil {
				return nil, err
			}
			f.seasonHalfLifeMs = float64(shl.Milliseconds())
			if f.seasonGain, err = p.float("season_gain", 0.001, 1); err != nil {
				return nil, err
			}
			if f.recur, err = p.float("recur", 0, 10); err != nil {
				return nil, err
			}
			if f.warmup, err = p.int("warmup", 2, 1<<30); err != nil {
				return nil, err
			}
			if f.recurDays, err = p.int("recur_days", 1, peakDays-1); err != nil {
				return nil, err
			}
			if f.recurCount, err = p.int("recur_count", 1, f.recurDays); err != nil {
				return nil, err
			}
			if f.lag, err = p.int("lag", 0, 1024); err != nil {
				return nil, err
			}
			if f.history, err = p.duration("history", 0); err != nil {
				return nil, err
			}
			f.spec = p.spec()
			return f, nil
		},
	})
}

type surpriseFactory struct {
	window           int
	halfLife         float64 // samples
	memory           float64 // samples
	surprise         float64
	onset            float64
	restMs           int64
	seasonMs, slotMs int64
	seasonHalfLifeMs float64
	seasonGain       float64
	recur            float64
	warmup           int
	lag              int
	recurDays        int
	recurCount       int
	history          time.Duration
	spec             Spec
}

func (f *surpriseFactory) New() Detector {
	d := &surpriseDet{
		f:     f,
		win:   make([]float64, f.window-1),
		slots: make([]slotStat, f.seasonMs/f.slotMs),
		pend:  make([][2]float32, f.lag),
	}
	d.level.init(f.memory)
	d.seasonal.init(f.memory)
	return d
}

func (f *surpriseFactory) History() time.Duration { return f.history }

func (f *surpriseFactory) Spec() Spec { return f.spec }

// Histogram layout: deviations x ≥ 0 (in units of the series' noise) fall in
// bin ⌊log2(1+x)·tailBinsPerOctave⌋, so bins are 9% wide and the last one
// starts at x ≈ 4095: beyond it, deviations are told apart by extrapolation.
const (
	tailBins          = 96
	tailBinsPerOctave = 8
	// tailExponent is how fast the tail falls beyond the largest deviation
	// seen: p ∝ (1+x)^−tailExponent.
	tailExponent = 4
	// restBreakthrough is how much more surprising than its onset (in
	// powers of ten) a deviation must be to be reported during a rest.
	restBreakthrough = 1
	// errHalfLife is the half-life, in samples, of the two experts' errors
	// that decide the seasonal expert's weight.
	errHalfLife = 1000
)

// tail is an exponentially forgotten histogram of deviations. Forgetting
// multiplies every weight by decay per sample; instead of doing so, each new
// sample is added with weight w that grows by 1/decay, and everything is
// rescaled when w gets large.
//
// The tail probability of a deviation is the weight at or above it (spread
// evenly within its bin) plus one new sample's weight, over the total plus
// that weight. Beyond the top edge of the highest bin still holding half a
// new sample's weight (the largest deviation the histogram remembers), it
// also falls as ((1+x)/(1+top))^−tailExponent, so that deviations far beyond
// anything remembered rank above those just beyond it.
type tail struct {
	c     [tailBins]float32
	total float64
	w     float64
	decay float64 // per sample
}

func (h *tail) init(halfLife float64) {
	h.w = 1
	h.decay = math.Exp2(-1 / halfLife)
}

func tailPos(x float64) float64 { return math.Log2(1+x) * tailBinsPerOctave }

func tailDeviation(pos float64) float64 { return math.Exp2(pos/tailBinsPerOctave) - 1 }

func (h *tail) add(x float64) {
	b := min(int(tailPos(x)), tailBins-1)
	h.w /= h.decay
	h.c[b] += float32(h.w)
	h.total += h.w
	if h.w > 1e18 {
		for i := range h.c {
			h.c[i] = float32(float64(h.c[i]) / h.w)
		}
		h.total /= h.w
		h.w = 1
	}
}

// edge is the top edge of the highest bin holding half a new sample's weight.
func (h *tail) edge() int {
	for i := tailBins - 1; i >= 0; i-- {
		if float64(h.c[i]) >= 0.5*h.w {
			return i + 1
		}
	}
	return 0
}

// logTail is log10 of the tail probability of the deviation at position
// pos (tailPos), given the edge. Beyond the edge the weight above it is
// taken as it stands at the edge, so the tail is continuous there.
func (h *tail) logTail(pos float64, edge int) float64 {
	norm := h.total + h.w
	if e := float64(edge); pos > e {
		return math.Log10((h.weightFrom(edge)+h.w)/norm) - tailExponent*(pos-e)/tailBinsPerOctave*math.Log10(2)
	}
	b := min(int(pos), tailBins-1)
	above := h.weightFrom(b + 1)
	above += (1 - (pos - float64(b))) * float64(h.c[b])
	return math.Log10((above + h.w) / norm)
}

// weightFrom is the weight in bins b and above.
func (h *tail) weightFrom(b int) float64 {
	w := 0.0
	for i := tailBins - 1; i >= b; i-- {
		w += float64(h.c[i])
	}
	return w
}

// surprise is −log10 of the tail probability of deviation x.
func (h *tail) surprise(x float64) float64 { return -h.logTail(tailPos(x), h.edge()) }

// threshold is the smallest deviation whose surprise reaches s.
func (h *tail) threshold(s float64) float64 {
	edge := h.edge()
	target := math.Pow(10, -s) * (h.total + h.w) // weight above the deviation, prior included
	above := h.weightFrom(edge) + h.w
	if above <= target {
		// Within the bins the tail is piecewise linear: walk down from the
		// edge to the bin where it reaches the target.
		for b := edge - 1; b >= 0; b-- {
			c := float64(h.c[b])
			if c > 0 && above+c >= target {
				return tailDeviation(float64(b) + 1 - (target-above)/c) // (1−frac)·c = target − above
			}
			above += c
		}
		return 0
	}
	return tailDeviation(float64(edge) + tailBinsPerOctave/tailExponent*math.Log2(above/target))
}

// slotStat is what the seasonal expert knows of one slot of the season.
type slotStat struct {
	mean float64
	dev  float32 // mean absolute deviation from mean
	n    uint8   // samples seen, saturating
	// peak holds the largest level deviation seen in the slot in season
	// number day (peak[0]) and the seasons before (peak[i] for day−i); a
	// season without samples in the slot has 0.
	peak [peakDays]float32
	day  int32
}

// peakDays is the number of seasons whose peaks a slot remembers, the
// current one included: recur_days is at most peakDays−1.
const peakDays = 4

// peakOf returns the slot's peak of season day−i (i ≥ 1).
func (s *slotStat) peakOf(day int32, i int) float32 {
	j := i - int(day-s.day) // index of season day−i in peak
	if j < 0 || j >= peakDays {
		return 0
	}
	return s.peak[j]
}

// notePeak records a level deviation x seen in season number day.
func (s *slotStat) notePeak(day int32, x float64) {
	if k := int(day - s.day); k > 0 {
		if k >= peakDays {
			s.peak = [peakDays]float32{}
		} else {
			copy(s.peak[k:], s.peak[:peakDays-k])
			clear(s.peak[:k])
		}
	}
	s.day = day
	s.peak[0] = max(s.peak[0], float32(x))
}

type surpriseDet struct {
	f *surpriseFactory

	n     int
	lastT int64

	fast, slow float64 // baselines
	noise      float64 // mean absolute deviation from fast
	win        []float64
	winPos     int
	winSum     float64

	slots      []slotStat
	errSeason  float64 // mean absolute error of the seasonal expert
	errLevel   float64 // and of the slow baseline, over the same samples
	errSamples int

	level, seasonal tail
	pend            [][2]float32 // ring of deviations not yet learned: level, seasonal or NaN
	pendPos         int          // next slot of pend to write
	pendN           int          // slots of pend in use
	restUntil       int64        // end of the rest, ms; 0 before the first onset
	restLevel       float64      // surprise of the last onset
}

// noiseScale is the unit of deviations: the series' noise, floored so that a
// constant series does not make every change infinitely rare.
func (d *surpriseDet) noiseScale() float64 {
	return math.Max(d.noise, spreadFloor(d.slow))
}

// seasonWeight is the weight of the seasonal expert's surprise, in [0, 1].
func (d *surpriseDet) seasonWeight() float64 {
	if d.errSamples < d.f.warmup || d.errLevel <= 0 {
		return 0
	}
	gain := 1 - d.errSeason/d.errLevel
	return math.Max(0, math.Min(1, gain/d.f.seasonGain))
}

func (d *surpriseDet) slotIndex(t int64) int {
	s := d.f.seasonMs
	return int(((t % s) + s) % s / d.f.slotMs)
}

// seasonOf is the number of the season (day) t falls in.
func (d *surpriseDet) seasonOf(t int64) int32 {
	s := d.f.seasonMs
	return int32((t - ((t%s)+s)%s) / s)
}

// recurring is the level deviation that recurs at t's time of day: the
// smaller of the largest deviations seen in the slot or its neighbours on
// each of the two previous days.
func (d *surpriseDet) recurring(t int64) float64 {
	if d.f.recur == 0 {
		return 0
	}
	var days [peakDays]float32
	for o := int64(-1); o <= 1; o++ {
		u := t + o*d.f.slotMs // the neighbouring slot, in its own season
		s, day := &d.slots[d.slotIndex(u)], d.seasonOf(u)
		for i := 1; i <= d.f.recurDays; i++ {
			days[i-1] = max(days[i-1], s.peakOf(day, i))
		}
	}
	// The recurCount-th largest.
	ds := days[:d.f.recurDays]
	slices.Sort(ds)
	return d.f.recur * float64(ds[len(ds)-d.f.recurCount])
}

func (d *surpriseDet) Observe(t int64, v float64) Result {
	if d.n > 0 && t <= d.lastT {
		return Unknown
	}
	if math.IsNaN(v) || math.IsInf(v, 0) {
		return Unknown
	}
	res := Unknown
	slot := &d.slots[d.slotIndex(t)]
	var rawLevel, levelDev, seasonDev, recur float64
	seasonOK := false
	if d.n > 0 {
		scale := d.noiseScale()
		k := float64(len(d.win) + 1)
		if d.n < len(d.win)+1 {
			k = float64(d.n + 1)
		}
		rawLevel = math.Abs((d.winSum+v)/k-d.slow) / scale
		recur = d.recurring(t)
		levelDev = math.Max(0, rawLevel-recur)
		if slot.n >= 3 {
			seasonDev = math.Abs(v-slot.mean) / math.Max(float64(slot.dev), scale)
			seasonOK = true
		}
	}
	if d.n >= d.f.warmup {
		s := d.level.surprise(levelDev)
		w := 0.0
		if seasonOK {
			w = d.seasonWeight()
			s = math.Max(s, w*d.seasonal.surprise(seasonDev))
		}
		score := s / d.f.surprise
		switch {
		case t < d.restUntil && s < d.restLevel+restBreakthrough &&
			!(d.restLevel < d.f.surprise && s >= d.f.surprise):
			// Resting, unless ten times rarer than the onset, or the first
			// alert after a near miss started the rest.
			score = 0
		case s >= d.f.onset:
			d.restUntil, d.restLevel = t+d.f.restMs, s
		}
		lower, upper := d.band(slot, w, recur)
		res = Result{Score: score, Lower: lower, Upper: upper}
	}
	d.learn(t, v, slot, rawLevel, levelDev, seasonDev, seasonOK)
	return res
}

// band returns the values that would score below 1 now; w is the seasonal
// expert's weight and recur the recurring level deviation.
func (d *surpriseDet) band(slot *slotStat, w, recur float64) (lower, upper float64) {
	scale := d.noiseScale()
	k := float64(len(d.win) + 1)
	if d.n < len(d.win)+1 {
		k = float64(d.n + 1)
	}
	half := (d.level.threshold(d.f.surprise) + recur) * scale
	// |(winSum+v)/k − slow| < half  ⇔  v ∈ k·(slow ± half) − winSum.
	lower, upper = k*(d.slow-half)-d.winSum, k*(d.slow+half)-d.winSum
	if w > 0 && slot.n >= 3 {
		// w·surprise(dev) < target  ⇔  dev < threshold(target/w).
		sh := d.seasonal.threshold(d.f.surprise/w) * math.Max(float64(slot.dev), scale)
		sl, su := slot.mean-sh, slot.mean+sh
		if sl < upper && su > lower {
			lower, upper = math.Max(lower, sl), math.Min(upper, su)
		}
	}
	return lower, upper
}

func (d *surpriseDet) learn(t int64, v float64, slot *slotStat, rawLevel, levelDev, seasonDev float64, seasonOK bool) {
	// The first half of the warm-up teaches the baselines and the noise
	// only: deviations measured against them are not yet meaningful.
	if d.n >= d.f.warmup/2 {
		slot.notePeak(d.seasonOf(t), rawLevel)
		sd := float32(math.NaN())
		if seasonOK {
			sd = float32(seasonDev)
		}
		d.pending(float32(levelDev), sd)
		if seasonOK {
			a := 1.0 / errHalfLife
			d.errSeason += a * (math.Abs(v-slot.mean) - d.errSeason)
			d.errLevel += a * (math.Abs(v-d.slow) - d.errLevel)
			d.errSamples++
		}
	}
	// The slot: each sample weighs in proportion to the time it covers (at
	// most one slot), so a slot forgets at the same rate in days whatever
	// the sampling interval.
	if slot.n == 0 {
		slot.mean, slot.dev = v, 0
	} else {
		dt := float64(d.f.slotMs)
		if d.n > 0 {
			dt = math.Min(dt, float64(t-d.lastT))
		}
		perDay := float64(d.f.seasonMs) / float64(d.f.slotMs)
		a := math.Max(1-math.Exp2(-dt*perDay/d.f.seasonHalfLifeMs), 1/float64(int(slot.n)+1))
		dv := v - slot.mean
		slot.mean += a * dv
		slot.dev += float32(a * (math.Abs(dv) - float64(slot.dev)))
	}
	if slot.n < math.MaxUint8 {
		slot.n++
	}
	// Baselines: plain running means at first (weight 1/n), then exponential.
	if d.n == 0 {
		d.fast, d.slow = v, v
	} else {
		nf := float64(d.n + 1)
		af := math.Max(1-math.Exp2(-10/d.f.halfLife), 1/nf)
		as := math.Max(1-math.Exp2(-1/d.f.halfLife), 1/nf)
		d.fast += af * (v - d.fast)
		d.noise += as * (math.Abs(v-d.fast) - d.noise)
		d.slow += as * (v - d.slow)
	}
	if len(d.win) > 0 {
		d.winSum += v - d.win[d.winPos]
		d.win[d.winPos] = v
		d.winPos = (d.winPos + 1) % len(d.win)
	}
	d.n++
	d.lastT = t
}

// pending queues a sample's level and seasonal deviations (NaN: none) for
// the histograms, which learn them lag samples later.
func (d *surpriseDet) pending(lv, sv float32) {
	if len(d.pend) > 0 {
		old := d.pend[d.pendPos]
		d.pend[d.pendPos] = [2]float32{lv, sv}
		d.pendPos = (d.pendPos + 1) % len(d.pend)
		if d.pendN < len(d.pend) {
			d.pendN++
			return
		}
		lv, sv = old[0], old[1]
	}
	d.level.add(float64(lv))
	if !math.IsNaN(float64(sv)) {
		d.seasonal.add(float64(sv))
	}
}
