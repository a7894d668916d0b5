// Package nab scores anomaly detectors on the Numenta Anomaly Benchmark
// (NAB) with NAB's published scoring rules: label windows, the 15%
// probationary period, the scaled-sigmoid weighting of detections, the three
// application profiles, one threshold per profile chosen to maximise the
// score over the whole corpus, and normalisation so that the null detector
// scores 0 and the perfect detector 100.
//
// The rules, as this scorer implements them (after Lavin & Ahmad 2015 and
// NAB's sweeper):
//
//   - The first min(⌊0.15·n⌋, 0.15·5000) rows of a file are probationary and
//     never scored.
//   - A row i inside a window [l, r] (row indices) has the weight
//     σ(−(r−i+1)/(r−l+1)) · tp/σ(−1), where σ(x) = 2/(1+e^{5x}) − 1: earlier
//     is better, the window's first row earns exactly tp. Only the window's
//     earliest detection counts; a window without one costs −fn.
//   - A detection outside every window costs fp·σ(|i−r'|/(w'−1)) (negative)
//     where r' and w' are the right end and width of the window before it,
//     or −fp when there is none: detections just after a window cost little.
//   - Profiles: standard (tp 1, fp 0.11, fn 1), reward_low_FP_rate (fp 0.22),
//     reward_low_FN_rate (fn 2). A row is a detection when its score is at or
//     above the profile's threshold.
//   - normalised = 100 · (raw − null) / (perfect − null), with
//     null = −fn·W and perfect = tp·W for the W scored windows.
package nab

import (
	"compress/gzip"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"math"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/strata-tsdb/strata/alerting/detect"
)

// File is one labelled series of the corpus.
type File struct {
	Name    string // category/name.csv, as in NAB's label files
	Points  []detect.Point
	Windows [][2]int64 // anomaly windows [start, end], milliseconds, inclusive
}

// Load reads every file named in dir/labels/combined_windows.json from
// dir/data, as NAB lays them out: data/<category>/<name>.csv, or the same
// gzip-compressed with a .gz suffix (as in testdata).
func Load(dir string) ([]File, error) {
	b, err := os.ReadFile(filepath.Join(dir, "labels", "combined_windows.json"))
	if err != nil {
		return nil, fmt.Errorf("read NAB labels: %w", err)
	}
	var windows map[string][][2]string
	if err := json.Unmarshal(b, &windows); err != nil {
		return nil, fmt.Errorf("parse NAB labels: %w", err)
	}
	names := make([]string, 0, len(windows))
	for n := range windows {
		names = append(names, n)
	}
	sort.Strings(names)
	files := make([]File, 0, len(names))
	for _, n := range names {
		pts, err := readData(filepath.Join(dir, "data", n))
		if err != nil {
			return nil, fmt.Errorf("NAB file %s: %w", n, err)
		}
		file := File{Name: n, Points: pts}
		for _, w := range windows[n] {
			var lim [2]int64
			for i, s := range w {
				t, err := time.Parse("2006-01-02 15:04:05.999999", s)
				if err != nil {
					return nil, fmt.Errorf("NAB window of %s: %w", n, err)
				}
				lim[i] = t.UnixMilli()
			}
			file.Windows = append(file.Windows, lim)
		}
		files = append(files, file)
	}
	return files, nil
}

// readData reads the CSV file at path, or path.gz decompressed.
func readData(path string) ([]detect.Point, error) {
	f, err := os.Open(path)
	if errors.Is(err, fs.ErrNotExist) {
		f, err = os.Open(path + ".gz")
		if err != nil {
			return nil, err
		}
		defer f.Close()
		zr, err := gzip.NewReader(f)
		if err != nil {
			return nil, fmt.Errorf("%s.gz: %w", path, err)
		}
		return detect.ReadCSV(zr)
	}
	if err != nil {
		return nil, err
	}
	defer f.Close()
	return detect.ReadCSV(f)
}

// Profile is one of NAB's application profiles.
type Profile struct {
	Name       string
	TP, FP, FN float64
}

// Profiles are NAB's three application profiles.
var Profiles = []Profile{
	{"standard", 1, 0.11, 1},
	{"reward_low_FP_rate", 1, 0.22, 1},
	{"reward_low_FN_rate", 1, 0.11, 2},
}

// scaledSigmoid is NAB's weighting of a relative position.
func scaledSigmoid(x float64) float64 {
	if x > 3 {
		return -1
	}
	return 2/(1+math.Exp(5*x)) - 1
}

// ProbationRows is the number of leading rows NAB does not score.
func ProbationRows(n int) int {
	return int(math.Min(math.Floor(0.15*float64(n)), 0.15*5000))
}

// labels is the profile-independent scoring of each row of a file.
type labels struct {
	window []int     // window index of the row, −1 outside windows
	weight []float64 // unweighted sweep score: TP weight in windows, FP weight outside
	scored []bool    // false for probationary rows
	n      int       // windows with at least one scored row
}

