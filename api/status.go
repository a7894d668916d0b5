package api

import (
	"fmt"
	"net/http"
	"os"
	"runtime"
	"runtime/debug"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/prometheus/tsdb"
	v1 "github.com/prometheus/prometheus/web/api/v1"

	"github.com/strata-tsdb/strata/blocks"
	"github.com/strata-tsdb/strata/blocks/blockmeta"
	"github.com/strata-tsdb/strata/compactor"
	"github.com/strata-tsdb/strata/limits"
	"github.com/strata-tsdb/strata/tenant"
)

// StoreStatus is what the status endpoints read of the store (*blocks.Store).
type StoreStatus interface {
	TenantStatuses() []blocks.TenantStatus
	BucketBlocks(tenant string) []*blockmeta.Meta
	WALReplayStatus(tenant string) (tsdb.WALReplayStatus, bool)
}

// CompactorStatus is what the status endpoints read of the compactor
// (*compactor.Compactor, nil when compaction is disabled).
type CompactorStatus interface {
	Status() compactor.Status
}

// statusHandlers serve the status endpoints that Strata answers itself:
// Prometheus's handlers of these ask one TSDB with no request context,
// while Strata's answers are per tenant or read Strata's own parts.
type statusHandlers struct {
	store     StoreStatus
	compactor CompactorStatus
	limits    *limits.Overrides
	gatherer  prometheus.Gatherer
	flags     map[string]string
	// allTenants is false with tenant authentication: a request then sees
	// only its own tenant in the tenant list.
	allTenants bool
	now        func() time.Time
}

func (h *statusHandlers) register(mux *http.ServeMux) {
	mux.Handle("/api/v1/status/runtimeinfo", getOnly(h.runtimeInfo))
	if h.store != nil {
		mux.Handle("/api/v1/status/walreplay", getOnly(h.walReplay))
		mux.Handle("/api/v1/status/tsdb/blocks", getOnly(h.tsdbBlocks))
		mux.Handle("/api/v1/status/tenants", getOnly(h.tenants))
	}
	if h.compactor != nil {
		mux.Handle("/api/v1/status/compactor", getOnly(h.compactorStatus))
	}
}

// getOnly answers methods other than GET (and HEAD) with 405, as
// Prometheus's router does for its GET-only endpoints.
func getOnly(f http.HandlerFunc) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodGet && r.Method != http.MethodHead {
			respondError(w, http.StatusMethodNotAllowed, "bad_data", fmt.Errorf("method %s not allowed", r.Method))
			return
		}
		f(w, r)
	})
}

// runtimeInfo answers /api/v1/status/runtimeinfo in Prometheus's shape. The
// configuration reload it reports is the rule files' and the overrides
// file's (Strata has no Prometheus configuration); the storage retention is
// the tenant's per resolution.
func (h *statusHandlers) runtimeInfo(w http.ResponseWriter, r *http.Request) {
	id, _ := tenant.FromContext(r.Context())
	families := gatherMap(h.gatherer)
	info := v1.RuntimeInfo{
		ServerTime:          h.now().UTC(),
		GoroutineCount:      runtime.NumGoroutine(),
		GOMAXPROCS:          runtime.GOMAXPROCS(0),
		GOMEMLIMIT:          debug.SetMemoryLimit(-1), // a negative limit reads it unchanged
		GOGC:                h.flags["runtime.gogc"],
		GODEBUG:             os.Getenv("GODEBUG"),
		ReloadConfigSuccess: true,
	}
	if info.GOGC == "" {
		info.GOGC = os.Getenv("GOGC")
	}
	info.CWD, _ = os.Getwd()
	info.Hostname, _ = os.Hostname()
	if v, ok := gaugeValue(families["process_start_time_seconds"]); ok {
		info.StartTime = secondsTime(v)
	}
	if v, ok := gaugeValue(families["strata_rules_last_load_success_timestamp_seconds"]); ok && v > 0 {
		info.LastConfigTime = secondsTime(v)
	}
	for _, name := range []string{"strata_rules_last_load_successful", "strata_overrides_last_reload_successful"} {
		if v, ok := gaugeValue(families[name]); ok && v != 1 {
			info.ReloadConfigSuccess = false
		}
	}
	for _, m := range families["prometheus_tsdb_wal_corruptions_total"].GetMetric() {
		info.CorruptionCount += int64(m.GetCounter().GetValue())
	}
	if h.limits != nil {
		l := h.limits.For(id)
		info.StorageRetention = fmt.Sprintf("raw: %s, 1m: %s, 1h: %s", retention(l.RetentionRaw), retention(l.Retention1m), retention(l.Retention1h))
	}
	respondSuccess(w, info)
}

