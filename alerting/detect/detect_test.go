package detect

import (
	"bytes"
	"math"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
	"time"
)

func mustNew(t *testing.T, name string, params map[string]string) Factory {
	t.Helper()
	f, err := New(Spec{Detector: name, Params: params})
	if err != nil {
		t.Fatalf("New(%s, %v): %v", name, params, err)
	}
	return f
}

func TestNewValidatesParameters(t *testing.T) {
	for _, tc := range []struct {
		name    string
		spec    Spec
		wantErr string
	}{
		{"default detector", Spec{}, ""},
		{"unknown detector", Spec{Detector: "magic"}, "unknown detector"},
		{"unknown parameter", Spec{Detector: "adaptive", Params: map[string]string{"alpha": "1"}}, "no parameter"},
		{"not a number", Spec{Detector: "adaptive", Params: map[string]string{"k": "x"}}, "not a number"},
		{"out of range", Spec{Detector: "adaptive", Params: map[string]string{"k": "0"}}, "outside"},
		{"prometheus duration", Spec{Detector: "seasonal", Params: map[string]string{"season": "1w", "slot": "2h"}}, ""},
		{"season not a multiple of slot", Spec{Detector: "seasonal", Params: map[string]string{"season": "1d", "slot": "7h"}}, "multiple"},
		{"static needs a threshold", Spec{Detector: "static"}, "needs upper"},
		{"static upper below lower", Spec{Detector: "static", Params: map[string]string{"upper": "1", "lower": "2"}}, "above lower"},
		{"iforest threshold range", Spec{Detector: "iforest", Params: map[string]string{"threshold": "0.4"}}, "outside"},
		{"whole numbers", Spec{Detector: "iforest", Params: map[string]string{"trees": "2.5"}}, "whole"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f, err := New(tc.spec)
			if tc.wantErr == "" {
				if err != nil {
					t.Fatal(err)
				}
				if f.Spec().Detector == "" || len(f.Spec().Params) == 0 {
					t.Errorf("Spec() = %+v, want the detector and its parameters", f.Spec())
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Fatalf("err = %v, want one containing %q", err, tc.wantErr)
			}
		})
	}
}

// series returns n samples one minute apart: a daily sine of amplitude amp
// around level, with Gaussian noise of sd noise.
func series(n int, level, amp, noise float64, seed uint64) []Point {
	rng := rand.New(rand.NewPCG(seed, 1))
	pts := make([]Point, n)
	for i := range pts {
		t := int64(i) * 60000
		day := float64(t%86400000) / 86400000
		pts[i] = Point{T: t, V: level + amp*math.Sin(2*math.Pi*day) + noise*rng.NormFloat64()}
	}
	return pts
}

func TestDetectorsFlagSpikesNotNoise(t *testing.T) {
	for _, tc := range []struct {
		name   string
		params map[string]string
		pts    []Point
		// fraction of normal samples (after the first day) allowed above 1
		maxFalse float64
	}{
		{"adaptive", nil, series(3*1440, 100, 0, 5, 1), 0.01},
		{"adaptive", map[string]string{"half_life": "30m", "k": "4"}, series(3*1440, 100, 20, 2, 2), 0.01},
		{"seasonal", nil, series(5*1440, 100, 50, 2, 3), 0.02},
		{"iforest", nil, series(3*1440, 100, 0, 5, 4), 0.05},
		{"surprise", nil, series(3*1440, 100, 0, 5, 5), 0.01},
		{"surprise", nil, series(5*1440, 100, 50, 2, 6), 0.01},
	} {
		t.Run(tc.name, func(t *testing.T) {
			d := mustNew(t, tc.name, tc.params).New()
			spike := len(tc.pts) - 10
			tc.pts[spike].V += 200
			var false1, normal int
			for i, p := range tc.pts {
				r := d.Observe(p.T, p.V)
				if i == spike {
					if !(r.Score > 1) || !(p.V > r.Upper) {
						t.Errorf("spike %v scored %v (band %v..%v), want > 1 and above the band", p.V, r.Score, r.Lower, r.Upper)
					}
					continue
				}
				if i < 1440 || i > spike {
					continue
				}
				normal++
				if math.IsNaN(r.Score) {
					t.Fatalf("sample %d: still cold after a day", i)
				}
				if r.Score > 1 {
					false1++
				}
				if !(r.Lower <= r.Upper) {
					t.Fatalf("sample %d: band %v..%v inverted", i, r.Lower, r.Upper)
				}
			}
			if frac := float64(false1) / float64(normal); frac > tc.maxFalse {
				t.Errorf("%.3f of normal samples scored above 1, want at most %.3f", frac, tc.maxFalse)
			}
		})
	}
}

