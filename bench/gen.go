// Package bench generates realistic Prometheus data and measures Strata
// with it: node-exporter-shaped series (names, label sets, counters and
// gauges as a host exports them), sampled at a fixed interval.
//
// The generator is deterministic for a seed, so two systems fed by it in one
// run receive exactly the same samples.
package bench

import (
	"fmt"
	"math"
	"math/rand/v2"

	"github.com/prometheus/prometheus/model/labels"
)

// Kind is how a series' value evolves.
type Kind int

// Kinds of series.
const (
	// Counter grows by a non-negative random step each sample.
	Counter Kind = iota
	// Gauge moves around a level with noise and a slow daily swing.
	Gauge
	// Constant never changes (info-style and limit series).
	Constant
)

// Series is one generated series.
type Series struct {
	Labels labels.Labels
	Kind   Kind
	// Rate is a counter's mean increase per second; a gauge's level.
	Rate float64
}

// family is a node-exporter metric family: its name, kind, and the label
// dimensions each instance multiplies it by.
type family struct {
	name string
	kind Kind
	rate float64
	dims [][2]string // label name, values joined by ","
}

var nodeFamilies = func() []family {
	cpus := "0,1,2,3,4,5,6,7"
	modes := "idle,iowait,irq,nice,softirq,steal,system,user"
	devs := "nvme0n1,nvme1n1,sda"
	ifaces := "eth0,eth1,lo"
	mounts := "/,/boot,/var,/home"
	return []family{
		{"node_cpu_seconds_total", Counter, 0.12, [][2]string{{"cpu", cpus}, {"mode", modes}}},
		{"node_cpu_guest_seconds_total", Counter, 0.001, [][2]string{{"cpu", cpus}, {"mode", "nice,user"}}},
		{"node_disk_read_bytes_total", Counter, 2e5, [][2]string{{"device", devs}}},
		{"node_disk_written_bytes_total", Counter, 8e5, [][2]string{{"device", devs}}},
		{"node_disk_reads_completed_total", Counter, 40, [][2]string{{"device", devs}}},
		{"node_disk_writes_completed_total", Counter, 120, [][2]string{{"device", devs}}},
		{"node_disk_io_time_seconds_total", Counter, 0.05, [][2]string{{"device", devs}}},
		{"node_disk_io_now", Gauge, 2, [][2]string{{"device", devs}}},
		{"node_network_receive_bytes_total", Counter, 1e6, [][2]string{{"device", ifaces}}},
		{"node_network_transmit_bytes_total", Counter, 7e5, [][2]string{{"device", ifaces}}},
		{"node_network_receive_packets_total", Counter, 900, [][2]string{{"device", ifaces}}},
		{"node_network_transmit_packets_total", Counter, 700, [][2]string{{"device", ifaces}}},
		{"node_network_receive_errs_total", Counter, 0.001, [][2]string{{"device", ifaces}}},
		{"node_network_up", Constant, 1, [][2]string{{"device", ifaces}}},
		{"node_filesystem_avail_bytes", Gauge, 4e10, [][2]string{{"mountpoint", mounts}, {"fstype", "ext4"}}},
		{"node_filesystem_size_bytes", Constant, 1e11, [][2]string{{"mountpoint", mounts}, {"fstype", "ext4"}}},
		{"node_filesystem_files_free", Gauge, 6e6, [][2]string{{"mountpoint", mounts}, {"fstype", "ext4"}}},
		{"node_memory_MemAvailable_bytes", Gauge, 1.2e10, nil},
		{"node_memory_MemFree_bytes", Gauge, 3e9, nil},
		{"node_memory_Cached_bytes", Gauge, 6e9, nil},
		{"node_memory_Buffers_bytes", Gauge, 4e8, nil},
		{"node_memory_MemTotal_bytes", Constant, 3.2e10, nil},
		{"node_load1", Gauge, 1.5, nil},
		{"node_load5", Gauge, 1.3, nil},
		{"node_load15", Gauge, 1.1, nil},
		{"node_context_switches_total", Counter, 4000, nil},
		{"node_intr_total", Counter, 3000, nil},
		{"node_forks_total", Counter, 5, nil},
		{"node_procs_running", Gauge, 3, nil},
		{"node_procs_blocked", Gauge, 0.2, nil},
		{"node_vmstat_pgfault", Counter, 2e4, nil},
		{"node_vmstat_pgmajfault", Counter, 1, nil},
		{"node_timex_offset_seconds", Gauge, 1e-4, nil},
		{"node_boot_time_seconds", Constant, 1.7e9, nil},
		{"node_time_seconds", Counter, 1, nil},
		{"up", Constant, 1, nil},
		{"scrape_duration_seconds", Gauge, 0.02, nil},
		{"scrape_samples_scraped", Constant, 0, nil},
	}
}()

