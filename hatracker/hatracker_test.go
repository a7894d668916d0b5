package hatracker

import (
	"fmt"
	"testing"
	"time"
)

func TestElectionAndFailover(t *testing.T) {
	tr := New(nil)
	t0 := time.Unix(1000, 0)
	const timeout = 10 * time.Second
	for _, step := range []struct {
		tenant, cluster, replica string
		at                       time.Duration
		want                     Decision
		elected                  string
	}{
		{"t", "c", "r1", 0, Accept, "r1"},
		{"t", "c", "r2", time.Second, Deduplicate, "r1"},
		{"t", "c", "r1", 5 * time.Second, Accept, "r1"},
		{"t", "c", "r2", 15 * time.Second, Deduplicate, "r1"}, // r1 silent 10s: not yet
		{"t", "c2", "r2", 15 * time.Second, Accept, "r2"},     // clusters are independent
		{"u", "c", "r2", 15 * time.Second, Accept, "r2"},      // and so are tenants
		{"t", "c", "r2", 15*time.Second + time.Millisecond, Accept, "r2"},
		{"t", "c", "r1", 16 * time.Second, Deduplicate, "r2"},
	} {
		res := tr.Check(Request{Tenant: step.tenant, Cluster: step.cluster, Replica: step.replica}, t0.Add(step.at), timeout, 0)
		if res.Decision != step.want || res.Elected != step.elected {
			t.Fatalf("%+v: got %v, %q", step, res.Decision, res.Elected)
		}
	}
}

// TestKeptRequestsBridgeAFailover: requests of the non-elected replica newer
// than the elected one's samples are kept, forgotten once covered, and
// handed back on a failover, with the filter of what was stored already.
func TestKeptRequestsBridgeAFailover(t *testing.T) {
	tr := New(nil)
	t0 := time.Unix(1000, 0)
	const timeout = 3 * time.Second
	req := func(replica string, maxTime int64) Request {
		return Request{Tenant: "t", Cluster: "c", Replica: replica, MaxTime: maxTime, Body: []byte(fmt.Sprintf("%s@%d", replica, maxTime)), Proto: "v1"}
	}
	check := func(r Request, at time.Duration, want Decision) Result {
		t.Helper()
		res := tr.Check(r, t0.Add(at), timeout, 1<<20)
		if res.Decision != want {
			t.Fatalf("%s at %s: %v, want %v", r.Body, at, res.Decision, want)
		}
		return res
	}
	check(req("a", 1000), 0, Accept)
	check(req("b", 900), 100*time.Millisecond, Deduplicate)  // covered: not kept
	check(req("b", 1500), 200*time.Millisecond, Deduplicate) // newer: kept
	check(req("a", 2000), time.Second, Accept)               // covers b@1500: forgotten
	check(req("b", 2500), 1100*time.Millisecond, Deduplicate)
	check(req("b", 3500), 2100*time.Millisecond, Deduplicate)
	// a falls silent at 1s; b takes over after the timeout.
	res := check(req("b", 4500), 4100*time.Millisecond, Accept)
	if !res.Filter || res.MinTime != 2000 {
		t.Errorf("filter %v at %d, want samples up to 2000 (a's newest) dropped", res.Filter, res.MinTime)
	}
	var got []string
	for _, k := range res.Replay {
		got = append(got, string(k.Body))
	}
	if fmt.Sprint(got) != "[b@2500 b@3500]" {
		t.Errorf("replay %v, want [b@2500 b@3500]", got)
	}
	if res := check(req("b", 5500), 5*time.Second, Accept); len(res.Replay) != 0 || res.MinTime != 2000 {
		t.Errorf("second request after the failover: replay %d, min %d", len(res.Replay), res.MinTime)
	}
	// The bound forgets the oldest kept requests.
	for i := range 5 {
		r := req("a", int64(6000+i*1000))
		r.Body = make([]byte, 400<<10)
		tr.Check(r, t0.Add(5*time.Second+time.Duration(i)*time.Millisecond), timeout, 1<<20)
	}
	tr.mu.Lock()
	n, size := len(tr.clusters[key{"t", "c"}].kept["a"]), tr.clusters[key{"t", "c"}].keptSize
	tr.mu.Unlock()
	if n != 2 || size != 800<<10 {
		t.Errorf("kept %d requests, %d bytes; want the newest 2 within 1 MiB", n, size)
	}
}