func TestColdStartAndInvalidSamples(t *testing.T) {
	for _, name := range []string{"adaptive", "seasonal", "iforest", "surprise"} {
		t.Run(name, func(t *testing.T) {
			d := mustNew(t, name, nil).New()
			if r := d.Observe(1000, 5); !math.IsNaN(r.Score) {
				t.Errorf("first sample scored %v, want NaN (cold)", r.Score)
			}
			if r := d.Observe(2000, math.NaN()); !math.IsNaN(r.Score) {
				t.Errorf("NaN sample scored %v", r.Score)
			}
			if r := d.Observe(500, 5); !math.IsNaN(r.Score) {
				t.Errorf("sample older than the last scored %v, want NaN", r.Score)
			}
		})
	}
}

func TestSeasonalLearnsTimeOfDay(t *testing.T) {
	// Low (10) from 00:00 to 12:00, high (100) from 12:00 to 24:00, 4 days.
	f := mustNew(t, "seasonal", map[string]string{"season": "1d", "slot": "1h"})
	d := f.New()
	rng := rand.New(rand.NewPCG(7, 7))
	hour := int64(time.Hour / time.Millisecond)
	var ts int64
	for i := range 4 * 24 * 12 { // every 5 minutes
		ts = int64(i) * hour / 12
		v := 10.0
		if (ts/hour)%24 >= 12 {
			v = 100
		}
		d.Observe(ts, v+rng.NormFloat64())
	}
	morning := 4*24*hour + 3*hour
	evening := morning + 12*hour
	if r := d.Observe(morning, 10); r.Score > 1 {
		t.Errorf("10 in the morning scored %v (band %v..%v), want normal", r.Score, r.Lower, r.Upper)
	}
	if r := d.Observe(morning+hour, 100); r.Score <= 1 {
		t.Errorf("100 in the morning scored %v (band %v..%v), want anomalous", r.Score, r.Lower, r.Upper)
	}
	if r := d.Observe(evening, 100); r.Score > 1 {
		t.Errorf("100 in the evening scored %v (band %v..%v), want normal", r.Score, r.Lower, r.Upper)
	}
	if f.History() != 4*24*time.Hour {
		t.Errorf("History() = %v, want 4 seasons", f.History())
	}
}

func TestStatic(t *testing.T) {
	for _, tc := range []struct {
		params map[string]string
		v      float64
		want   float64
	}{
		{map[string]string{"upper": "90", "lower": "10"}, 50, 0},
		{map[string]string{"upper": "90", "lower": "10"}, 90, 1},
		{map[string]string{"upper": "90", "lower": "10"}, 130, 2},
		{map[string]string{"upper": "90", "lower": "10"}, 10, 1},
		{map[string]string{"upper": "80"}, 40, 0.5},
		{map[string]string{"upper": "80"}, 120, 1.5},
		{map[string]string{"upper": "80"}, -10, 0},
		{map[string]string{"lower": "20"}, 10, 1.5},
		{map[string]string{"lower": "20"}, 40, 0},
		{map[string]string{"upper": "0"}, 0.5, 1.5},
	} {
		r := mustNew(t, "static", tc.params).New().Observe(1, tc.v)
		if math.Abs(r.Score-tc.want) > 1e-12 {
			t.Errorf("static %v: v=%v scored %v, want %v", tc.params, tc.v, r.Score, tc.want)
		}
	}
}

