package cardinality

import (
	"context"
	"fmt"
	"testing"

	"github.com/prometheus/prometheus/model/labels"
)

// BenchmarkCount counts 100k series of 8 labels: 20 metrics, 5000
// instances, a high-cardinality request_id on a tenth of them.
func BenchmarkCount(b *testing.B) {
	series := make([]labels.Labels, 0, 100000)
	for i := range 100000 {
		lb := labels.NewScratchBuilder(8)
		lb.Add("__name__", fmt.Sprintf("metric_%d", i%20))
		lb.Add("env", "prod")
		lb.Add("instance", fmt.Sprintf("host-%d:9100", i%5000))
		lb.Add("job", "node")
		lb.Add("pod", fmt.Sprintf("pod-%d", i%700))
		lb.Add("region", fmt.Sprintf("r%d", i%4))
		if i%10 == 0 {
			lb.Add("request_id", fmt.Sprintf("%08x", i))
		}
		lb.Add("zone", fmt.Sprintf("z%d", i%12))
		lb.Sort()
		series = append(series, lb.Labels())
	}
	b.ReportAllocs()
	for b.Loop() {
		c, err := Count(context.Background(), set(series...), 0)
		if err != nil || c.Series != len(series) {
			b.Fatal(err, c.Series)
		}
		_ = c.TSDBStats("__name__", 10)
	}
}
