package detect

import (
	"math"
	"math/rand/v2"
	"runtime"
	"testing"
)

// daily returns n samples `step` ms apart of a server-like metric: a daily
// cycle between about 40 and 160 with Gaussian noise of sd 4.
func daily(n int, step int64, seed uint64) []Point {
	rng := rand.New(rand.NewPCG(seed, 3))
	pts := make([]Point, n)
	for i := range pts {
		t := int64(i) * step
		day := float64(t%86400000) / 86400000
		pts[i] = Point{T: t, V: 100 - 60*math.Cos(2*math.Pi*day) + 4*rng.NormFloat64()}
	}
	return pts
}

// TestSurpriseIncidents injects each kind of incident into a week of a daily
// metric sampled every minute: the detector must not alert before it and
// must alert soon after it starts.
func TestSurpriseIncidents(t *testing.T) {
	const minute = 60000
	const n = 7 * 1440
	at := 6*1440 + 9*60 // day 7, 09:00: the cycle is rising
	for _, tc := range []struct {
		name   string
		inject func(pts []Point)
		within int // samples after the start by which an alert must come
	}{
		{"spike", func(pts []Point) { pts[at].V += 80 }, 1},
		{"level shift up", func(pts []Point) {
			for i := at; i < len(pts); i++ {
				pts[i].V += 40
			}
		}, 10},
		{"drop to zero", func(pts []Point) {
			for i := at; i < len(pts); i++ {
				pts[i].V = 0
			}
		}, 3},
		{"stuck value while the day moves on", func(pts []Point) {
			for i := at; i < len(pts); i++ {
				pts[i].V = pts[at].V
			}
		}, 12 * 60},
		{"missing daily peak", func(pts []Point) {
			for i := at; i < len(pts); i++ {
				pts[i].V = pts[i-1440].V - 60*(1-math.Cos(2*math.Pi*float64(i%1440)/1440))/2
			}
		}, 6 * 60},
	} {
		t.Run(tc.name, func(t *testing.T) {
			pts := daily(n, minute, 42)
			tc.inject(pts)
			d := mustNew(t, "surprise", nil).New()
			first := -1
			for i, p := range pts {
				r := d.Observe(p.T, p.V)
				if i < 2*1440 || !(r.Score >= 1) {
					continue
				}
				if i < at {
					t.Fatalf("alert at sample %d (day %d %02d:%02d), before the incident: score %v, band %v..%v, value %v",
						i, i/1440+1, i%1440/60, i%60, r.Score, r.Lower, r.Upper, p.V)
				}
				if first < 0 {
					first = i
				}
			}
			if first < 0 || first-at >= tc.within {
				t.Errorf("first alert %d samples after the incident, want within %d", first-at, tc.within)
			}
		})
	}
}

// TestSurpriseModerateShiftAfterHistory: a rule's detector that learned an
// hour of a noisy series (about 100, σ 3, a slow swing of ±10, one sample a
// second, as in the alerting e2e test) alerts on a sustained shift of +20
// to +60 within a minute, in every one of many runs, and stays below an
// alert on the same series without the shift. A shift rises through the
// level expert's 6-sample window; when the histogram learned each step at
// once, every step was measured against the one before and a +40 shift
// peaked near score 1 (missed in 79 of 200 runs).
func TestSurpriseModerateShiftAfterHistory(t *testing.T) {
	const runs = 40
	for _, shift := range []float64{0, 20, 40, 60} {
		missed, alerted := 0, 0
		for run := range runs {
			rng := rand.New(rand.NewPCG(uint64(run), 17))
			start := int64(1.7e12) + rng.Int64N(86400)*1000
			level := func(ts int64) float64 { return 100 + 10*math.Sin(float64(ts)/6e5) + 3*rng.NormFloat64() }
			d := mustNew(t, "surprise", nil).New()
			ts := start
			for ; ts < start+3600000; ts += 1000 {
				d.Observe(ts, level(ts))
			}
			quiet := 10 + rng.IntN(30)
			for range quiet {
				d.Observe(ts, level(ts))
				ts += 1000
			}
			top := 0.0
			for range 60 {
				top = math.Max(top, d.Observe(ts, level(ts)+shift).Score)
				ts += 1000
			}
			if top >= 1 {
				alerted++
			} else {
				missed++
			}
		}
		if shift == 0 && alerted > 0 {
			t.Errorf("no shift: %d of %d runs alerted", alerted, runs)
		}
		if shift > 0 && missed > 0 {
			t.Errorf("shift +%v: missed in %d of %d runs", shift, missed, runs)
		}
	}
}

