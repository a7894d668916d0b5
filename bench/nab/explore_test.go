package nab

import (
	"fmt"
	"math"
	"os"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/strata-tsdb/strata/alerting/detect"
)

// TestExplore scores detector specs given in $NAB_SPECS ("name k=v k=v;..."),
// with each category's standard score, TP and FP; NAB_DETAIL=1 adds each
// file's windows and false positives, NAB_PEAKS=1 each file's highest scores
// inside and outside windows, NAB_ROWS=1 every detected row, NAB_CURVE=1 each
// profile's score at every threshold that detects one more window.
func TestExplore(t *testing.T) {
	specs := os.Getenv("NAB_SPECS")
	if specs == "" {
		t.Skip()
	}
	files, err := Load(corpusDir())
	if err != nil {
		t.Fatal(err)
	}
	for _, sp := range strings.Split(specs, ";") {
		fs := strings.Fields(sp)
		spec := detect.Spec{Detector: fs[0], Params: map[string]string{}}
		for _, kv := range fs[1:] {
			k, v, _ := strings.Cut(kv, "=")
			spec.Params[k] = v
		}
		fac, err := detect.New(spec)
		if err != nil {
			t.Fatal(err)
		}
		d := FromFactory(sp, fac)
		scores := make([][]float64, len(files))
		for i, f := range files {
			scores[i] = d.Scores(f)
		}
		res := Score(files, scores)
		cats := ""
		for _, c := range res[0].Categories {
			cats += fmt.Sprintf(" %s %.1f/%d/%d", c.Name, c.Normalized, c.TP, c.FP)
		}
		if os.Getenv("NAB_PEAKS") != "" {
			raw := make([][]float64, len(files))
			for fi, f := range files {
				for _, r := range detect.Score(fac, f.Points) {
					raw[fi] = append(raw[fi], r.Score)
				}
			}
			peaks(t, files, raw)
		}
		if os.Getenv("NAB_CURVE") != "" {
			curveOf(t, files, scores)
		}
		if os.Getenv("NAB_DETAIL") != "" {
			detail(t, files, scores, res[0].Threshold)
		}
		if os.Getenv("NAB_ROWS") != "" {
			rows(t, files, scores, res[0].Threshold)
		}
		t.Logf("%-50s %6.2f %6.2f %6.2f  (TP %d FP %d thr %.4f; low FP: %d/%d %.4f; low FN: %d/%d %.4f)%s", sp,
			res[0].Normalized, res[1].Normalized, res[2].Normalized, res[0].TP, res[0].FP, res[0].Threshold,
			res[1].TP, res[1].FP, res[1].Threshold, res[2].TP, res[2].FP, res[2].Threshold, cats)
	}
}

// detail prints, per file, each window's first detection (row offset from the
// window's start, relative position) and the false positives, at threshold thr.
func detail(t *testing.T, files []File, scores [][]float64, thr float64) {
	for fi, f := range files {
		lb := label(f)
		var ws []string
		fp := 0
		first := map[int]int{}
		starts := map[int]int{}
		ends := map[int]int{}
		for j := range f.Points {
			if w := lb.window[j]; w >= 0 {
				if _, ok := starts[w]; !ok {
					starts[w] = j
				}
				ends[w] = j
			}
			if !lb.scored[j] || !(scores[fi][j] >= thr) {
				continue
			}
			if w := lb.window[j]; w >= 0 {
				if _, ok := first[w]; !ok {
					first[w] = j
				}
			} else {
				fp++
			}
		}
		for w := 0; w < len(starts); w++ {
			if j, ok := first[w]; ok {
				ws = append(ws, fmt.Sprintf("%.2f", float64(j-starts[w])/float64(ends[w]-starts[w]+1)))
			} else {
				ws = append(ws, "MISS")
			}
		}
		raw := categories(files[fi:fi+1], []labels{lb}, scores[fi:fi+1], Profiles[0], thr)[0].Raw
		t.Logf("  %-55s raw %6.2f FP %3d  windows %v", f.Name, raw, fp, ws)
	}
}

// rows prints every scored row detected at threshold thr: its window (−1:
// none), weekday and time, score, NAB weight (negative: a false positive's
// cost) and the values from 6 rows before it to 3 after.
func rows(t *testing.T, files []File, scores [][]float64, thr float64) {
	for fi, f := range files {
		lb := label(f)
		for j, s := range scores[fi] {
			if !lb.scored[j] || !(s >= thr) {
				continue
			}
			var vals []float64
			for k := max(0, j-6); k <= min(j+3, len(f.Points)-1); k++ {
				vals = append(vals, f.Points[k].V)
			}
			tm := time.UnixMilli(f.Points[j].T).UTC()
			t.Logf("  %-55s row %5d window %2d %s score %.2f weight %5.2f values %v",
				f.Name, j, lb.window[j], tm.Format("Mon 01-02 15:04"), s, lb.weight[j], vals)
		}
	}
}

// peaks prints, per file, the highest score in each window and the highest
// scores outside windows (scored rows only, 50 rows apart at least).
func peaks(t *testing.T, files []File, scores [][]float64) {
	for fi, f := range files {
		lb := label(f)
		wmax := map[int]float64{}
		type pk struct {
			i int
			s float64
		}
		var out []pk
		for j := range f.Points {
			if !lb.scored[j] {
				continue
			}
			s := scores[fi][j]
			if w := lb.window[j]; w >= 0 {
				wmax[w] = math.Max(wmax[w], s)
			} else {
				out = append(out, pk{j, s})
			}
		}
		sort.Slice(out, func(a, b int) bool { return out[a].s > out[b].s })
		var top []string
		var used []int
		for _, p := range out {
			if len(top) == 6 {
				break
			}
			near := false
			for _, u := range used {
				if p.i-u < 50 && u-p.i < 50 {
					near = true
				}
			}
			if near {
				continue
			}
			used = append(used, p.i)
			top = append(top, fmt.Sprintf("%.2f", p.s))
		}
		var ws []string
		for w := 0; w < 10; w++ {
			if s, ok := wmax[w]; ok {
				ws = append(ws, fmt.Sprintf("%.2f", s))
			}
		}
		t.Logf("  %-50s win %v  out %v", f.Name, ws, top)
	}
}

// curveOf prints, for each profile, the corpus score, windows detected and
// false positives at each threshold (highest first, down to 0.15) at which
// one more window is detected.
func curveOf(t *testing.T, files []File, scores [][]float64) {
	rs, windows := corpusRows(files, scores)
	for _, p := range Profiles {
		null := -p.FN * float64(windows)
		perfect := p.TP * float64(windows)
		last := -1
		for _, pt := range sweep(rs, windows, p) {
			if pt.threshold < 0.15 {
				break
			}
			if pt.tp != last {
				t.Logf("  %-20s threshold %.4f windows %2d FP %5d score %8.2f", p.Name, pt.threshold, pt.tp, pt.fp, 100*(pt.raw-null)/(perfect-null))
				last = pt.tp
			}
		}
	}
}
