// Package detect holds Strata's anomaly detectors: online scorers that see
// one series' samples in time order and, for each sample, say how far it lies
// from what the samples before it made normal.
//
// Every detector follows the same contract, which is what lets the rule
// evaluator, the ad-hoc API, the `strata detect` command and the NAB
// benchmark give identical scores for identical input:
//
//   - Observe(t, v) first scores v against the state learned from earlier
//     samples only, then learns v. A sample never influences its own score.
//   - The score is 0 at the centre of the band and 1 at its edge: a sample
//     is anomalous when its score is above 1, so alerting rules read
//     `<name>:anomaly_score > 1`. Scores are not bounded above.
//   - While a detector has not seen enough samples (cold start) it returns
//     NaN for the score and the band, and writes nothing.
//   - Detectors are deterministic: the same samples in the same order give
//     the same scores (the isolation forest uses a seeded generator).
//
// Detectors (see each file for parameters, cold start and cost):
//
//	surprise   rarity of the deviation in the series' own history (level
//	           and time of day), once per incident; the default
//	adaptive   exponentially weighted mean and variance, band = mean ± k·σ
//	seasonal   median and MAD per time-of-day / day-of-week slot
//	iforest    isolation forest over value, rate of change and seasonal residual
//	static     fixed lower and upper thresholds
package detect

import (
	"fmt"
	"math"
	"slices"
	"sort"
	"strings"
	"time"
)

// Result is a detector's judgement of one sample.
type Result struct {
	// Score is 0 at the band's centre and 1 at its edge; NaN during cold start.
	Score float64
	// Lower and Upper bound the normal band; NaN when unknown (cold start, or
	// a static detector without that threshold).
	Lower, Upper float64
}

// Unknown is the result of a detector that cannot judge yet.
var Unknown = Result{Score: math.NaN(), Lower: math.NaN(), Upper: math.NaN()}

// Detector scores the samples of one series, in time order.
type Detector interface {
	// Observe scores v at t (milliseconds since the epoch) against what
	// earlier samples taught, then learns v. Non-finite values are not
	// learned and score NaN. Samples not after the previous one are ignored.
	Observe(t int64, v float64) Result
}

// Factory makes detectors of one kind with one set of parameters.
type Factory interface {
	// New returns a detector with no history.
	New() Detector
	// History is how much past data a new detector should be fed before it
	// scores live samples: the rule evaluator reads that much from the store.
	History() time.Duration
	// Spec is the detector name and the full parameter set, defaults included.
	Spec() Spec
}

// Spec names a detector and its parameters, as rule files, the API and the
// command line give them.
type Spec struct {
	Detector string            `yaml:"detector" json:"detector"`
	Params   map[string]string `yaml:"params,omitempty" json:"params,omitempty"`
}

// Default is the detector Strata recommends when none is named: it scores
// best of Strata's detectors on the Numenta Anomaly Benchmark (see bench/nab)
// at a few KiB of state and about a microsecond per sample.
const Default = "surprise"

// Param describes one detector parameter.
type Param struct {
	Name    string
	Default string
	Help    string
}

// Kind is one detector type.
type Kind struct {
	Name   string
	Help   string
	Params []Param
	build  func(p *params) (Factory, error)
}

var kinds = map[string]*Kind{}

func register(k *Kind) { kinds[k.Name] = k }