func label(f File) labels {
	n := len(f.Points)
	lb := labels{window: make([]int, n), weight: make([]float64, n), scored: make([]bool, n)}
	prob := ProbationRows(n)
	type span struct{ l, r int }
	var spans []span
	for _, w := range f.Windows {
		l := sort.Search(n, func(i int) bool { return f.Points[i].T >= w[0] })
		r := sort.Search(n, func(i int) bool { return f.Points[i].T > w[1] }) - 1
		if l <= r {
			spans = append(spans, span{l, r})
		}
	}
	for i := range n {
		lb.window[i] = -1
	}
	for k, s := range spans {
		for i := s.l; i <= s.r; i++ {
			lb.window[i] = k
		}
	}
	ids := map[int]bool{}
	prevR, prevW := -1, 0 // the last window that ended before row i
	for i := range n {
		if k := lb.window[i]; k >= 0 {
			s := spans[k]
			lb.weight[i] = scaledSigmoid(-float64(s.r-i+1)/float64(s.r-s.l+1)) / scaledSigmoid(-1)
			if i == s.r {
				prevR, prevW = s.r, s.r-s.l+1
			}
		} else if prevR < 0 || prevW < 2 {
			lb.weight[i] = -1
		} else {
			lb.weight[i] = scaledSigmoid(float64(i-prevR) / float64(prevW-1))
		}
		lb.scored[i] = i >= prob
		if lb.scored[i] && lb.window[i] >= 0 {
			ids[lb.window[i]] = true
		}
	}
	lb.n = len(ids)
	return lb
}

// row is one scored row of the corpus.
type row struct {
	score  float64
	file   int
	window int // global window id, −1 outside
	weight float64
}

// Result is a detector's score on the corpus under one profile.
type Result struct {
	Profile    string
	Threshold  float64 // score at or above which a row is a detection
	Raw        float64
	Normalized float64 // null 0, perfect 100
	TP, FP, FN int
	// Categories are the scores of each category of files (the folder part
	// of File.Name) at the corpus's threshold, sorted by name.
	Categories []Category
}

// Category is the part of a corpus score that one category's files earn.
type Category struct {
	Name       string
	Files      int
	Windows    int     // scored windows
	Raw        float64 // the category's share of the corpus's raw score
	Normalized float64 // null 0, perfect 100 over the category's windows; NaN without windows
	TP, FP, FN int
}

// CategoryOf is the category of a file name: its folder.
func CategoryOf(name string) string {
	if i := strings.LastIndexByte(name, '/'); i >= 0 {
		return name[:i]
	}
	return ""
}

// Score scores per-file anomaly scores (scores[i][j] for row j of files[i],
// each in [0,1]) under every profile.
func Score(files []File, scores [][]float64) []Result {
	rows, windows := corpusRows(files, scores)
	lbs := make([]labels, len(files))
	for fi, f := range files {
		lbs[fi] = label(f)
	}
	var out []Result
	for _, p := range Profiles {
		c := sweep(rows, windows, p)
		best := 0
		for i := range c {
			if c[i].raw > c[best].raw {
				best = i
			}
		}
		null := -p.FN * float64(windows)
		perfect := p.TP * float64(windows)
		out = append(out, Result{
			Profile: p.Name, Threshold: c[best].threshold, Raw: c[best].raw,
			Normalized: 100 * (c[best].raw - null) / (perfect - null),
			TP:         c[best].tp, FP: c[best].fp, FN: windows - c[best].tp,
			Categories: categories(files, lbs, scores, p, c[best].threshold),
		})
	}
	return out
}

// corpusRows returns the scored rows of every file, highest score first
// (rows of equal score in time order), with windows numbered across the
// corpus, and the number of windows.
func corpusRows(files []File, scores [][]float64) ([]row, int) {
	var rows []row
	windows := 0
	for fi, f := range files {
		lb := label(f)
		seen := map[int]int{}
		for j := range f.Points {
			if !lb.scored[j] {
				continue
			}
			w := -1
			if lb.window[j] >= 0 {
				id, ok := seen[lb.window[j]]
				if !ok {
					id = windows
					seen[lb.window[j]] = id
					windows++
				}
				w = id
			}
			rows = append(rows, row{scores[fi][j], fi, w, lb.weight[j]})
		}
	}
	sort.SliceStable(rows, func(a, b int) bool { return rows[a].score > rows[b].score })
	return rows, windows
}