func retention(d interface{ String() string }) string {
	if s := d.String(); s != "0s" {
		return s
	}
	return "forever"
}

func secondsTime(v float64) time.Time {
	return time.UnixMilli(int64(v * 1000)).UTC()
}

// walReplay answers /api/v1/status/walreplay for the tenant of the request,
// in Prometheus's shape: the WAL segments of its last opening's replay
// (done when current equals max); zeros for a tenant not opened yet.
func (h *statusHandlers) walReplay(w http.ResponseWriter, r *http.Request) {
	id, _ := tenant.FromContext(r.Context())
	s, _ := h.store.WALReplayStatus(id)
	respondSuccess(w, struct {
		Min     int `json:"min"`
		Max     int `json:"max"`
		Current int `json:"current"`
	}{s.Min, s.Max, s.Current})
}

// tsdbBlocks answers /api/v1/status/tsdb/blocks for the tenant of the
// request, in Prometheus's shape ({"blocks": [meta.json, ...]}): its blocks
// in the bucket, oldest first, each with Strata's "strata" key (resolution
// and source).
func (h *statusHandlers) tsdbBlocks(w http.ResponseWriter, r *http.Request) {
	id, _ := tenant.FromContext(r.Context())
	metas := h.store.BucketBlocks(id)
	if metas == nil {
		metas = []*blockmeta.Meta{}
	}
	respondSuccess(w, map[string][]*blockmeta.Meta{"blocks": metas})
}

// TenantInfo is one tenant in the answer of /api/v1/status/tenants.
type TenantInfo struct {
	Tenant string `json:"tenant"`
	// Open is whether its TSDB is open (tenants close when idle); the head
	// fields are zero when not.
	Open        bool   `json:"open"`
	OpenError   string `json:"openError,omitempty"`
	HeadSeries  uint64 `json:"headSeries"`
	HeadMinTime int64  `json:"headMinTime"`
	HeadMaxTime int64  `json:"headMaxTime"`
	// MaxActiveSeries is the tenant's limit of head series; 0 is none.
	MaxActiveSeries int `json:"maxActiveSeries"`
	// LocalBlocks are on this Strata's disk; PendingBlocks of them were not
	// in the bucket at the last shipping pass (-storage.ship-interval).
	LocalBlocks   int `json:"localBlocks"`
	PendingBlocks int `json:"pendingBlocks"`
	BucketBlocks  int `json:"bucketBlocks"`
	// Ingested counts what remote write stored since the process started,
	// by kind (sample, histogram, exemplar); Rejected what it refused, by
	// reason. Rates are differences between two answers over their time.
	Ingested map[string]float64 `json:"ingested"`
	Rejected map[string]float64 `json:"rejected"`
	// BucketOnly is set for a tenant with blocks in the bucket and nothing
	// on this Strata's disk (written through another Strata).
	BucketOnly bool `json:"bucketOnly,omitempty"`
}

