package detect

import (
	"math"
	"time"
)

// Static thresholds, for completeness: the band is [lower, upper] as given.
// With both thresholds the score is |v − mid| / half-width (1 on either
// threshold); with one, it is v's fraction of the way from zero to that
// threshold (v/upper, or lower/v mirrored: 1 + (lower − v)/|lower|), floored
// at 0, so the score is above 1 exactly when the threshold is crossed.
//
// Parameters: upper, lower (at least one). No cold start, no state, O(1).
func init() {
	register(&Kind{
		Name: "static",
		Help: "fixed thresholds; band = [lower, upper]",
		Params: []Param{
			{"upper", "", "upper threshold"},
			{"lower", "", "lower threshold"},
		},
		build: func(p *params) (Factory, error) {
			var f staticFactory
			var err error
			if f.upper, err = p.float("upper", math.Inf(-1), math.Inf(1)); err != nil {
				return nil, err
			}
			if f.lower, err = p.float("lower", math.Inf(-1), math.Inf(1)); err != nil {
				return nil, err
			}
			switch {
			case math.IsNaN(f.upper) && math.IsNaN(f.lower):
				return nil, errorString("needs upper, lower or both")
			case f.upper <= f.lower:
				return nil, errorString("upper must be above lower")
			}
			f.spec = p.spec()
			return f, nil
		},
	})
}

type errorString string

func (e errorString) Error() string { return string(e) }

type staticFactory struct {
	upper, lower float64 // NaN when not set
	spec         Spec
}

func (f staticFactory) New() Detector { return f }

func (f staticFactory) History() time.Duration { return 0 }

func (f staticFactory) Spec() Spec { return f.spec }

func (f staticFactory) Observe(_ int64, v float64) Result {
	if math.IsNaN(v) {
		return Unknown
	}
	r := Result{Lower: f.lower, Upper: f.upper}
	switch {
	case !math.IsNaN(f.upper) && !math.IsNaN(f.lower):
		r.Score = deviation(v, (f.upper+f.lower)/2, (f.upper-f.lower)/2)
	case !math.IsNaN(f.upper):
		r.Score = oneSided(v-f.upper, f.upper)
	default:
		r.Score = oneSided(f.lower-v, f.lower)
	}
	return r
}

// oneSided scores a sample `over` beyond a threshold thr.
func oneSided(over, thr float64) float64 {
	scale := math.Abs(thr)
	if scale == 0 {
		scale = 1
	}
	return math.Max(0, 1+over/scale)
}