// Kinds returns every detector kind, sorted by name.
func Kinds() []*Kind {
	out := make([]*Kind, 0, len(kinds))
	for _, k := range kinds {
		out = append(out, k)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}

// Lookup returns the detector kind called name.
func Lookup(name string) (*Kind, bool) {
	k, ok := kinds[name]
	return k, ok
}

// New returns the factory of spec, checking every parameter. An empty
// detector name means Default.
func New(spec Spec) (Factory, error) {
	name := spec.Detector
	if name == "" {
		name = Default
	}
	k, ok := kinds[name]
	if !ok {
		names := make([]string, 0, len(kinds))
		for n := range kinds {
			names = append(names, n)
		}
		slices.Sort(names)
		return nil, fmt.Errorf("unknown detector %q (known: %s)", name, strings.Join(names, ", "))
	}
	p := &params{kind: k, given: spec.Params, all: map[string]string{}}
	for key := range spec.Params {
		if !slices.ContainsFunc(k.Params, func(pp Param) bool { return pp.Name == key }) {
			return nil, fmt.Errorf("detector %s has no parameter %q", name, key)
		}
	}
	f, err := k.build(p)
	if err != nil {
		return nil, fmt.Errorf("detector %s: %w", name, err)
	}
	return f, nil
}

// params reads a spec's parameters, falling back to defaults.
type params struct {
	kind  *Kind
	given map[string]string
	all   map[string]string // every parameter as used, for Spec
}

func (p *params) raw(name string) string {
	v, ok := p.given[name]
	if !ok {
		for _, pp := range p.kind.Params {
			if pp.Name == name {
				v = pp.Default
			}
		}
	}
	p.all[name] = v
	return v
}

func (p *params) float(name string, lo, hi float64) (float64, error) {
	s := p.raw(name)
	if s == "" {
		return math.NaN(), nil
	}
	var f float64
	if _, err := fmt.Sscan(s, &f); err != nil {
		return 0, fmt.Errorf("parameter %s=%q is not a number", name, s)
	}
	if f < lo || f > hi || math.IsNaN(f) {
		return 0, fmt.Errorf("parameter %s=%v is outside [%v, %v]", name, f, lo, hi)
	}
	return f, nil
}

func (p *params) int(name string, lo, hi int) (int, error) {
	f, err := p.float(name, float64(lo), float64(hi))
	if err != nil {
		return 0, err
	}
	if f != math.Trunc(f) {
		return 0, fmt.Errorf("parameter %s=%v is not a whole number", name, f)
	}
	return int(f), nil
}

func (p *params) duration(name string, lo time.Duration) (time.Duration, error) {
	s := p.raw(name)
	d, err := parseDuration(s)
	if err != nil {
		return 0, fmt.Errorf("parameter %s=%q: %w", name, s, err)
	}
	if d < lo {
		return 0, fmt.Errorf("parameter %s=%s is shorter than %s", name, s, lo)
	}
	return d, nil
}

func (p *params) spec() Spec {
	out := make(map[string]string, len(p.all))
	for k, v := range p.all {
		if v != "" {
			out[k] = v
		}
	}
	return Spec{Detector: p.kind.Name, Params: out}
}

// parseDuration accepts Prometheus durations (1d, 1w, 90s) and Go ones (1h30m).
func parseDuration(s string) (time.Duration, error) {
	if d, err := time.ParseDuration(s); err == nil {
		return d, nil
	}
	var n int64
	var unit string
	if _, err := fmt.Sscanf(s, "%d%s", &n, &unit); err == nil {
		switch unit {
		case "d":
			return time.Duration(n) * 24 * time.Hour, nil
		case "w":
			return time.Duration(n) * 7 * 24 * time.Hour, nil
		case "y":
			return time.Duration(n) * 365 * 24 * time.Hour, nil
		}
	}
	return 0, fmt.Errorf("not a duration")
}

// Probability maps a score to [0, 1) monotonically, with the band's edge
// (score 1) at 0.5 and NaN (cold start) at 0. It is the anomaly_score column
// that `strata detect` writes, NAB's format.
func Probability(score float64) float64 {
	if math.IsNaN(score) || score <= 0 {
		return 0
	}
	if math.IsInf(score, 1) {
		return 1
	}
	return score / (1 + score)
}

// deviation is the score of v for a band centred on c with half-width w.
func deviation(v, c, w float64) float64 {
	if w <= 0 {
		if v == c {
			return 0
		}
		return math.Inf(1)
	}
	return math.Abs(v-c) / w
}

// spreadFloor keeps a band from collapsing to zero width on a constant
// series, where any change would otherwise score infinity: the half-width is
// at least this fraction of the centre's magnitude (or an absolute epsilon).
func spreadFloor(centre float64) float64 {
	return math.Max(1e-3*math.Abs(centre), 1e-9)
}