func TestDeterministic(t *testing.T) {
	pts := series(2000, 50, 10, 3, 9)
	for _, name := range []string{"adaptive", "seasonal", "iforest", "surprise"} {
		f := mustNew(t, name, nil)
		a, b := Score(f, pts), Score(f, pts)
		for i := range a {
			same := func(x, y float64) bool { return x == y || (math.IsNaN(x) && math.IsNaN(y)) }
			if !same(a[i].Score, b[i].Score) || !same(a[i].Upper, b[i].Upper) {
				t.Fatalf("%s: run 2 differs at %d: %+v vs %+v", name, i, a[i], b[i])
			}
		}
	}
}

func TestMedian(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	for n := 1; n < 300; n += 7 {
		xs := make([]float64, n)
		for i := range xs {
			xs[i] = math.Round(rng.NormFloat64() * 5) // with ties
		}
		sorted := slices.Sorted(slices.Values(xs))
		want := sorted[n/2]
		if n%2 == 0 {
			want = (sorted[n/2-1] + sorted[n/2]) / 2
		}
		if got := median(slices.Clone(xs)); got != want {
			t.Errorf("n=%d: median = %v, want %v", n, got, want)
		}
	}
}

func TestProbability(t *testing.T) {
	for _, tc := range []struct{ in, want float64 }{
		{math.NaN(), 0}, {0, 0}, {-1, 0}, {1, 0.5}, {3, 0.75}, {math.Inf(1), 1},
	} {
		if got := Probability(tc.in); got != tc.want {
			t.Errorf("Probability(%v) = %v, want %v", tc.in, got, tc.want)
		}
	}
}

func TestCommand(t *testing.T) {
	in := "timestamp,value\n2014-04-01 00:00:00,1\n2014-04-01 00:05:00,1.5\n2014-04-01 00:10:00,1\n2014-04-01 00:15:00,9\n"
	for _, tc := range []struct {
		name     string
		args     []string
		wantCode int
		wantOut  []string
	}{
		{"default detector", []string{"-"}, 0, []string{"timestamp,value,anomaly_score", "2014-04-01 00:00:00,1,0"}},
		{"static with params", []string{"--detector", "static", "--upper", "4", "-"}, 0, []string{"2014-04-01 00:15:00,9,0.6923076923"}},
		{"dashed parameter names", []string{"--detector=adaptive", "--half-life", "1h", "--warmup=2", "--band", "-"}, 0, []string{"timestamp,value,anomaly_score,score,lower,upper"}},
		{"unknown detector", []string{"--detector", "nope", "-"}, 2, nil},
		{"parameter of another detector", []string{"--detector", "static", "--half_life", "1h", "-"}, 2, nil},
		{"bad parameter value", []string{"--detector", "adaptive", "--k", "-1", "-"}, 2, nil},
		{"no file", []string{}, 2, nil},
		{"missing file", []string{"/nonexistent.csv"}, 1, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var out, errw bytes.Buffer
			code := Command(tc.args, strings.NewReader(in), &out, &errw)
			if code != tc.wantCode {
				t.Fatalf("exit %d, want %d; stderr: %s", code, tc.wantCode, errw.String())
			}
			for _, w := range tc.wantOut {
				if !strings.Contains(out.String(), w) {
					t.Errorf("output lacks %q:\n%s", w, out.String())
				}
			}
		})
	}
}

func TestCommandMatchesOnlineScoring(t *testing.T) {
	pts := series(600, 20, 5, 1, 11)
	var csv bytes.Buffer
	if err := WriteCSV(&csv, pts, make([]Result, len(pts)), false); err != nil {
		t.Fatal(err)
	}
	// Re-read what was written (values round-trip exactly).
	back, err := ReadCSV(strings.NewReader(csv.String()))
	if err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	if code := Command([]string{"--detector", "seasonal", "-"}, strings.NewReader(csv.String()), &out, &out); code != 0 {
		t.Fatalf("exit %d: %s", code, out.String())
	}
	d := mustNew(t, "seasonal", nil).New()
	lines := strings.Split(strings.TrimSpace(out.String()), "\n")[1:]
	for i, p := range back {
		want := Probability(d.Observe(p.T, p.V).Score)
		fields := strings.Split(lines[i], ",")
		if got := fields[2]; got != strconvFormat(want) {
			t.Fatalf("row %d: CLI score %s, online %v", i, got, want)
		}
	}
}
