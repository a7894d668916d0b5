// Package gen generates realistic Prometheus data: node-exporter-shaped
// series (names, label sets, counters and gauges as a host exports them),
// sampled at a fixed interval, and the query set run over them. The
// benchmarks (package bench and bench/load) measure Strata with it, and
// product tests use it for realistic data without importing the
// benchmarks.
//
// The generator is deterministic for a seed, so two systems fed by it in one
// run receive exactly the same samples.
package gen

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
	// Clock is the exporter's wall clock at the scrape (node_time_seconds):
	// nanoseconds / 1e9, a little after the scrape's timestamp.
	Clock
)

// Series is one generated series.
type Series struct {
	Labels labels.Labels
	Kind   Kind
	// Rate is a counter's mean increase per second; a gauge's level.
	Rate float64
	// Div, when set, makes every value an integer count of the exporter's
	// source unit divided by Div, as node exporter converts them: USER_HZ
	// ticks / 100 for CPU seconds, milliseconds / 1000, microseconds / 1e6,
	// nanoseconds / 1e9, 1 for integer counts. Zero leaves the value as the
	// model makes it (byte and page figures, already integers).
	Div float64
}

// family is a node-exporter metric family: its name, kind, and the label
// dimensions each instance multiplies it by.
type family struct {
	name string
	kind Kind
	rate float64
	dims [][2]string // label name, values joined by ","
	div  float64     // see Series.Div
}