// NodeExporterSeries returns the series hosts node exporters export, each
// host in job "node" with instance "host-<i>:9100".
func NodeExporterSeries(hosts int) []Series {
	var out []Series
	for h := range hosts {
		inst := fmt.Sprintf("host-%d:9100", h)
		for _, f := range nodeFamilies {
			combos := [][]labels.Label{{}}
			for _, d := range f.dims {
				var next [][]labels.Label
				for _, c := range combos {
					for _, v := range splitComma(d[1]) {
						next = append(next, append(append([]labels.Label{}, c...), labels.Label{Name: d[0], Value: v}))
					}
				}
				combos = next
			}
			for _, c := range combos {
				b := labels.NewScratchBuilder(len(c) + 3)
				b.Add(labels.MetricName, f.name)
				b.Add("instance", inst)
				b.Add("job", "node")
				for _, l := range c {
					b.Add(l.Name, l.Value)
				}
				b.Sort()
				out = append(out, Series{Labels: b.Labels(), Kind: f.kind, Rate: f.rate})
			}
		}
	}
	return out
}

// SeriesPerHost is how many series NodeExporterSeries makes per host.
func SeriesPerHost() int { return len(NodeExporterSeries(1)) }

func splitComma(s string) []string {
	var out []string
	start := 0
	for i := 0; i <= len(s); i++ {
		if i == len(s) || s[i] == ',' {
			out = append(out, s[start:i])
			start = i + 1
		}
	}
	return out
}

// Generator produces the values of a set of series at successive scrapes.
type Generator struct {
	Series []Series
	// IntervalMs is the time between scrapes, in milliseconds.
	IntervalMs int64
	values     []float64
	rng        *rand.Rand
}

// NewGenerator returns a generator for series with the given seed.
func NewGenerator(series []Series, intervalMs int64, seed uint64) *Generator {
	g := &Generator{Series: series, IntervalMs: intervalMs, values: make([]float64, len(series)), rng: rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))}
	for i, s := range series {
		switch s.Kind {
		case Counter:
			g.values[i] = math.Floor(g.rng.Float64() * s.Rate * 1e5)
		default:
			g.values[i] = s.Rate
		}
	}
	return g
}

// Next advances every series to scrape time t (milliseconds) and calls f
// with each series' index and value.
func (g *Generator) Next(t int64, f func(i int, v float64)) {
	secs := float64(g.IntervalMs) / 1000
	day := 2 * math.Pi * float64(t%86400000) / 86400000
	for i, s := range g.Series {
		switch s.Kind {
		case Counter:
			// Integer-valued steps for byte and packet counters, as real ones are.
			step := g.rng.ExpFloat64() * s.Rate * secs
			if s.Rate >= 1 {
				step = math.Round(step)
			}
			g.values[i] += step
		case Gauge:
			level := s.Rate * (1 + 0.2*math.Sin(day))
			g.values[i] = level * (1 + 0.05*g.rng.NormFloat64())
			if s.Rate >= 1000 {
				g.values[i] = math.Round(g.values[i]/4096) * 4096 // page-sized memory and disk figures
			}
		}
		f(i, g.values[i])
	}
}

// Help returns the help text the generated family name is sent with.
func Help(name string) string {
	return "Node exporter metric " + name + "."
}
