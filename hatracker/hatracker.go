// Package hatracker elects one replica per HA pair of Prometheus servers,
// so that Strata stores one copy of the series both replicas write.
//
// Each replica of a cluster sends its samples with the same cluster label and
// its own replica label. Per tenant and cluster, the tracker keeps the elected
// replica and when it was last heard from. Requests from the elected replica
// are accepted (and refresh it); requests from any other replica are
// de-duplicated, unless the elected one has been silent for longer than the
// failover timeout, in which case the sender becomes the elected replica.
//
// As in Cortex and Mimir, the state is in memory: after a restart the first
// replica heard from is elected. De-duplicated requests are answered 202
// Accepted, which the sender takes as success and does not retry: its
// samples are a copy of what the elected replica sends. The cost is that on
// a failover the samples the new replica sent during the failover timeout
// are not stored: the series have a gap of at most that timeout.
package hatracker

import (
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"
)

// Decision is what to do with one request of an HA replica.
type Decision int

const (
	// Accept stores the request: it comes from the elected replica.
	Accept Decision = iota
	// Deduplicate drops the request: another replica is elected.
	Deduplicate
)

type key struct{ tenant, cluster string }

type replica struct {
	name     string
	lastSeen time.Time
}

// Tracker keeps the elected replica of every tenant's clusters. It takes
// one lock per request, never per sample.
type Tracker struct {
	mu      sync.Mutex
	elected map[key]*replica

	changes *prometheus.CounterVec
	current *prometheus.GaugeVec
}

// New returns an empty tracker exporting its metrics to reg (may be nil).
func New(reg prometheus.Registerer) *Tracker {
	if reg == nil {
		reg = prometheus.NewRegistry()
	}
	f := promauto.With(reg)
	return &Tracker{
		elected: map[key]*replica{},
		changes: f.NewCounterVec(prometheus.CounterOpts{
			Name: "strata_ha_tracker_elected_replica_changes_total",
			Help: "Elections of a new replica for an HA cluster (the first included), by tenant and cluster.",
		}, []string{"tenant", "cluster"}),
		current: f.NewGaugeVec(prometheus.GaugeOpts{
			Name: "strata_ha_tracker_elected_replica",
			Help: "1 for the elected replica of each tenant's HA cluster.",
		}, []string{"tenant", "cluster", "replica"}),
	}
}

// Check decides about a request of tenant from replica of cluster at now:
// whether to store it, and which replica is elected after it.
func (t *Tracker) Check(tenant, cluster, replicaName string, now time.Time, failoverTimeout time.Duration) (Decision, string) {
	k := key{tenant, cluster}
	t.mu.Lock()
	defer t.mu.Unlock()
	r := t.elected[k]
	switch {
	case r != nil && r.name == replicaName:
		if now.After(r.lastSeen) {
			r.lastSeen = now
		}
		return Accept, r.name
	case r != nil && now.Sub(r.lastSeen) <= failoverTimeout:
		return Deduplicate, r.name
	}
	// First request of the cluster, or failover from a silent replica.
	// The strings are cloned: they may point into a request body.
	if r == nil {
		k = key{strings.Clone(tenant), strings.Clone(cluster)}
		r = &replica{}
		t.elected[k] = r
	} else {
		t.current.DeleteLabelValues(tenant, cluster, r.name)
	}
	r.name, r.lastSeen = strings.Clone(replicaName), now
	t.changes.WithLabelValues(tenant, cluster).Inc()
	t.current.WithLabelValues(tenant, cluster, r.name).Set(1)
	return Accept, r.name
}

// Elected returns the elected replica of tenant's cluster, if any.
func (t *Tracker) Elected(tenant, cluster string) (string, bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	r := t.elected[key{tenant, cluster}]
	if r == nil {
		return "", false
	}
	return r.name, true
}