// tenants answers /api/v1/status/tenants: every tenant the store holds
// (only the request's own with tenant authentication), with its head,
// blocks and remote-write counters, and the time of the answer in seconds.
func (h *statusHandlers) tenants(w http.ResponseWriter, r *http.Request) {
	self, _ := tenant.FromContext(r.Context())
	families := gatherMap(h.gatherer)
	ingested := byTenant(families["strata_remote_write_samples_ingested_total"], "kind")
	rejected := byTenant(families["strata_remote_write_samples_rejected_total"], "reason")
	list := []TenantInfo{}
	for _, st := range h.store.TenantStatuses() {
		if !h.allTenants && st.ID != self {
			continue
		}
		ti := TenantInfo{
			Tenant:        st.ID,
			Open:          st.Open,
			OpenError:     st.OpenError,
			HeadSeries:    st.HeadSeries,
			HeadMinTime:   st.HeadMinTime,
			HeadMaxTime:   st.HeadMaxTime,
			LocalBlocks:   st.LocalBlocks,
			PendingBlocks: st.PendingBlocks,
			BucketBlocks:  st.BucketBlocks,
			Ingested:      nonNil(ingested[st.ID]),
			Rejected:      nonNil(rejected[st.ID]),
			BucketOnly:    st.InBucketOnly,
		}
		if h.limits != nil {
			ti.MaxActiveSeries = h.limits.For(st.ID).MaxActiveSeries
		}
		list = append(list, ti)
	}
	respondSuccess(w, struct {
		Time    float64      `json:"time"`
		Tenants []TenantInfo `json:"tenants"`
	}{float64(h.now().UnixMilli()) / 1000, list})
}

func nonNil(m map[string]float64) map[string]float64 {
	if m == nil {
		return map[string]float64{}
	}
	return m
}

// CompactorRun is a compaction run in the answer of /api/v1/status/compactor.
type CompactorRun struct {
	Start   time.Time `json:"start"`
	End     time.Time `json:"end"`
	Error   string    `json:"error,omitempty"`
	Skipped bool      `json:"skipped,omitempty"`
}

// compactorStatus answers /api/v1/status/compactor: whether this Strata
// compacts, its last pass over the bucket's tenants and the last run of the
// request's tenant (null until there is one). Other tenants' runs are not
// shown: their errors name their blocks.
func (h *statusHandlers) compactorStatus(w http.ResponseWriter, r *http.Request) {
	id, _ := tenant.FromContext(r.Context())
	st := h.compactor.Status()
	out := struct {
		Enabled      bool          `json:"enabled"`
		Passes       int           `json:"passes"`
		FailedPasses int           `json:"failedPasses"`
		LastPass     *CompactorRun `json:"lastPass"`
		Tenant       *CompactorRun `json:"tenant"`
	}{Enabled: st.Enabled, Passes: st.Passes, FailedPasses: st.FailedPasses}
	if st.Passes > 0 {
		out.LastPass = &CompactorRun{Start: st.LastPass.Start.UTC(), End: st.LastPass.End.UTC(), Error: st.LastPass.Err}
	}
	if run, ok := st.Tenants[id]; ok {
		out.Tenant = &CompactorRun{Start: run.Start.UTC(), End: run.End.UTC(), Error: run.Err, Skipped: run.Skipped}
	}
	respondSuccess(w, out)
}

// gatherMap gathers g's metric families by name; empty when g is nil or
// fails (the status endpoints then show no counters rather than fail).
func gatherMap(g prometheus.Gatherer) map[string]*dto.MetricFamily {
	out := map[string]*dto.MetricFamily{}
	if g == nil {
		return out
	}
	families, _ := g.Gather() // on error, Gather returns what it could gather
	for _, mf := range families {
		out[mf.GetName()] = mf
	}
	return out
}

// gaugeValue is the value of a family's only gauge, false when there is none.
func gaugeValue(mf *dto.MetricFamily) (float64, bool) {
	if mf == nil || len(mf.GetMetric()) != 1 || mf.GetMetric()[0].GetGauge() == nil {
		return 0, false
	}
	return mf.GetMetric()[0].GetGauge().GetValue(), true
}

// byTenant sums a counter family by its tenant label and the label by.
func byTenant(mf *dto.MetricFamily, by string) map[string]map[string]float64 {
	out := map[string]map[string]float64{}
	for _, m := range mf.GetMetric() {
		var id, key string
		for _, lp := range m.GetLabel() {
			switch lp.GetName() {
			case "tenant":
				id = lp.GetValue()
			case by:
				key = lp.GetValue()
			}
		}
		if out[id] == nil {
			out[id] = map[string]float64{}
		}
		out[id][key] += m.GetCounter().GetValue()
	}
	return out
}
