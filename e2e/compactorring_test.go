package e2e

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/strata-tsdb/strata/internal/testutil"
)

// TestClusterCompactorsShardTenants runs two compactor processes sharing a
// filesystem bucket, written by a single process for twelve tenants:
// every tenant is compacted (runs, merged blocks) by exactly one of them,
// both owning some; after one is killed with SIGKILL, the other owns every
// tenant once the dead one's heartbeat times out, and merges the blocks of
// all of them.
func TestClusterCompactorsShardTenants(t *testing.T) {
	requireE2E(t)
	names := []string{"compactor-1", "compactor-2"}
	c := newTestCluster(t, names...)
	c.join = c.mlAddrs["compactor-1"] + "," + c.mlAddrs["compactor-2"]
	start := time.Now()
	comps := map[string]*strataProc{}
	for _, n := range names {
		comps[n] = c.start(n, "compactor", "", t.TempDir(), "-compactor.enabled=true",
			"-compactor.interval=1s", "-compactor.compaction-delay=0s", "-compactor.lock-ttl=8s")
	}
	for _, p := range comps {
		// /compactor/ring: the compactors' ring page.
		waitActive(t, p.url+"/compactor", start, names...)
	}

	// The writer: a single process shipping its tenants' heads to the
	// bucket on /api/v1/admin/flush.
	w := startStrata(t, "", t.TempDir(), "-bucket.filesystem.dir", c.bucket, "-compactor.enabled=false")
	// Twelve: that either compactor owns none of them (each owning about
	// half the ring) has a chance of about 2^-11.
	var tenants []string
	for i := range 12 {
		tenants = append(tenants, fmt.Sprintf("team-%c", 'a'+i))
	}
	// Three 2h blocks per tenant, one after another, in the first 12h of
	// yesterday (UTC): its 12h and 24h windows are complete whatever the
	// time of day, so the compactor merges them. (The 12h window before
	// the current one is in today after noon, whose day is not complete:
	// from 12:00 to 24:00 UTC the test waited for merges in vain.)
	window := time.Now().UTC().Truncate(24 * time.Hour).Add(-24 * time.Hour)
	ship := func(part int) {
		t.Helper()
		base := window.Add(time.Duration(part)*2*time.Hour + time.Minute).UnixMilli()
		for _, id := range tenants {
			for k := range 30 {
				code, body, err := sendWriteV1(context.Background(), http.DefaultClient, w.url+"/api/v1/write", id, clusterBatch(0, k, base))
				if err != nil || code != http.StatusNoContent {
					t.Fatalf("write %s batch %d: %d %s %v", id, k, code, body, err)
				}
			}
		}
		resp, err := http.Post(w.url+"/api/v1/admin/flush", "", nil)
		if err != nil {
			t.Fatal(err)
		}
		_ = resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("flush: HTTP %d", resp.StatusCode)
		}
	}
	ship(0)
	ship(1)

	// metric reads name{tenant=id} from compactor n; 0 when absent.
	metric := func(n, name, id string) float64 {
		return testutil.Metric(t, comps[n].metrics(), name, "tenant", id)
	}
	owner := map[string]string{}
	testutil.Eventually(t, 90*time.Second, "every tenant's blocks merged", func() bool {
		for _, id := range tenants {
			if metric("compactor-1", "strata_compactor_blocks_written_total", id)+metric("compactor-2", "strata_compactor_blocks_written_total", id) == 0 {
				return false
			}
		}
		return true
	})
	owned := map[string]int{}
	for _, id := range tenants {
		var by []string
		for _, n := range names {
			runs, written := metric(n, "strata_compactor_runs_total", id), metric(n, "strata_compactor_blocks_written_total", id)
			if runs > 0 || written > 0 {
				by = append(by, fmt.Sprintf("%s (%v runs, %v blocks written)", n, runs, written))
				owner[id] = n
			}
		}
		if len(by) != 1 {
			t.Errorf("%s compacted by %v, want exactly one compactor", id, by)
		}
		owned[owner[id]]++
	}
	t.Logf("owners: %v", owner)
	if owned["compactor-1"] == 0 || owned["compactor-2"] == 0 {
		t.Errorf("tenants per compactor: %v, want both owning some", owned)
	}
	for _, n := range names {
		if got := testutil.Metric(t, comps[n].metrics(), "strata_compactor_tenants_owned"); got != float64(owned[n]) {
			t.Errorf("%s: strata_compactor_tenants_owned = %v, want %d", n, got, owned[n])
		}
	}
	if t.Failed() {
		return
	}

	// Kill the owner of team-a: the other takes every tenant once the
	// dead one is unhealthy (-ring.heartbeat-timeout 5s), and merges the
	// new blocks of all of them.
	victim := owner["team-a"]
	survivor := names[0]
	if victim == survivor {
		survivor = names[1]
	}
	before := map[string]float64{}
	for _, id := range tenants {
		before[id] = metric(survivor, "strata_compactor_blocks_written_total", id)
	}
	comps[victim].Kill()
	killed := time.Now()
	testutil.Eventually(t, 60*time.Second, survivor+" owns every tenant", func() bool {
		return testutil.Metric(t, comps[survivor].metrics(), "strata_compactor_tenants_owned") == float64(len(tenants))
	})
	// Heartbeats are every 1s and recorded in whole seconds: the victim
	// is unhealthy 3s to 5s after the kill.
	if d := time.Since(killed); d < 2*time.Second {
		t.Errorf("%s took the tenants %v after the kill, before the victim's heartbeat could time out", survivor, d)
	}
	ship(2)
	testutil.Eventually(t, 90*time.Second, survivor+" merged every tenant's new block", func() bool {
		for _, id := range tenants {
			if metric(survivor, "strata_compactor_blocks_written_total", id) <= before[id] {
				return false
			}
		}
		return true
	})

	// A compactor stopped with SIGTERM ends its pass before it leaves the
	// ring: once it has left, the ring gives its tenants to another
	// compactor, which must not find it still at work on them.
	if err := comps[survivor].Stop(30 * time.Second); err != nil {
		t.Fatalf("stop %s with SIGTERM: %v", survivor, err)
	}
	log := comps[survivor].Log()
	stopped, left := strings.Index(log, `msg="compactor stopped"`), strings.Index(log, `msg="left the cluster"`)
	if stopped < 0 || left < 0 || stopped > left {
		t.Errorf("%s's log: compactor stopped at offset %d, left the cluster at %d; want both, the compactor first:\n%s", survivor, stopped, left, comps[survivor].Tail(4096))
	}
}
