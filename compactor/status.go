package compactor

import (
	"sync"
	"time"
)

// Run is the outcome of one compaction run: of every tenant (a pass) or of
// one tenant.
type Run struct {
	Start, End time.Time
	// Err is why the run failed; empty when it succeeded.
	Err string
	// Skipped is set for a tenant run that another compactor's lock kept
	// from doing anything.
	Skipped bool
}

// Status is what a compactor has done since it started.
type Status struct {
	// Enabled is false for the nil *Compactor of a Strata that does not
	// compact (-compactor.enabled=false); the rest is then zero.
	Enabled bool
	// LastPass is the last pass over every tenant; zero before the first
	// has ended.
	LastPass Run
	// Passes and FailedPasses count the passes that ended.
	Passes, FailedPasses int
	// Tenants is the last run of each tenant, by tenant ID.
	Tenants map[string]Run
}

// status records the runs of a compactor.
type status struct {
	mu      sync.Mutex
	last    Run
	passes  int
	failed  int
	tenants map[string]Run
}

func (s *status) passDone(start, end time.Time, err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.last = Run{Start: start, End: end}
	s.passes++
	if err != nil {
		s.last.Err = err.Error()
		s.failed++
	}
}

func (s *status) tenantDone(id string, start, end time.Time, skipped bool, err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.tenants == nil {
		s.tenants = map[string]Run{}
	}
	r := Run{Start: start, End: end, Skipped: skipped}
	if err != nil {
		r.Err = err.Error()
	}
	s.tenants[id] = r
}

// Status returns what the compactor has done since it started. A nil
// *Compactor (compaction disabled) reports a Status with Enabled false.
func (c *Compactor) Status() Status {
	if c == nil {
		return Status{}
	}
	c.status.mu.Lock()
	defer c.status.mu.Unlock()
	tenants := make(map[string]Run, len(c.status.tenants))
	for id, r := range c.status.tenants {
		tenants[id] = r
	}
	return Status{Enabled: true, LastPass: c.status.last, Passes: c.status.passes, FailedPasses: c.status.failed, Tenants: tenants}
}
