package load

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/golang/snappy"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/prompb"
	writev2 "github.com/prometheus/prometheus/prompb/io/prometheus/write/v2"
)

func TestParseStat(t *testing.T) {
	for _, tc := range []struct {
		name, in string
		want     time.Duration
		wantErr  bool
	}{
		{"plain", "1234 (prometheus) S 1 1234 1234 0 -1 4194560 100 0 0 0 250 130 0 0 20 0 12 0 1 2 3", 3800 * time.Millisecond, false},
		{"spaces and parens in name", "42 (a) b (c) R 1 42 42 0 -1 0 0 0 0 0 7 3 0 0 20 0 1 0", 100 * time.Millisecond, false},
		{"truncated", "42 (x) R 1 2", 0, true},
		{"no name", "garbage", 0, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := parseStat([]byte(tc.in))
			if (err != nil) != tc.wantErr || got != tc.want {
				t.Fatalf("parseStat = %v, %v; want %v, error %v", got, err, tc.want, tc.wantErr)
			}
		})
	}
}

func TestParseRSS(t *testing.T) {
	got, err := parseRSS([]byte("Name:\tx\nVmPeak:\t 999 kB\nVmRSS:\t   2048 kB\nThreads: 3\n"))
	if err != nil || got != 2048*1024 {
		t.Fatalf("parseRSS = %d, %v", got, err)
	}
	if got, err := parseStatusKB([]byte("VmHWM:\t  4096 kB\nVmRSS:\t 1 kB\n"), "VmHWM:"); err != nil || got != 4096*1024 {
		t.Fatalf("peak = %d, %v", got, err)
	}
	if _, err := parseRSS([]byte("Name:\tx\n")); err == nil {
		t.Fatal("no VmRSS: want an error")
	}
}

// TestGenerateBodiesCarryTheSameSamples decodes every body of both
// protocols and checks they hold the same series, values and timestamps,
// in batches of the requested size.
func TestGenerateBodiesCarryTheSameSamples(t *testing.T) {
	d, err := Generate(DataSpec{Series: 300, IntervalMs: 15000, Steps: 3, StartMs: 1_000_000, BatchSamples: 100, Seed: 3})
	if err != nil {
		t.Fatal(err)
	}
	if want := 3 * len(d.Series); d.Samples != want {
		t.Fatalf("samples = %d, want %d", d.Samples, want)
	}
	for step := range d.V1 {
		ts := int64(1_000_000 + 15000*step)
		if len(d.V1[step]) != len(d.V2[step]) {
			t.Fatalf("step %d: %d 1.0 bodies, %d 2.0 bodies", step, len(d.V1[step]), len(d.V2[step]))
		}
		seen := 0
		for i := range d.V1[step] {
			var r1 prompb.WriteRequest
			var r2 writev2.Request
			decode(t, d.V1[step][i], r1.Unmarshal)
			decode(t, d.V2[step][i], r2.Unmarshal)
			if len(r1.Timeseries) > 100 || len(r1.Timeseries) != len(r2.Timeseries) {
				t.Fatalf("batch sizes %d and %d", len(r1.Timeseries), len(r2.Timeseries))
			}
			for j := range r1.Timeseries {
				s1, s2 := r1.Timeseries[j], r2.Timeseries[j]
				var want []string
				d.Series[seen].Labels.Range(func(l labels.Label) { want = append(want, l.Name+"="+l.Value) })
				var names []string
				for _, l := range s1.Labels {
					names = append(names, l.Name+"="+l.Value)
				}
				var names2 []string
				for k := 0; k < len(s2.LabelsRefs); k += 2 {
					names2 = append(names2, r2.Symbols[s2.LabelsRefs[k]]+"="+r2.Symbols[s2.LabelsRefs[k+1]])
				}
				if strings.Join(names, ",") != strings.Join(want, ",") || strings.Join(names2, ",") != strings.Join(want, ",") {
					t.Fatalf("series %d: 1.0 %v, 2.0 %v, want %s", seen, names, names2, want)
				}
				if s1.Samples[0].Timestamp != ts || s2.Samples[0].Timestamp != ts || s1.Samples[0].Value != s2.Samples[0].Value {
					t.Fatalf("series %d: samples %v and %v at step %d", seen, s1.Samples, s2.Samples, step)
				}
				if r2.Symbols[s2.Metadata.HelpRef] == "" || s2.Metadata.Type == writev2.Metadata_METRIC_TYPE_UNSPECIFIED {
					t.Fatalf("series %d: no metadata in 2.0", seen)
				}
				seen++
			}
		}
		if seen != len(d.Series) {
			t.Fatalf("step %d carries %d series, want %d", step, seen, len(d.Series))
		}
	}
}

func decode(t *testing.T, body []byte, unmarshal func([]byte) error) {
	t.Helper()
	raw, err := snappy.Decode(nil, body)
	if err != nil {
		t.Fatal(err)
	}
	if err := unmarshal(raw); err != nil {
		t.Fatal(err)
	}
}

func TestMedian(t *testing.T) {
	for _, tc := range []struct {
		in   []time.Duration
		want time.Duration
	}{
		{nil, 0},
		{[]time.Duration{3, 1, 2}, 2},
		{[]time.Duration{4, 1, 3, 2}, 2},
	} {
		if got := median(tc.in); got != tc.want {
			t.Errorf("median(%v) = %v, want %v", tc.in, got, tc.want)
		}
	}
}

func TestDiffMatrix(t *testing.T) {
	m := func(v string) json.RawMessage {
		return json.RawMessage(`{"resultType":"matrix","result":[{"metric":{"a":"b"},"values":[[1,"` + v + `"]]}]}`)
	}
	if got := diffMatrix(m("1"), m("1.0000000000000002")); !strings.Contains(got, "same series and timestamps") {
		t.Errorf("rounding difference: %q", got)
	}
	other := json.RawMessage(`{"resultType":"matrix","result":[]}`)
	if got := diffMatrix(m("1"), other); !strings.Contains(got, "1 series vs 0") {
		t.Errorf("series difference: %q", got)
	}
}
