package remotewrite

import (
	"fmt"
	"net/http"
	"testing"
	"time"

	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/prompb"
	writev2 "github.com/prometheus/prometheus/prompb/io/prometheus/write/v2"
)

// benchSeries is one series of a node-exporter-like scrape.
type benchSeries struct {
	kv   []string // labels sorted by name
	typ  writev2.Metadata_MetricType
	help string
}

// nodeExporterSeries returns n series shaped like node-exporter's: CPU,
// memory, filesystem, disk and network families across a few instances.
func nodeExporterSeries(n int) []benchSeries {
	var out []benchSeries
	add := func(name string, typ writev2.Metadata_MetricType, instance string, kv ...string) {
		if len(out) >= n {
			return
		}
		ls := labels.FromStrings(append(kv, "__name__", name, "instance", instance, "job", "node")...)
		sorted := make([]string, 0, 2*ls.Len())
		ls.Range(func(l labels.Label) { sorted = append(sorted, l.Name, l.Value) })
		out = append(out, benchSeries{kv: sorted, typ: typ, help: "Help text of " + name + "."})
	}
	modes := []string{"idle", "iowait", "irq", "nice", "softirq", "steal", "system", "user"}
	devices := []string{"eth0", "eth1", "lo", "docker0"}
	disks := []string{"nvme0n1", "nvme1n1", "sda", "sdb"}
	mounts := []struct{ dev, fs, mp string }{
		{"/dev/nvme0n1p1", "ext4", "/"}, {"/dev/nvme0n1p2", "vfat", "/boot/efi"},
		{"/dev/nvme1n1", "xfs", "/var/lib/data"}, {"tmpfs", "tmpfs", "/run"},
	}
	counter, gauge := writev2.Metadata_METRIC_TYPE_COUNTER, writev2.Metadata_METRIC_TYPE_GAUGE
	for i := 0; len(out) < n; i++ {
		inst := fmt.Sprintf("node-%03d.example.internal:9100", i)
		for cpu := range 8 {
			for _, m := range modes {
				add("node_cpu_seconds_total", counter, inst, "cpu", fmt.Sprint(cpu), "mode", m)
			}
		}
		for _, m := range []string{"MemTotal", "MemFree", "MemAvailable", "Buffers", "Cached", "SwapTotal", "SwapFree", "Active", "Inactive", "Dirty"} {
			add("node_memory_"+m+"_bytes", gauge, inst)
		}
		for _, mt := range mounts {
			for _, f := range []string{"avail_bytes", "free_bytes", "size_bytes", "files", "files_free", "readonly"} {
				add("node_filesystem_"+f, gauge, inst, "device", mt.dev, "fstype", mt.fs, "mountpoint", mt.mp)
			}
		}
		for _, d := range disks {
			for _, f := range []string{"reads_completed_total", "writes_completed_total", "read_bytes_total", "written_bytes_total", "io_time_seconds_total"} {
				add("node_disk_"+f, counter, inst, "device", d)
			}
		}
		for _, d := range devices {
			for _, f := range []string{"receive_bytes_total", "transmit_bytes_total", "receive_packets_total", "transmit_packets_total", "receive_errs_total", "transmit_errs_total", "receive_drop_total", "transmit_drop_total"} {
				add("node_network_"+f, counter, inst, "device", d)
			}
		}
		for _, f := range []string{"node_load1", "node_load5", "node_load15", "node_procs_running", "node_procs_blocked", "node_boot_time_seconds", "node_time_seconds"} {
			add(f, gauge, inst)
		}
		add("node_context_switches_total", counter, inst)
		add("node_intr_total", counter, inst)
		add("up", gauge, inst)
	}
	return out
}

const benchSamples = 2000

// benchRun sends b.N requests built by body(i) through a handler on a real
// store and reports samples per second.
func benchRun(b *testing.B, contentType string, body func(tsMs int64) []byte) {
	e := newEnv(b, func(o *Options) {
		// Timestamps advance one second per request from now.
		o.Now = func() time.Time { return time.Now().Add(365 * 24 * time.Hour) }
	})
	start := e.nowMs
	// A first request creates the series: the loop measures steady-state
	// appends to existing series, as a long-running Prometheus causes.
	if w := do(e.h, req{contentType: contentType, tenant: testTenant, body: body(start)}); w.Code != http.StatusNoContent {
		b.Fatalf("status %d: %s", w.Code, w.Body.String())
	}
	b.ReportAllocs()
	b.ResetTimer()
	for i := range b.N {
		b.StopTimer()
		data := body(start + int64(i+1)*1000)
		b.SetBytes(int64(len(data)))
		b.StartTimer()
		w := do(e.h, req{contentType: contentType, tenant: testTenant, body: data})
		if w.Code != http.StatusNoContent {
			b.Fatalf("status %d: %s", w.Code, w.Body.String())
		}
	}
	b.ReportMetric(float64(benchSamples*b.N)/b.Elapsed().Seconds(), "samples/s")
}

func BenchmarkWriteV1(b *testing.B) {
	series := nodeExporterSeries(benchSamples)
	wr := &prompb.WriteRequest{Timeseries: make([]prompb.TimeSeries, len(series))}
	for i, s := range series {
		wr.Timeseries[i] = prompb.TimeSeries{Labels: lbls(s.kv...), Samples: make([]prompb.Sample, 1)}
	}
	benchRun(b, ctV1, func(ts int64) []byte {
		for i := range wr.Timeseries {
			wr.Timeseries[i].Samples[0] = prompb.Sample{Timestamp: ts, Value: float64(ts/1000 + int64(i))}
		}
		return encodeV1(wr)
	})
}

func BenchmarkWriteV2(b *testing.B) {
	series := nodeExporterSeries(benchSamples)
	vb := newV2()
	for _, s := range series {
		ts := vb.floats(s.kv, 0, 0)
		vb.meta(ts, s.typ, s.help, "")
	}
	wr := vb.build()
	benchRun(b, ctV2, func(ts int64) []byte {
		for i := range wr.Timeseries {
			wr.Timeseries[i].Samples[0] = writev2.Sample{Timestamp: ts, Value: float64(ts/1000 + int64(i))}
		}
		return encodeV2(wr)
	})
}
