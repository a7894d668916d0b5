package e2e

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/strata-tsdb/strata/internal/proctest"
	"github.com/strata-tsdb/strata/internal/testutil"
)

// TestHAPairDeduplication runs two real Prometheus 2 servers as an HA pair:
// both scrape the same node exporter every second and remote-write to one
// Strata tenant with the same cluster label and their own __replica__. One
// replica is stopped mid-way. Strata must store one copy of every series,
// without the replica label: no duplicates (the replicas' samples, told
// apart by their scrape phase, never interleave), and no gap: no two samples
// of a series two scrape intervals apart or more, across the failover too.
func TestHAPairDeduplication(t *testing.T) {
	requireE2E(t)
	const (
		failover     = 3 * time.Second
		scrape       = time.Second
		sendDeadline = 500 * time.Millisecond
		haTenant     = "ha-team"
	)
	bin := prometheus2Bin(t)
	node := startNodeExporter(t)
	s := startStrata(t, "", t.TempDir(),
		// Debian's Prometheus 2.42 does not send remote_write headers, so
		// the pair writes to the default tenant.
		"-tenant.default="+haTenant,
		"-limits.accept-ha-samples",
		"-limits.ha-failover-timeout="+failover.String(),
	)
	startReplica := func(name string) *promProc {
		addr := proctest.FreeAddr(t)
		cfg := fmt.Sprintf(`global:
  scrape_interval: %s
  scrape_timeout: 900ms
  external_labels:
    cluster: pair-1
    __replica__: %s
scrape_configs:
  - job_name: node
    static_configs:
      - targets: [%q]
remote_write:
  - url: %s/api/v1/write
    queue_config:
      batch_send_deadline: %s
      min_backoff: 50ms
      max_backoff: 500ms
`, scrape, name, node, s.url, sendDeadline)
		return startPrometheus(t, name, bin, addr, cfg)
	}
	replicas := map[string]*promProc{"replica-1": startReplica("replica-1"), "replica-2": startReplica("replica-2")}
	api := newAPIClient(s.url, haTenant)

	// Both replicas write for a while.
	testutil.Eventually(t, 60*time.Second, "both replicas' requests", func() bool {
		return testutil.Metric(t, s.metrics(), "strata_remote_write_ha_deduplicated_samples_total", "tenant", haTenant) > 0 &&
			testutil.Metric(t, s.metrics(), "strata_remote_write_samples_ingested_total", "tenant", haTenant) > 0
	})
	// scrapesSince counts the samples of up{job="node"} Strata has stored
	// from the millisecond timestamp from on: the pair's scrapes it kept
	// (one copy of each, whichever replica it came from).
	scrapesSince := func(from int64) int {
		now := nowMs()
		q := fmt.Sprintf(`up{job="node"}[%dms]`, now-from+1)
		n := 0
		for _, ser := range decodeResult(t, q, mustSucceed(t, q, api.query(t, q, now))) {
			for _, smp := range ser.Samples {
				if smp.T >= from {
					n++
				}
			}
		}
		return n
	}
	// Eight scrapes stored while both replicas write (the other's samples
	// still deduplicated).
	start := nowMs()
	deduped := testutil.Metric(t, s.metrics(), "strata_remote_write_ha_deduplicated_samples_total", "tenant", haTenant)
	testutil.Eventually(t, 60*time.Second, "eight scrapes of the pair stored while the other replica is deduplicated", func() bool {
		return scrapesSince(start) >= 8 &&
			testutil.Metric(t, s.metrics(), "strata_remote_write_ha_deduplicated_samples_total", "tenant", haTenant) > deduped
	})
	elected := ""
	for name := range replicas {
		if testutil.RequireMetric(t, s.metrics(), "strata_ha_tracker_elected_replica", "tenant", haTenant, "cluster", "pair-1", "replica", name) == 1 {
			elected = name
		}
	}
	if elected == "" {
		t.Fatal("no elected replica in strata_ha_tracker_elected_replica")
	}
	survivor := "replica-1"
	if elected == survivor {
		survivor = "replica-2"
	}
	stopped := nowMs()
	if err := replicas[elected].Stop(30 * time.Second); err != nil {
		t.Fatalf("stop %s: %v", elected, err)
	}
	t.Logf("stopped the elected replica %s at %s; %s must take over", elected, apiTime(stopped), survivor)
	testutil.Eventually(t, 60*time.Second, "the survivor's election", func() bool {
		return testutil.RequireMetric(t, s.metrics(), "strata_ha_tracker_elected_replica", "tenant", haTenant, "cluster", "pair-1", "replica", survivor) == 1
	})
	elected2 := nowMs()
	testutil.Eventually(t, 60*time.Second, "eight of the survivor's scrapes stored after its election", func() bool {
		return scrapesSince(elected2) >= 8
	})
	end := nowMs() - 2000

	// No series carries the replica label.
	if res := decodeResult(t, "replica series", mustSucceed(t, "replica series", api.query(t, `{__replica__!=""}`, end))); len(res) != 0 {
		t.Errorf("%d series keep the replica label, e.g. %v", len(res), res[0].Metric)
	}
	window := (end - start) / 1000
	q := fmt.Sprintf(`{job="node"}[%ds]`, window)
	series := decodeResult(t, q, mustSucceed(t, q, api.query(t, q, end)))
	if len(series) < 50 {
		t.Fatalf("only %d series of job node stored", len(series))
	}
	seen := map[string]bool{}
	var maxDelta time.Duration
	for _, ser := range series {
		key := fmt.Sprint(ser.Metric)
		if seen[key] {
			t.Errorf("series %s stored twice", key)
		}
		seen[key] = true
		if ser.Metric["cluster"] != "pair-1" {
			t.Errorf("series %s lost its cluster label", key)
		}
		ss := ser.Samples
		if len(ss) < int(window)/2 {
			t.Errorf("series %s has %d samples over %ds", key, len(ss), window)
			continue
		}
		// The survivor's samples reach the end of the window.
		if last := ss[len(ss)-1].T; end-last > 3*scrape.Milliseconds() {
			t.Errorf("series %s ends at %s, %dms before the window's end", key, apiTime(last), end-last)
		}
		// Each replica scrapes at its own fixed phase within the interval,
		// so a sample's phase names the replica it came from. One copy
		// means the stopped replica's samples, then the survivor's, never
		// interleaved. Where the replicas meet, two samples may be closer
		// than half an interval: different scrapes at different phases,
		// not a duplicate. When the two phases are too close to tell
		// apart (under 50ms), spacing tells instead: one pair of samples
		// closer than half an interval is allowed, at the failover, where
		// the survivor's first scrape may follow the stopped replica's last
		// by a few milliseconds (Strata knows no scrape interval to drop it
		// by).
		phaseA, phaseB := phase(ss[0].T, scrape), phase(ss[len(ss)-1].T, scrape)
		distinct := phaseDistance(phaseA, phaseB, scrape) >= 50*time.Millisecond
		switches, closePairs := 0, 0
		for i := 1; i < len(ss); i++ {
			d := time.Duration(ss[i].T-ss[i-1].T) * time.Millisecond
			maxDelta = max(maxDelta, d)
			if distinct {
				prevB := phaseDistance(phase(ss[i-1].T, scrape), phaseB, scrape) < phaseDistance(phase(ss[i-1].T, scrape), phaseA, scrape)
				curB := phaseDistance(phase(ss[i].T, scrape), phaseB, scrape) < phaseDistance(phase(ss[i].T, scrape), phaseA, scrape)
				if prevB != curB {
					switches++
				}
				if switches > 1 || (prevB == curB && d < scrape/2) {
					t.Errorf("series %s: samples at %s and %s, %s apart: both replicas' samples stored", key, apiTime(ss[i-1].T), apiTime(ss[i].T), d)
					break
				}
			} else if d < scrape/2 {
				// Phases too close to tell the replicas apart: one close pair
				// is where they meet, at the failover; any other is the
				// other replica's copy.
				closePairs++
				seam := time.Duration(abs(ss[i].T-stopped)) * time.Millisecond
				if closePairs > 1 || seam > failover+2*scrape+sendDeadline {
					t.Errorf("series %s: samples at %s and %s, %s apart: a duplicate from the other replica", key, apiTime(ss[i-1].T), apiTime(ss[i].T), d)
					break
				}
			}
			// Where the replicas meet, the survivor's first sample follows
			// the stopped one's last by less than two scrape intervals
			// (their scrapes have different phases); anywhere else by one.
			if d >= 2*scrape {
				t.Errorf("series %s: gap of %s from %s to %s (stop at %s)", key, d, apiTime(ss[i-1].T), apiTime(ss[i].T), apiTime(stopped))
			}
		}
	}
	t.Logf("%d series, no sample more than %s after the previous one of its series", len(series), maxDelta)
	kept := testutil.RequireMetric(t, s.metrics(), "strata_remote_write_requests_total", "code", "202")
	t.Logf("%v requests of the non-elected replica answered 202", kept)
	if got := testutil.RequireMetric(t, s.metrics(), "strata_ha_tracker_elected_replica_changes_total", "tenant", haTenant); got != 2 {
		t.Errorf("elections %v, want 2 (first election and one failover)", got)
	}
	if strings.Contains(replicas[survivor].Log(), "non-recoverable error") {
		t.Errorf("the survivor dropped data:\n%s", replicas[survivor].Tail(20))
	}
}

// phase returns where within a scrape interval the millisecond timestamp t falls.
func phase(t int64, interval time.Duration) time.Duration {
	return time.Duration(t%interval.Milliseconds()) * time.Millisecond
}

// phaseDistance is the distance of two phases on the interval's circle.
func phaseDistance(a, b, interval time.Duration) time.Duration {
	d := a - b
	if d < 0 {
		d = -d
	}
	return min(d, interval-d)
}

func abs(x int64) int64 {
	if x < 0 {
		return -x
	}
	return x
}
