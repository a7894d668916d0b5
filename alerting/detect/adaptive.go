package detect

import (
	"math"
	"time"
)

// The adaptive baseline keeps an exponentially weighted mean and variance of
// the series: a low-pass filter that follows trends and level shifts. The
// band is mean ± k·σ; a sample's score is |v − mean| / (k·σ).
//
// Parameters:
//
//	half_life    how long it takes a sample's weight to halve (default 6h);
//	             the weight of a step of dt is 1 − 2^(−dt/half_life), so the
//	             detector behaves the same at any sampling interval
//	k            half-width of the band in standard deviations (default 3)
//	warmup       samples seen before scoring starts (default 10)
//
// σ is the larger of the variance averaged over half_life and over 8
// half-lives: a band narrows slowly after a quiet spell, and widens at once
// when the series gets noisier. Every sample is learned as it is, so after
// a lasting level shift the band follows within a few half-lives, and a
// series whose spikes are normal stops flagging them.
//
// Cold start: NaN for the first `warmup` samples; the rule evaluator feeds
// it 5 half-lives of history from the store first, so it scores at once.
// Cost per series: 6 numbers of state, O(1) work per sample.
func init() {
	register(&Kind{
		Name: "adaptive",
		Help: "exponentially weighted mean and variance; band = mean ± k·σ",
		Params: []Param{
			{"half_life", "6h", "time for a sample's weight to halve"},
			{"k", "3", "band half-width in standard deviations"},
			{"warmup", "10", "samples learned before scoring starts"},
		},
		build: func(p *params) (Factory, error) {
			var f adaptiveFactory
			var err error
			if f.halfLife, err = p.duration("half_life", time.Millisecond); err != nil {
				return nil, err
			}
			if f.k, err = p.float("k", 0.01, 1000); err != nil {
				return nil, err
			}
			if f.warmup, err = p.int("warmup", 1, 1<<30); err != nil {
				return nil, err
			}
			f.spec = p.spec()
			return f, nil
		},
	})
}

type adaptiveFactory struct {
	halfLife time.Duration
	k        float64
	warmup   int
	spec     Spec
}

func (f adaptiveFactory) New() Detector { return newEWMA(f.halfLife, f.k, f.warmup) }

func (f adaptiveFactory) History() time.Duration { return 5 * f.halfLife }

func (f adaptiveFactory) Spec() Spec { return f.spec }

// ewma is the adaptive baseline; the seasonal detector reuses it as its fallback.
type ewma struct {
	halfLifeMs float64
	k          float64
	warmup     int

	n        int
	lastT    int64
	mean, vr float64
	// A slower average of the variance (8 half-lives) floors σ, so that a
	// quiet spell does not make ordinary noise anomalous.
	slowVr float64
}

func newEWMA(halfLife time.Duration, k float64, warmup int) *ewma {
	return &ewma{halfLifeMs: float64(halfLife.Milliseconds()), k: k, warmup: warmup}
}

// band returns the centre and half-width of the current band.
func (e *ewma) band() (c, w float64) {
	sd := math.Max(math.Sqrt(e.vr), math.Sqrt(e.slowVr))
	return e.mean, math.Max(e.k*sd, spreadFloor(e.mean))
}

func (e *ewma) ready() bool { return e.n >= e.warmup }

func (e *ewma) Observe(t int64, v float64) Result {
	if e.n > 0 && t <= e.lastT {
		return Unknown
	}
	if math.IsNaN(v) || math.IsInf(v, 0) {
		return Unknown
	}
	res := Unknown
	if e.ready() {
		c, w := e.band()
		res = Result{Score: deviation(v, c, w), Lower: c - w, Upper: c + w}
	}
	e.learn(t, v)
	return res
}

func (e *ewma) learn(t int64, v float64) {
	if e.n == 0 {
		e.mean, e.vr, e.n, e.lastT = v, 0, 1, t
		return
	}
	// Early on, the plain running mean and variance (weight 1/n) avoid
	// the bias of an exponential average started from one sample.
	a := math.Max(1-math.Exp2(-float64(t-e.lastT)/e.halfLifeMs), 1/float64(e.n+1))
	d := v - e.mean
	as := math.Max(1-math.Exp2(-float64(t-e.lastT)/(8*e.halfLifeMs)), 1/float64(e.n+1))
	e.mean += a * d
	e.vr = (1 - a) * (e.vr + a*d*d)
	e.slowVr = (1 - as) * (e.slowVr + as*d*d)
	e.n++
	e.lastT = t
}