var nodeFamilies = func() []family {
	cpus := "0,1,2,3,4,5,6,7"
	modes := "idle,iowait,irq,nice,softirq,steal,system,user"
	devs := "nvme0n1,nvme1n1,sda"
	ifaces := "eth0,eth1,lo"
	mounts := "/,/boot,/var,/home"
	return []family{
		{"node_cpu_seconds_total", Counter, 0.12, [][2]string{{"cpu", cpus}, {"mode", modes}}, 100},
		{"node_cpu_guest_seconds_total", Counter, 0.001, [][2]string{{"cpu", cpus}, {"mode", "nice,user"}}, 100},
		{"node_disk_read_bytes_total", Counter, 2e5, [][2]string{{"device", devs}}, 0},
		{"node_disk_written_bytes_total", Counter, 8e5, [][2]string{{"device", devs}}, 0},
		{"node_disk_reads_completed_total", Counter, 40, [][2]string{{"device", devs}}, 0},
		{"node_disk_writes_completed_total", Counter, 120, [][2]string{{"device", devs}}, 0},
		{"node_disk_io_time_seconds_total", Counter, 0.05, [][2]string{{"device", devs}}, 1000},
		{"node_disk_io_now", Gauge, 2, [][2]string{{"device", devs}}, 1},
		{"node_network_receive_bytes_total", Counter, 1e6, [][2]string{{"device", ifaces}}, 0},
		{"node_network_transmit_bytes_total", Counter, 7e5, [][2]string{{"device", ifaces}}, 0},
		{"node_network_receive_packets_total", Counter, 900, [][2]string{{"device", ifaces}}, 0},
		{"node_network_transmit_packets_total", Counter, 700, [][2]string{{"device", ifaces}}, 0},
		{"node_network_receive_errs_total", Counter, 0.001, [][2]string{{"device", ifaces}}, 1},
		{"node_network_up", Constant, 1, [][2]string{{"device", ifaces}}, 0},
		{"node_filesystem_avail_bytes", Gauge, 4e10, [][2]string{{"mountpoint", mounts}, {"fstype", "ext4"}}, 0},
		{"node_filesystem_size_bytes", Constant, 1e11, [][2]string{{"mountpoint", mounts}, {"fstype", "ext4"}}, 0},
		{"node_filesystem_files_free", Gauge, 6e6, [][2]string{{"mountpoint", mounts}, {"fstype", "ext4"}}, 0},
		{"node_memory_MemAvailable_bytes", Gauge, 1.2e10, nil, 0},
		{"node_memory_MemFree_bytes", Gauge, 3e9, nil, 0},
		{"node_memory_Cached_bytes", Gauge, 6e9, nil, 0},
		{"node_memory_Buffers_bytes", Gauge, 4e8, nil, 0},
		{"node_memory_MemTotal_bytes", Constant, 3.2e10, nil, 0},
		{"node_load1", Gauge, 1.5, nil, 100},
		{"node_load5", Gauge, 1.3, nil, 100},
		{"node_load15", Gauge, 1.1, nil, 100},
		{"node_context_switches_total", Counter, 4000, nil, 0},
		{"node_intr_total", Counter, 3000, nil, 0},
		{"node_forks_total", Counter, 5, nil, 0},
		{"node_procs_running", Gauge, 3, nil, 1},
		{"node_procs_blocked", Gauge, 0.2, nil, 1},
		{"node_vmstat_pgfault", Counter, 2e4, nil, 0},
		{"node_vmstat_pgmajfault", Counter, 1, nil, 0},
		{"node_timex_offset_seconds", Gauge, 1e-4, nil, 1e6},
		{"node_boot_time_seconds", Constant, 1.7e9, nil, 0},
		{"node_time_seconds", Clock, 1, nil, 1e9},
		{"up", Constant, 1, nil, 0},
		{"scrape_duration_seconds", Gauge, 0.02, nil, 1e9},
		{"scrape_samples_scraped", Constant, 0, nil, 0},
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
				out = append(out, Series{Labels: b.Labels(), Kind: f.kind, Rate: f.rate, Div: f.div})
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
//
// The values are shaped like a node exporter's: counters of integer units
// (bytes, packets, USER_HZ ticks, milliseconds) divided into seconds the way
// the exporter divides them, integer gauges, load averages with two
// decimals. Only what is high-entropy in reality (scrape durations and the
// clock in nanoseconds) is.
//
// The data generated before the values were quantised (gauges with a full
// random 52-bit mantissa, sub-unit counters with random float steps) carried,
// by the noise model's own entropy (h(noise) − log2(ulp(value)) per sample),
// about 4.09 bytes per sample in the values alone, against 5.22 bytes of XOR
// chunks: no lossless codec could have stored it in less, so a disk target
// of 0.6× Prometheus's 5.53 bytes per block sample was out of reach by
// construction (measured over 4 hosts × 240 scrapes). On that data the
// bucket form of blocks/bucketcodec stores chunks in 5.05 bytes per sample
// (XOR: 5.26); on the quantised data, in 1.54 (XOR: 4.75).
type Generator struct {
	Series []Series
	// IntervalMs is the time between scrapes, in milliseconds.
	IntervalMs int64
	// values holds each series' last value; for series with a Div, the
	// integer count of source units.
	values []float64
	rng    *rand.Rand
}

// NewGenerator returns a generator for series with the given seed.
func NewGenerator(series []Series, intervalMs int64, seed uint64) *Generator {
	g := &Generator{Series: series, IntervalMs: intervalMs, values: make([]float64, len(series)), rng: rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))}
	for i, s := range series {
		switch s.Kind {
		case Counter:
			g.values[i] = math.Floor(g.rng.Float64() * s.Rate * 1e5 * max(s.Div, 1))
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
		v := g.values[i]
		switch s.Kind {
		case Counter:
			step := g.rng.ExpFloat64() * s.Rate * secs
			switch {
			case s.Div > 0:
				// An integer number of source units (ticks, ms, events).
				g.values[i] += math.Round(step * s.Div)
				v = g.values[i] / s.Div
			default:
				// Integer-valued steps for byte and packet counters, as real ones are.
				if s.Rate >= 1 {
					step = math.Round(step)
				}
				g.values[i] += step
				v = g.values[i]
			}
		case Gauge:
			level := s.Rate * (1 + 0.2*math.Sin(day))
			switch {
			case s.Div == 1:
				// A count of things (processes, requests in flight):
				// Poisson-like spread around the level.
				v = max(0, math.Round(level+math.Sqrt(level)*g.rng.NormFloat64()))
			case s.Div > 0:
				v = math.Round(level*(1+0.05*g.rng.NormFloat64())*s.Div) / s.Div
			default:
				v = level * (1 + 0.05*g.rng.NormFloat64())
				if s.Rate >= 1000 {
					v = math.Round(v/4096) * 4096 // page-sized memory and disk figures
				}
			}
			g.values[i] = v
		case Clock:
			// Read a little after the scrape started: up to 5ms, in ns.
			ns := float64(t)*1e6 + math.Floor(g.rng.Float64()*5e6)
			v = ns / s.Div
		}
		f(i, v)
	}
}

// Help returns the help text the generated family name is sent with.
func Help(name string) string {
	return "Node exporter metric " + name + "."
}