// TestSurpriseQuietWeek: a week of several ordinary metrics, each with its own
// noise, raises at most a handful of alerts (the score's threshold is a tail
// probability of about 1 in 450 samples, and each alert rests a day).
func TestSurpriseQuietWeek(t *testing.T) {
	for _, tc := range []struct {
		name string
		pts  []Point
	}{
		{"daily cycle", daily(7*1440, 60000, 1)},
		{"flat with noise", series(7*1440, 50, 0, 3, 2)},
		{"heavy-tailed counts", func() []Point {
			rng := rand.New(rand.NewPCG(9, 9))
			pts := make([]Point, 7*1440)
			for i := range pts {
				pts[i] = Point{T: int64(i) * 60000, V: math.Floor(20 * math.Exp(0.5*rng.NormFloat64()))}
			}
			return pts
		}()},
	} {
		t.Run(tc.name, func(t *testing.T) {
			d := mustNew(t, "surprise", nil).New()
			alerts := 0
			for i, p := range tc.pts {
				if r := d.Observe(p.T, p.V); i >= 1440 && r.Score >= 1 {
					alerts++
				}
			}
			// 6·1440 samples at 1 in 450 would be 19 without the rest; the
			// histogram learns each series' own tail, so far fewer come.
			if alerts > 6 {
				t.Errorf("%d alerts over 6 ordinary days, want at most 6", alerts)
			}
		})
	}
}

// TestSurpriseRest: after an alert the detector reports 0 for `rest` (200
// minutes of 1-minute samples here), then alerts again on a new incident.
func TestSurpriseRest(t *testing.T) {
	pts := series(3000, 100, 0, 2, 5)
	pts[2000].V += 100
	pts[2050].V += 100 // within the rest, and no rarer
	pts[2300].V += 400 // after it, and rarer than anything seen
	d := mustNew(t, "surprise", map[string]string{"rest": "200m", "window": "1"}).New()
	for i, p := range pts {
		r := d.Observe(p.T, p.V)
		switch {
		case i == 2000 || i == 2300:
			if !(r.Score >= 1) {
				t.Errorf("sample %d: score %v, want an alert", i, r.Score)
			}
		case i > 2000 && i < 2200:
			if r.Score != 0 {
				t.Fatalf("sample %d: score %v within the rest, want 0", i, r.Score)
			}
		}
	}
}

// TestSurpriseRecurring: a burst that comes at the same time every day (a
// nightly job) stops counting as an incident's onset once it has come on each
// of the two previous days, while the same burst at another hour, or a much
// larger one at the usual hour, still does; so does the daily burst with
// recur=0. (The level histogram alone already learns that such bursts come
// every day and keeps them below an alert, score 1; the recurrence keeps them
// below an onset, which also matters: an onset starts a rest.)
func TestSurpriseRecurring(t *testing.T) {
	const day = 1440
	nightly := func(pts []Point, d, size float64) {
		for i := 0; i < 10; i++ { // 02:00–02:09
			pts[int(d)*day+2*60+i].V += size
		}
	}
	for _, tc := range []struct {
		name   string
		params map[string]string
		extra  func(pts []Point)
		// onset wanted on day 7 within [from, to) minutes of the day
		from, to int
		want     bool
	}{
		{"usual burst at the usual hour", nil, nil, 2 * 60, 2*60 + 10, false},
		{"usual burst at the usual hour, recur=0", map[string]string{"recur": "0"}, nil, 2 * 60, 2*60 + 10, true},
		{"same burst at another hour", nil, func(pts []Point) {
			for i := 0; i < 10; i++ {
				pts[6*day+14*60+i].V += 30
			}
		}, 14 * 60, 14*60 + 10, true},
		{"much larger burst at the usual hour", nil, func(pts []Point) { nightly(pts, 6, 120) }, 2 * 60, 2*60 + 10, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			pts := series(7*day, 50, 0, 2, 11)
			for d := 0; d < 7; d++ {
				nightly(pts, float64(d), 30)
			}
			if tc.extra != nil {
				tc.extra(pts)
			}
			// An onset rests a day: a rest from an earlier day must not
			// hide day 7's, so the test uses a short rest.
			params := map[string]string{"rest": "1h"}
			for k, v := range tc.params {
				params[k] = v
			}
			d := mustNew(t, "surprise", params).New()
			top := 0.0
			for i, p := range pts {
				r := d.Observe(p.T, p.V)
				if i >= 6*day+tc.from && i < 6*day+tc.to {
					top = math.Max(top, r.Score)
				}
			}
			const onset = 2.65 / 4 // the default onset over the default surprise
			if got := top >= onset; got != tc.want {
				t.Errorf("highest score on day 7 %.3f: onset %v, want %v", top, got, tc.want)
			}
		})
	}
}

