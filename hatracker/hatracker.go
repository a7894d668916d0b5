// Package hatracker elects one replica per HA pair of Prometheus servers,
// so that Strata stores one copy of the series both replicas write, without
// a gap when the elected replica fails.
//
// Each replica of a cluster sends its samples with the same cluster label and
// its own replica label. Per tenant and cluster, the tracker keeps the elected
// replica, when it was last heard from, and the newest sample timestamp it
// sent. Requests from the elected replica are accepted (and refresh it);
// requests from any other replica are de-duplicated, unless the elected one
// has been silent for longer than the failover timeout, in which case the
// sender becomes the elected replica.
//
// De-duplicated requests are answered 202 Accepted, as in Cortex and Mimir:
// the sender takes it as success and does not retry, since its samples are a
// copy of what the elected replica sends. A copy that is newer than anything
// the elected replica has sent is not yet known to be a copy, though: if the
// elected replica has just died, it is the only copy there will be. So the
// tracker keeps such requests (their encoded bodies), and forgets them as
// soon as the elected replica's samples pass their newest timestamp. On a
// failover it hands the new replica's kept requests back to be stored first,
// and from then on drops the new replica's samples that are not newer than
// the old replica's newest, so the series continue without a gap and without
// interleaving the two replicas' scrapes. What is kept per cluster is bounded
// in bytes; beyond the bound the oldest kept request is forgotten (a gap of
// its length remains possible then).
//
// The state is in memory: after a restart the first replica heard from is
// elected.
package hatracker

