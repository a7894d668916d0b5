package bench

import (
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
