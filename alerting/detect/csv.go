package detect

import (
	"bufio"
	"encoding/csv"
	"errors"
	"fmt"
	"io"
	"math"
	"strconv"
	"strings"
	"time"
)

// Point is one sample of a series.
type Point struct {
	T int64 // milliseconds since the epoch
	V float64
}

// timeLayouts are the timestamp forms ReadCSV accepts besides Unix seconds:
// NAB's, with or without fractional seconds, and RFC 3339.
var timeLayouts = []string{"2006-01-02 15:04:05.999999999", time.RFC3339Nano}

// ReadCSV reads `timestamp,value` rows, NAB's format: a header row, then
// timestamps `YYYY-MM-DD HH:MM:SS` (UTC), RFC 3339 or Unix seconds. Extra
// columns are ignored.
func ReadCSV(r io.Reader) ([]Point, error) {
	cr := csv.NewReader(bufio.NewReader(r))
	cr.FieldsPerRecord = -1
	cr.ReuseRecord = true
	var pts []Point
	for line := 1; ; line++ {
		rec, err := cr.Read()
		if errors.Is(err, io.EOF) {
			return pts, nil
		}
		if err != nil {
			return nil, fmt.Errorf("read CSV: %w", err)
		}
		if len(rec) < 2 {
			return nil, fmt.Errorf("line %d: want timestamp,value, got %d fields", line, len(rec))
		}
		t, terr := parseTime(strings.TrimSpace(rec[0]))
		v, verr := strconv.ParseFloat(strings.TrimSpace(rec[1]), 64)
		if line == 1 && (terr != nil || verr != nil) {
			continue // header
		}
		if terr != nil {
			return nil, fmt.Errorf("line %d: %w", line, terr)
		}
		if verr != nil {
			return nil, fmt.Errorf("line %d: value %q is not a number", line, rec[1])
		}
		pts = append(pts, Point{T: t, V: v})
	}
}

func parseTime(s string) (int64, error) {
	for _, l := range timeLayouts {
		if t, err := time.Parse(l, s); err == nil {
			return t.UnixMilli(), nil
		}
	}
	if f, err := strconv.ParseFloat(s, 64); err == nil && !math.IsNaN(f) && !math.IsInf(f, 0) {
		return int64(math.Round(f * 1000)), nil
	}
	return 0, fmt.Errorf("timestamp %q is neither YYYY-MM-DD HH:MM:SS, RFC 3339 nor Unix seconds", s)
}

// Score runs a new detector of f over pts in order, as the rule evaluator
// would have seen them one evaluation at a time.
func Score(f Factory, pts []Point) []Result {
	d := f.New()
	out := make([]Result, len(pts))
	for i, p := range pts {
		out[i] = d.Observe(p.T, p.V)
	}
	return out
}

// WriteCSV writes `timestamp,value,anomaly_score` rows, the score mapped to
// [0, 1] by Probability; with band, also the raw score and the band as
// `score,lower,upper` (empty when unknown).
func WriteCSV(w io.Writer, pts []Point, res []Result, band bool) error {
	bw := bufio.NewWriter(w)
	header := "timestamp,value,anomaly_score"
	if band {
		header += ",score,lower,upper"
	}
	fmt.Fprintln(bw, header)
	num := func(f float64) string {
		if math.IsNaN(f) {
			return ""
		}
		return strconv.FormatFloat(f, 'g', -1, 64)
	}
	for i, p := range pts {
		bw.WriteString(time.UnixMilli(p.T).UTC().Format("2006-01-02 15:04:05"))
		bw.WriteByte(',')
		bw.WriteString(strconv.FormatFloat(p.V, 'g', -1, 64))
		bw.WriteByte(',')
		bw.WriteString(strconvFormat(Probability(res[i].Score)))
		if band {
			fmt.Fprintf(bw, ",%s,%s,%s", num(res[i].Score), num(res[i].Lower), num(res[i].Upper))
		}
		bw.WriteByte('\n')
	}
	return bw.Flush()
}

func strconvFormat(f float64) string { return strconv.FormatFloat(f, 'g', 10, 64) }
