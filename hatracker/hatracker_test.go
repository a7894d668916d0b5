package hatracker

import (
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
		d, elected := tr.Check(step.tenant, step.cluster, step.replica, t0.Add(step.at), timeout)
		if d != step.want || elected != step.elected {
			t.Fatalf("%+v: got %v, %q", step, d, elected)
		}
	}
}