// TestSurpriseBandMatchesScore: the band is the values the sample could have
// taken and scored below 1 (outside a rest).
func TestSurpriseBandMatchesScore(t *testing.T) {
	f := mustNew(t, "surprise", map[string]string{"rest": "0"})
	for _, pts := range [][]Point{daily(3*1440, 60000, 7), series(3000, 10, 0, 0.5, 8)} {
		d := f.New().(*surpriseDet)
		for i, p := range pts {
			var before *surpriseDet
			if i >= 100 && i%97 == 0 {
				before = d.clone()
			}
			r := d.Observe(p.T, p.V)
			if before == nil {
				continue
			}
			if !(r.Lower < r.Upper) {
				t.Fatalf("sample %d: band %v..%v", i, r.Lower, r.Upper)
			}
			eps := 1e-6 * (r.Upper - r.Lower)
			for _, probe := range []struct {
				v     float64
				alert bool
			}{
				{r.Upper - eps, false}, {r.Lower + eps, false}, {r.Upper + eps, true}, {r.Lower - eps, true},
			} {
				if got := before.clone().Observe(p.T, probe.v); (got.Score >= 1) != probe.alert {
					t.Fatalf("sample %d: value %v (band %v..%v) scored %v", i, probe.v, r.Lower, r.Upper, got.Score)
				}
			}
		}
	}
}

// clone copies the detector's state, for probing.
func (d *surpriseDet) clone() *surpriseDet {
	c := *d
	c.win = append([]float64(nil), d.win...)
	c.slots = append([]slotStat(nil), d.slots...)
	return &c
}

func TestTailThresholdInvertsSurprise(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 1))
	var h tail
	h.init(500)
	for i := range 5000 {
		h.add(math.Abs(rng.NormFloat64()) * (1 + float64(i%7)))
		if i%250 != 0 {
			continue
		}
		for _, s := range []float64{0.5, 1, 2, 2.65, 3.5, 5} {
			x := h.threshold(s)
			if got := h.surprise(x); math.Abs(got-s) > 1e-6 {
				t.Fatalf("after %d samples: surprise(threshold(%v) = %v) = %v", i, s, x, got)
			}
			if x > 0 && h.surprise(x*(1-1e-6)) > s+1e-9 {
				t.Fatalf("after %d samples: threshold(%v) = %v is not the smallest", i, s, x)
			}
		}
	}
}

// BenchmarkDetectors measures each detector on a warm daily metric sampled
// every minute: samples per second per core, and the bytes of state per
// series (the heap of 1000 detectors that learned 3000 samples, divided).
func BenchmarkDetectors(b *testing.B) {
	for _, k := range Kinds() {
		spec := Spec{Detector: k.Name}
		if k.Name == "static" {
			spec.Params = map[string]string{"upper": "150"}
		}
		b.Run(k.Name, func(b *testing.B) {
			f, err := New(spec)
			if err != nil {
				b.Fatal(err)
			}
			pts := daily(20000, 60000, 1)
			d := f.New()
			for _, p := range pts[:10000] {
				d.Observe(p.T, p.V)
			}
			b.ResetTimer()
			j := 10000
			for i := 0; i < b.N; i++ {
				if j == len(pts) {
					j = 10000
					for k := range pts[j:] {
						pts[j+k].T += int64(len(pts)) * 60000
					}
				}
				d.Observe(pts[j].T, pts[j].V)
				j++
			}
			b.StopTimer()
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "samples/s")
			b.ReportMetric(stateBytes(f, pts[:3000]), "B/series")
		})
	}
}

// stateBytes is the live heap per detector of f after learning pts: the heap
// with 1000 such detectors alive less the heap once they are gone.
func stateBytes(f Factory, pts []Point) float64 {
	const n = 1000
	ds := make([]Detector, n)
	for i := range ds {
		ds[i] = f.New()
		for _, p := range pts {
			ds[i].Observe(p.T, p.V)
		}
	}
	var with, without runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&with)
	runtime.KeepAlive(ds)
	ds = nil
	runtime.GC()
	runtime.ReadMemStats(&without)
	return float64(int64(with.HeapAlloc)-int64(without.HeapAlloc))/n - 16 // less the interface value in ds
}
