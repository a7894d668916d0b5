package gen

import (
	"math"

	"testing"

	"github.com/prometheus/common/model"
)

func TestNodeExporterSeries(t *testing.T) {
	one := NodeExporterSeries(1)
	if got := len(NodeExporterSeries(3)); got != 3*len(one) {
		t.Fatalf("3 hosts: %d series, want %d", got, 3*len(one))
	}
	seen := map[string]bool{}
	for _, s := range NodeExporterSeries(2) {
		if s.Labels.Get(model.MetricNameLabel) == "" || s.Labels.Get("instance") == "" {
			t.Fatalf("series without name or instance: %s", s.Labels)
		}
		if seen[s.Labels.String()] {
			t.Fatalf("duplicate series %s", s.Labels)
		}
		seen[s.Labels.String()] = true
	}
}

func TestGeneratorDeterministicAndCountersMonotonic(t *testing.T) {
	series := NodeExporterSeries(1)
	a, b := NewGenerator(series, 15000, 7), NewGenerator(series, 15000, 7)
	prev := make([]float64, len(series))
	for step := range 50 {
		ts := int64(step) * 15000
		va := make([]float64, len(series))
		a.Next(ts, func(i int, v float64) { va[i] = v })
		b.Next(ts, func(i int, v float64) {
			if v != va[i] {
				t.Fatalf("same seed, different value for %s", series[i].Labels)
			}
		})
		for i, s := range series {
			if s.Kind == Counter && va[i] < prev[i] {
				t.Fatalf("counter %s went down", s.Labels)
			}
		}
		prev = va
	}
}

// TestGeneratorQuantisation checks that values carry the precision of the
// exporter's source unit: a value v of a family measured in units of 1/div
// is an integer count of them, v == round(v*div)/div bit for bit.
func TestGeneratorQuantisation(t *testing.T) {
	cases := []struct {
		family string
		div    float64
	}{
		{"node_cpu_seconds_total", 100},
		{"node_cpu_guest_seconds_total", 100},
		{"node_disk_io_time_seconds_total", 1000},
		{"node_network_receive_errs_total", 1},
		{"node_disk_io_now", 1},
		{"node_procs_running", 1},
		{"node_procs_blocked", 1},
		{"node_load1", 100},
		{"node_load5", 100},
		{"node_load15", 100},
		{"node_timex_offset_seconds", 1e6},
		{"node_disk_read_bytes_total", 1},
		{"node_network_transmit_packets_total", 1},
		{"node_memory_MemFree_bytes", 1.0 / 4096},
	}
	series := NodeExporterSeries(2)
	g := NewGenerator(series, 15000, 3)
	byFamily := map[string][]float64{}
	for step := range 200 {
		g.Next(1_700_000_000_000+int64(step)*15000, func(i int, v float64) {
			name := series[i].Labels.Get(model.MetricNameLabel)
			byFamily[name] = append(byFamily[name], v)
		})
	}
	for _, tc := range cases {
		t.Run(tc.family, func(t *testing.T) {
			vs := byFamily[tc.family]
			if len(vs) == 0 {
				t.Fatalf("no series of family %s", tc.family)
			}
			distinct := map[float64]bool{}
			for _, v := range vs {
				if q := math.Round(v*tc.div) / tc.div; q != v {
					t.Fatalf("%s value %v is not a multiple of 1/%v (nearest %v)", tc.family, v, tc.div, q)
				}
				distinct[v] = true
			}
			// Quantised, not constant: the data still moves.
			if len(distinct) < 2 {
				t.Fatalf("%s: all %d values are %v", tc.family, len(vs), vs[0])
			}
		})
	}
}

// TestGeneratorHighEntropyWhereReal checks that the values that are
// high-entropy in a real exporter stay so: scrape durations in nanoseconds.
func TestGeneratorHighEntropyWhereReal(t *testing.T) {
	series := NodeExporterSeries(1)
	g := NewGenerator(series, 15000, 3)
	coarse := 0
	for step := range 100 {
		g.Next(int64(step)*15000, func(i int, v float64) {
			if series[i].Labels.Get(model.MetricNameLabel) == "scrape_duration_seconds" && math.Round(v*1e6)/1e6 == v {
				coarse++
			}
		})
	}
	if coarse > 5 {
		t.Fatalf("%d of 100 scrape durations are whole microseconds; want nanosecond precision", coarse)
	}
}