// categories scores each category's files at threshold thr.
func categories(files []File, lbs []labels, scores [][]float64, p Profile, thr float64) []Category {
	byName := map[string]*Category{}
	for fi, f := range files {
		name := CategoryOf(f.Name)
		c := byName[name]
		if c == nil {
			c = &Category{Name: name}
			byName[name] = c
		}
		c.Files++
		lb := lbs[fi]
		c.Windows += lb.n
		c.Raw -= p.FN * float64(lb.n)
		best := map[int]float64{}
		for j := range f.Points {
			if !lb.scored[j] || !(scores[fi][j] >= thr) {
				continue
			}
			w := lb.window[j]
			if w < 0 {
				c.Raw += p.FP * lb.weight[j]
				c.FP++
				continue
			}
			if _, ok := best[w]; !ok {
				best[w] = p.TP * lb.weight[j] // rows are in time order: the earliest
				c.Raw += best[w] + p.FN
				c.TP++
			}
		}
	}
	out := make([]Category, 0, len(byName))
	for _, c := range byName {
		c.FN = c.Windows - c.TP
		c.Normalized = math.NaN()
		if c.Windows > 0 {
			null := -p.FN * float64(c.Windows)
			c.Normalized = 100 * (c.Raw - null) / (p.TP*float64(c.Windows) - null)
		}
		out = append(out, *c)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}

// point is the corpus score with detections at scores >= threshold.
type point struct {
	threshold float64
	raw       float64
	tp, fp    int
}

// curve holds the corpus score for every distinct threshold, highest
// threshold first; the first point (threshold +Inf) has no detections.
type curve []point

func sweep(rows []row, windows int, p Profile) curve {
	best := make([]float64, windows) // best TP weight per window, NaN when undetected
	for i := range best {
		best[i] = math.NaN()
	}
	total, tp, fp := -p.FN*float64(windows), 0, 0
	c := curve{{threshold: math.Inf(1), raw: total}}
	for i := 0; i < len(rows); {
		thr := rows[i].score
		for ; i < len(rows) && rows[i].score == thr; i++ {
			win, weight := rows[i].window, rows[i].weight
			if win < 0 {
				total += p.FP * weight
				fp++
				continue
			}
			w := p.TP * weight
			switch {
			case math.IsNaN(best[win]):
				total += w + p.FN
				best[win] = w
				tp++
			case w > best[win]:
				total += w - best[win]
				best[win] = w
			}
		}
		c = append(c, point{thr, total, tp, fp})
	}
	return c
}

// Detector is a named way to score a file: a detect.Factory, or a
// reference detector of the benchmark.
type Detector struct {
	Name string
	// Scores returns the [0,1] anomaly score of every row of f.
	Scores func(f File) []float64
}

// FromFactory scores files with an online detector, as `strata detect` does.
func FromFactory(name string, fac detect.Factory) Detector {
	return Detector{Name: name, Scores: func(f File) []float64 {
		res := detect.Score(fac, f.Points)
		out := make([]float64, len(res))
		for i, r := range res {
			out[i] = detect.Probability(r.Score)
		}
		return out
	}}
}

// StaticFromProbation is the static detector as a person would set it up
// after looking at the probationary period: thresholds 10% of the observed
// range beyond its minimum and maximum.
func StaticFromProbation() Detector {
	return Detector{Name: "static (probation range ±10%)", Scores: func(f File) []float64 {
		prob := ProbationRows(len(f.Points))
		lo, hi := math.Inf(1), math.Inf(-1)
		for _, p := range f.Points[:prob] {
			lo, hi = math.Min(lo, p.V), math.Max(hi, p.V)
		}
		margin := math.Max(0.1*(hi-lo), 1e-9)
		fac, err := detect.New(detect.Spec{Detector: "static", Params: map[string]string{
			"lower": fmt.Sprint(lo - margin), "upper": fmt.Sprint(hi + margin),
		}})
		if err != nil {
			panic(err)
		}
		return FromFactory("", fac).Scores(f)
	}}
}

// WindowedGaussian is NAB's windowed Gaussian baseline as NAB's stored
// results for it were produced: the mean and standard deviation of a window
// of up to 6400 earlier values (the full window sliding 100 values at a
// time), and the score 1 − P(|X − mean| ≥ |x − mean|) read from a table of
// the normal tail at z rounded to tenths, 0 beyond z = 7 (nupic's
// normalProbability). The table matters: a score is exactly 1 only beyond
// 7.05 standard deviations, which is where NAB's optimiser puts the
// threshold. It checks the scorer against NAB's published figures
// (TestScorerReproducesNAB); with the exact tail instead of the table the
// same detector scores 1–8 points higher.
func WindowedGaussian() Detector {
	return Detector{Name: "windowed Gaussian (NAB baseline, reference)", Scores: func(f File) []float64 {
		const size, step = 6400, 100
		var window, pending []float64
		mean, sd := 0.0, 1.0
		refit := func() {
			var s, ss float64
			for _, v := range window {
				s += v
			}
			mean = s / float64(len(window))
			for _, v := range window {
				ss += (v - mean) * (v - mean)
			}
			sd = math.Sqrt(ss / float64(len(window)))
			if sd == 0 {
				sd = 1e-6
			}
		}
		out := make([]float64, len(f.Points))
		for i, p := range f.Points {
			if len(window) > 0 {
				out[i] = 1 - tableTail(math.Abs(p.V-mean)/sd)
			}
			if len(window) < size {
				window = append(window, p.V)
				refit()
				continue
			}
			pending = append(pending, p.V)
			if len(pending) == step {
				window = append(slices.Clone(window[step:]), pending...)
				pending = pending[:0]
				refit()
			}
		}
		return out
	}}
}

// tableTail is the normal distribution's upper tail P(Z > z) for z >= 0 as
// nupic tabulates it: z rounded to tenths, 0 beyond 7.
func tableTail(z float64) float64 {
	k := math.Round(10 * z)
	if k > 70 {
		return 0
	}
	return 0.5 * math.Erfc(k/10/math.Sqrt2)
}