import (
	"bytes"
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

// Request is one remote-write request of an HA replica.
type Request struct {
	Tenant, Cluster, Replica string
	// MaxTime is the newest sample timestamp of the request (ms).
	MaxTime int64
	// Body is the request's decoded body, copied and kept if the request
	// may be needed after a failover; Proto tells how to decode it.
	Body  []byte
	Proto string
}

// Kept is a request of a replica kept for a failover.
type Kept struct {
	Body    []byte
	Proto   string
	MaxTime int64
}

// Result is the decision about a request.
type Result struct {
	Decision Decision
	// Elected is the replica elected after the request.
	Elected string
	// MinTime, when Filter is set, is the newest sample timestamp of the
	// previously elected replica: samples of an accepted request at or
	// before it must be dropped, being already stored from that replica.
	MinTime int64
	Filter  bool
	// Replay, on a failover, are the new replica's kept requests, oldest
	// first, to be stored (with the MinTime filter) before this request.
	Replay []Kept
}

type key struct{ tenant, cluster string }

type cluster struct {
	elected  string
	lastSeen time.Time
	lastTime int64 // newest sample timestamp accepted from the elected replica
	minTime  int64 // previous replica's lastTime; filter when hasMin
	hasMin   bool
	kept     map[string][]Kept // per non-elected replica, oldest first
	keptSize int
}

// Tracker keeps the elected replica of every tenant's clusters. It takes
// one lock per request, never per sample.
type Tracker struct {
	mu       sync.Mutex
	clusters map[key]*cluster

	changes *prometheus.CounterVec
	current *prometheus.GaugeVec
	dropped *prometheus.CounterVec
	keptG   *prometheus.GaugeVec
}

// New returns an empty tracker exporting its metrics to reg (may be nil).
func New(reg prometheus.Registerer) *Tracker {
	if reg == nil {
		reg = prometheus.NewRegistry()
	}
	f := promauto.With(reg)
	return &Tracker{
		clusters: map[key]*cluster{},
		changes: f.NewCounterVec(prometheus.CounterOpts{
			Name: "strata_ha_tracker_elected_replica_changes_total",
			Help: "Elections of a new replica for an HA cluster (the first included), by tenant and cluster.",
		}, []string{"tenant", "cluster"}),
		current: f.NewGaugeVec(prometheus.GaugeOpts{
			Name: "strata_ha_tracker_elected_replica",
			Help: "1 for the elected replica of each tenant's HA cluster.",
		}, []string{"tenant", "cluster", "replica"}),
		dropped: f.NewCounterVec(prometheus.CounterOpts{
			Name: "strata_ha_tracker_kept_requests_dropped_total",
			Help: "Requests of non-elected replicas kept for a failover and forgotten because the cluster's bound was reached.",
		}, []string{"tenant", "cluster"}),
		keptG: f.NewGaugeVec(prometheus.GaugeOpts{
			Name: "strata_ha_tracker_kept_bytes",
			Help: "Bytes of requests of non-elected replicas kept for a failover.",
		}, []string{"tenant", "cluster"}),
	}
}

// Check decides about request r at now. failoverTimeout is the silence of
// the elected replica after which r's replica is elected; maxKeptBytes
// bounds the requests kept for a failover per cluster (0 keeps none).
func (t *Tracker) Check(r Request, now time.Time, failoverTimeout time.Duration, maxKeptBytes int) Result {
	k := key{r.Tenant, r.Cluster}
	t.mu.Lock()
	defer t.mu.Unlock()
	c := t.clusters[k]
	switch {
	case c != nil && c.elected == r.Replica:
		if now.After(c.lastSeen) {
			c.lastSeen = now
		}
		c.lastTime = max(c.lastTime, r.MaxTime)
		t.forgetCovered(k, c)
		return Result{Decision: Accept, Elected: c.elected, MinTime: c.minTime, Filter: c.hasMin}
	case c != nil && now.Sub(c.lastSeen) <= failoverTimeout:
		if r.MaxTime > c.lastTime && maxKeptBytes > 0 && r.Body != nil {
			t.keep(k, c, r, maxKeptBytes)
		}
		return Result{Decision: Deduplicate, Elected: c.elected}
	}
	// First request of the cluster, or failover from a silent replica.
	// The strings are cloned: they may point into a request body.
	res := Result{Decision: Accept}
	if c == nil {
		k = key{strings.Clone(r.Tenant), strings.Clone(r.Cluster)}
		c = &cluster{kept: map[string][]Kept{}}
		t.clusters[k] = c
	} else {
		t.current.DeleteLabelValues(k.tenant, k.cluster, c.elected)
		c.minTime, c.hasMin = c.lastTime, true
		res.Replay = c.kept[r.Replica]
		for _, kr := range res.Replay {
			c.lastTime = max(c.lastTime, kr.MaxTime)
		}
		clear(c.kept)
		c.keptSize = 0
		t.keptG.WithLabelValues(k.tenant, k.cluster).Set(0)
	}
	c.elected, c.lastSeen = strings.Clone(r.Replica), now
	c.lastTime = max(c.lastTime, r.MaxTime)
	t.changes.WithLabelValues(k.tenant, k.cluster).Inc()
	t.current.WithLabelValues(k.tenant, k.cluster, c.elected).Set(1)
	res.Elected, res.MinTime, res.Filter = c.elected, c.minTime, c.hasMin
	return res
}

// keep remembers r for a failover, forgetting the cluster's oldest kept
// requests beyond maxBytes.
func (t *Tracker) keep(k key, c *cluster, r Request, maxBytes int) {
	if len(r.Body) > maxBytes {
		t.dropped.WithLabelValues(k.tenant, k.cluster).Inc()
		return
	}
	replica := r.Replica
	if _, ok := c.kept[replica]; !ok {
		replica = strings.Clone(replica)
	}
	c.kept[replica] = append(c.kept[replica], Kept{Body: bytes.Clone(r.Body), Proto: r.Proto, MaxTime: r.MaxTime})
	c.keptSize += len(r.Body)
	for c.keptSize > maxBytes {
		// Forget the oldest request of the replica keeping the most.
		var worst string
		for name, reqs := range c.kept {
			if worst == "" || len(reqs) > len(c.kept[worst]) {
				worst = name
			}
		}
		c.keptSize -= len(c.kept[worst][0].Body)
		c.kept[worst] = c.kept[worst][1:]
		t.dropped.WithLabelValues(k.tenant, k.cluster).Inc()
	}
	t.keptG.WithLabelValues(k.tenant, k.cluster).Set(float64(c.keptSize))
}

// forgetCovered forgets the kept requests whose samples are all at or
// before the elected replica's newest: it has sent them too.
func (t *Tracker) forgetCovered(k key, c *cluster) {
	if c.keptSize == 0 {
		return
	}
	for name, reqs := range c.kept {
		i := 0
		for i < len(reqs) && reqs[i].MaxTime <= c.lastTime {
			c.keptSize -= len(reqs[i].Body)
			i++
		}
		if i == len(reqs) {
			delete(c.kept, name)
		} else {
			c.kept[name] = reqs[i:]
		}
	}
	t.keptG.WithLabelValues(k.tenant, k.cluster).Set(float64(c.keptSize))
}

// Elected returns the elected replica of tenant's cluster, if any.
func (t *Tracker) Elected(tenant, clusterName string) (string, bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	c := t.clusters[key{tenant, clusterName}]
	if c == nil {
		return "", false
	}
	return c.elected, true
}
