// Package distributor sends each series of a write to the ingesters that own
// it on the ring. It plugs into the one write path (package ingest) as the
// pipeline's Storage: the receivers keep negotiation, validation, limits and
// HA de-duplication, and the pipeline's appender here buffers the valid
// series and, on Commit, writes them to their replicas, returning once a
// quorum of each series' replicas has them in its WAL.
//
// Invariants:
//   - Commit returns nil only when, for every series, a quorum of its
//     replication set (2 of 3) answered 2xx: an ingester answers only
//     after its own WAL has the valid samples (its pipeline's Commit).
//   - Commit's error is an *ingest.Error of 400 when a quorum of some
//     series' replicas rejected samples of the request (out of order, too
//     old, beyond an ingester's share of a series limit): the valid rest
//     is stored, as the single process answers. As in Mimir, an ingester's
//     400 counts against every series of its push, and a minority of
//     replicas rejecting is answered 2xx (every series is in a quorum of
//     WALs). Any other error fails the request with 5xx, and the sender
//     retries it whole. With one replica refusing, one failing and one
//     writing, the answer is the error dskit's DoBatch saw last (400 or
//     503): either way nothing stored is lost, and no 2xx is given.
//   - Nothing of a request is referenced once Commit returns: the bodies
//     for every ingester are encoded before the first is sent, and writes
//     to replicas beyond the quorum finish in the background from them.
package distributor

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/cespare/xxhash/v2"
	"github.com/golang/snappy"
	"github.com/grafana/dskit/ring"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"
	"github.com/prometheus/prometheus/model/exemplar"
	"github.com/prometheus/prometheus/model/histogram"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/prompb"
	writev2 "github.com/prometheus/prometheus/prompb/io/prometheus/write/v2"
	"github.com/prometheus/prometheus/storage"

	"github.com/strata-tsdb/strata/ingest"
	"github.com/strata-tsdb/strata/tenant"
)

// PushPath is the ingesters' internal write endpoint. It takes remote write
// 2.0 bodies and answers as remote write does.
//
// Why HTTP with remote write 2.0 rather than gRPC: an ingester's receiver is
// then the same remote-write handler and pipeline as a single process's
// (decoders fuzzed and measured, status codes, and the contract that 2xx
// means "in the WAL"), with no second wire format to keep; remote write
// 2.0's symbol table keeps the bodies as small as a protobuf service's
// would be. Connections are kept alive between processes.
const PushPath = "/ingester/push"

// Ring is what the distributor needs of the ring: dskit's *ring.Ring.
type Ring interface {
	Get(key uint32, op ring.Operation, bufInstances []ring.InstanceDesc, bufStrings1, bufStrings2 []string) (ring.ReplicationSet, error)
	ReplicationFactor() int
	InstancesCount() int
	GetAllHealthy(op ring.Operation) (ring.ReplicationSet, error)
}

// Options configure a Distributor.
type Options struct {
	Ring Ring
	// Client sends the pushes; a client with keep-alive when nil.
	Client *http.Client
	// PushTimeout bounds one push to one ingester.
	PushTimeout time.Duration
	// Scheme of the ingesters' addresses; "http" when empty.
	Scheme string

	Logger     *slog.Logger
	Registerer prometheus.Registerer
}

// Distributor is the pipeline's Storage in a distributor.
type Distributor struct {
	opts   Options
	logger *slog.Logger
	bufs   sync.Pool // *[]byte: encoding scratch

	pushes       *prometheus.CounterVec
	pushDuration prometheus.Histogram

	metaMu sync.Mutex
	meta   map[metaKey]metaEntry // metadata.go
}

// New returns a distributor writing through opts.Ring.
func New(opts Options) *Distributor {
	if opts.Client == nil {
		opts.Client = &http.Client{Transport: &http.Transport{
			MaxIdleConnsPerHost: 64,
			IdleConnTimeout:     90 * time.Second,
		}}
	}
	if opts.PushTimeout <= 0 {
		opts.PushTimeout = 10 * time.Second
	}
	if opts.Scheme == "" {
		opts.Scheme = "http"
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if opts.Registerer == nil {
		opts.Registerer = prometheus.NewRegistry()
	}
	f := promauto.With(opts.Registerer)
	return &Distributor{
		opts:   opts,
		logger: opts.Logger,
		meta:   map[metaKey]metaEntry{},
		pushes: f.NewCounterVec(prometheus.CounterOpts{
			Name: "strata_distributor_ingester_pushes_total",
			Help: "Pushes of a distributor to ingesters, by outcome: ok (in the WAL), rejected (400: some samples rejected, the rest in the WAL) or failed (not written).",
		}, []string{"outcome"}),
		pushDuration: f.NewHistogram(prometheus.HistogramOpts{
			Name:                        "strata_distributor_ingester_push_duration_seconds",
			Help:                        "Time of one push of a distributor to one ingester.",
			NativeHistogramBucketFactor: 1.1,
			Buckets:                     prometheus.DefBuckets,
		}),
	}
}

// Appender returns an appender buffering tenant's series; its Commit writes
// them to their ingesters.
func (d *Distributor) Appender(ctx context.Context, id string) (storage.AppenderV2, error) {
	return &appender{d: d, ctx: ctx, tenant: id}, nil
}

// AppenderV2 implements storage.AppendableV2 for the tenant carried by ctx:
// a cluster's ruler writes its rules' results through it, to the ingesters
// as a distributor writes, answered once a quorum has them. Without a
// tenant, every Append fails.
func (d *Distributor) AppenderV2(ctx context.Context) storage.AppenderV2 {
	id, ok := tenant.FromContext(ctx)
	if !ok {
		return &appender{d: d, ctx: ctx, err: tenant.ErrNoTenant}
	}
	return &appender{d: d, ctx: ctx, tenant: id}
}

// series is one series of a commit, with what was appended to it.
type series struct {
	ls        labels.Labels
	samples   []writev2.Sample
	hists     []writev2.Histogram
	exemplars []exemplar.Exemplar
}

// appender buffers one request's valid series.
type appender struct {
	d      *Distributor
	ctx    context.Context
	tenant string
	series []series
	err    error // fails every call when set
}

var _ storage.ExemplarAppenderV2 = (*appender)(nil)

// last returns the series ls, the last one appended to when it has the
// same labels (the pipeline appends a series' samples in a row), else a
// new one.
func (a *appender) last(ls labels.Labels) *series {
	if n := len(a.series); n > 0 && labels.Equal(a.series[n-1].ls, ls) {
		return &a.series[n-1]
	}
	a.series = append(a.series, series{ls: ls})
	return &a.series[len(a.series)-1]
}

// Append buffers one sample. The returned reference is 0: series have no
// reference in a distributor, and the pipeline's cache of references
// tolerates any (it passes the labels along).
func (a *appender) Append(_ storage.SeriesRef, ls labels.Labels, st, t int64, v float64, h *histogram.Histogram, fh *histogram.FloatHistogram, _ storage.AppendV2Options) (storage.SeriesRef, error) {
	if a.err != nil {
		return 0, a.err
	}
	s := a.last(ls)
	switch {
	case h != nil:
		s.hists = append(s.hists, writev2.FromIntHistogram(st, t, h))
	case fh != nil:
		s.hists = append(s.hists, writev2.FromFloatHistogram(st, t, fh))
	default:
		s.samples = append(s.samples, writev2.Sample{Value: v, Timestamp: t, StartTimestamp: st})
	}
	return 0, nil
}

// AppendExemplars buffers the exemplars of series ls: with the samples of
// the series appended last when it is ls, else on their own (remote write
// 1.0 senders send a series' exemplars in an entry of their own, often in a
// request without its samples).
func (a *appender) AppendExemplars(_ storage.SeriesRef, ls labels.Labels, es []exemplar.Exemplar) (storage.SeriesRef, error) {
	if a.err != nil {
		return 0, a.err
	}
	if n := len(a.series); n > 0 && labels.Equal(a.series[n-1].ls, ls) {
		a.series[n-1].exemplars = append(a.series[n-1].exemplars, es...)
		return 0, nil
	}
	a.series = append(a.series, series{ls: ls, exemplars: slices.Clone(es)})
	return 0, nil
}

// Rollback drops the buffered series.
func (a *appender) Rollback() error {
	a.series = nil
	return nil
}

// Commit writes the buffered series to their ingesters and returns once a
// quorum of each series' replicas has them.
func (a *appender) Commit() error {
	defer func() { a.series = nil }()
	if a.err != nil {
		return a.err
	}
	if len(a.series) == 0 {
		return nil
	}
	return a.d.push(a.ctx, a.tenant, a.series)
}

// Token returns the ring token of a tenant's series: a hash of the tenant
// and every label, so that a tenant's series spread over all ingesters.
func Token(tenantID string, ls labels.Labels) uint32 {
	h := xxhash.New()
	_, _ = h.WriteString(tenantID)
	_, _ = h.Write([]byte{0xff})
	ls.Range(func(l labels.Label) {
		_, _ = h.WriteString(l.Name)
		_, _ = h.Write([]byte{0xfe})
		_, _ = h.WriteString(l.Value)
		_, _ = h.Write([]byte{0xfe})
	})
	return uint32(h.Sum64())
}

// fixedRing answers DoBatch with the replication sets chosen before the
// bodies were encoded, so that the sets the quorum is counted over are the
// ones the bodies were built for, even if the ring changes meanwhile.
type fixedRing struct {
	sets map[uint32]ring.ReplicationSet
	rf   int
	n    int
}

func (r fixedRing) Get(key uint32, _ ring.Operation, _ []ring.InstanceDesc, _, _ []string) (ring.ReplicationSet, error) {
	return r.sets[key], nil
}
func (r fixedRing) ReplicationFactor() int { return r.rf }
func (r fixedRing) InstancesCount() int    { return r.n }

// push writes ss of tenant id to their replicas.
func (d *Distributor) push(ctx context.Context, id string, ss []series) error {
	tokens := make([]uint32, len(ss))
	sets := make(map[uint32]ring.ReplicationSet, len(ss))
	byAddr := map[string][]int{}
	for i := range ss {
		tok := Token(id, ss[i].ls)
		tokens[i] = tok
		rs, ok := sets[tok]
		if !ok {
			var err error
			// No buffers: the sets are kept.
			if rs, err = d.opts.Ring.Get(tok, ring.Write, nil, nil, nil); err != nil {
				return &ingest.Error{Code: http.StatusServiceUnavailable, Err: fmt.Errorf("no ingesters for series %s: %w", ss[i].ls, err)}
			}
			sets[tok] = rs
		}
		for _, in := range rs.Instances {
			byAddr[in.Addr] = append(byAddr[in.Addr], i)
		}
	}
	// Ingesters sent the same series get the same body, encoded once: with
	// as many ingesters as replicas, every ingester gets every series.
	bodies := make(map[string]pushBodies, len(byAddr))
	var encoded []struct {
		idx    []int
		bodies pushBodies
	}
	for addr, idx := range byAddr {
		found := false
		for _, e := range encoded {
			if slices.Equal(e.idx, idx) {
				bodies[addr], found = e.bodies, true
				break
			}
		}
		if !found {
			bodies[addr] = d.encode(ss, idx)
			encoded = append(encoded, struct {
				idx    []int
				bodies pushBodies
			}{idx, bodies[addr]})
		}
	}

	// The pushes beyond the quorum go on after DoBatch returns, with their
	// own deadline: the request's context ends with its answer.
	pctx := context.WithoutCancel(ctx)
	err := ring.DoBatchWithOptions(ctx, ring.Write, fixedRing{sets: sets, rf: d.opts.Ring.ReplicationFactor(), n: len(byAddr)}, tokens,
		func(in ring.InstanceDesc, _ []int) error {
			b := bodies[in.Addr]
			var err error
			if b.samples != nil {
				err = d.send(pctx, id, in.Addr, b.samples, protoV2)
			}
			if b.exemplars != nil && (err == nil || isRejection(err)) {
				// Best effort, as exemplars are in a single process: an
				// ingester's failure to take them fails nothing.
				if xerr := d.send(pctx, id, in.Addr, b.exemplars, protoV1); xerr != nil {
					d.logger.Debug("exemplars not written to an ingester", "ingester", in.Addr, "err", xerr)
				}
			}
			return err
		}, ring.DoBatchOptions{IsClientError: isClientError})
	if err == nil {
		return nil
	}
	var pe *pushError
	if errors.As(err, &pe) && pe.code/100 == 4 {
		if pe.code == http.StatusBadRequest {
			// A quorum of some series' replicas rejected samples of
			// the request (out of order, too old, beyond their share of
			// a series limit) and stored the rest: 400, as a single
			// process answers, with the ingester's message.
			return &ingest.Error{Code: pe.code, Err: errors.New(firstLine(pe.msg))}
		}
		// A quorum refused the request as a whole (413, 415): the same
		// answer a single process gives.
		return &ingest.Error{Code: pe.code, Err: err}
	}
	return &ingest.Error{Code: http.StatusServiceUnavailable, Err: fmt.Errorf("no quorum of ingesters wrote the request: %w", err)}
}

// pushBodies are the bodies pushed to one ingester: a remote write 2.0 body
// of the series with samples or histograms (and their exemplars), and a
// remote write 1.0 body of the exemplars of series without samples in the
// request (which the 2.0 receiver refuses as empty series); nil when none.
type pushBodies struct{ samples, exemplars []byte }

// encode returns the snappy-compressed bodies of the series idx of ss.
func (d *Distributor) encode(ss []series, idx []int) pushBodies {
	st := writev2.NewSymbolTable()
	req := writev2.Request{Timeseries: make([]writev2.TimeSeries, 0, len(idx))}
	var (
		refs []uint32
		exs  prompb.WriteRequest
	)
	for _, i := range idx {
		s := &ss[i]
		if len(s.samples) == 0 && len(s.hists) == 0 {
			exs.Timeseries = append(exs.Timeseries, exemplarSeries(s))
			continue
		}
		refs = st.SymbolizeLabels(s.ls, refs[:0])
		ts := writev2.TimeSeries{LabelsRefs: append([]uint32(nil), refs...), Samples: s.samples}
		for _, e := range s.exemplars {
			ts.Exemplars = append(ts.Exemplars, writev2.Exemplar{
				LabelsRefs: st.SymbolizeLabels(e.Labels, nil), Value: e.Value, Timestamp: e.Ts,
			})
		}
		if len(s.samples) > 0 {
			req.Timeseries = append(req.Timeseries, ts)
		}
		if len(s.hists) > 0 {
			// A series of remote write 2.0 carries samples or histograms,
			// never both; one with both is sent as two.
			hts := writev2.TimeSeries{LabelsRefs: ts.LabelsRefs, Histograms: s.hists}
			if len(s.samples) == 0 {
				hts.Exemplars = ts.Exemplars
			}
			req.Timeseries = append(req.Timeseries, hts)
		}
	}
	var out pushBodies
	if len(req.Timeseries) > 0 {
		req.Symbols = st.Symbols()
		bp, _ := d.bufs.Get().(*[]byte)
		if bp == nil {
			bp = new([]byte)
		}
		raw, err := req.OptimizedMarshal((*bp)[:0])
		if err != nil {
			// Marshalling a well-formed message into a buffer cannot fail.
			panic(fmt.Sprintf("marshal remote write 2.0 request: %v", err))
		}
		out.samples = snappy.Encode(nil, raw)
		*bp = raw
		d.bufs.Put(bp)
	}
	if len(exs.Timeseries) > 0 {
		raw, err := exs.Marshal()
		if err != nil {
			panic(fmt.Sprintf("marshal remote write 1.0 request: %v", err))
		}
		out.exemplars = snappy.Encode(nil, raw)
	}
	return out
}

// exemplarSeries is s, which has exemplars only, as a remote write 1.0
// series.
func exemplarSeries(s *series) prompb.TimeSeries {
	ts := prompb.TimeSeries{Labels: prompb.FromLabels(s.ls, nil)}
	for _, e := range s.exemplars {
		ts.Exemplars = append(ts.Exemplars, prompb.Exemplar{Labels: prompb.FromLabels(e.Labels, nil), Value: e.Value, Timestamp: e.Ts})
	}
	return ts
}

// pushError is an ingester's refusal of a push, with its status code.
type pushError struct {
	addr string
	code int
	msg  string
}

func (e *pushError) Error() string {
	return fmt.Sprintf("ingester %s answered %d: %s", e.addr, e.code, e.msg)
}

// isClientError tells DoBatch which failures are the request's (a quorum
// of them fails it with 4xx) rather than the ingesters'.
func isClientError(err error) bool {
	var pe *pushError
	return errors.As(err, &pe) && pe.code/100 == 4
}

// Content types of the pushes.
const (
	protoV2 = "application/x-protobuf;proto=io.prometheus.write.v2.Request"
	protoV1 = "application/x-protobuf"
)

// isRejection reports whether err is an ingester's 400: it rejected some
// samples and stored the valid rest.
func isRejection(err error) bool {
	var pe *pushError
	return errors.As(err, &pe) && pe.code == http.StatusBadRequest
}

// send pushes one body to the ingester at addr. Its error is a *pushError
// when the ingester answered other than 2xx: a 400 (isRejection) means
// that the valid rest of the body is in its WAL.
func (d *Distributor) send(ctx context.Context, id, addr string, body []byte, contentType string) error {
	start := time.Now()
	ctx, cancel := context.WithTimeout(ctx, d.opts.PushTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, d.opts.Scheme+"://"+addr+PushPath, bytes.NewReader(body))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", contentType)
	req.Header.Set("Content-Encoding", "snappy")
	if contentType == protoV2 {
		req.Header.Set("X-Prometheus-Remote-Write-Version", "2.0.0")
	} else {
		req.Header.Set("X-Prometheus-Remote-Write-Version", "0.1.0")
	}
	req.Header.Set(tenant.HeaderName, id)
	resp, err := d.opts.Client.Do(req)
	d.pushDuration.Observe(time.Since(start).Seconds())
	if err != nil {
		d.pushes.WithLabelValues("failed").Inc()
		return fmt.Errorf("push to ingester %s: %w", addr, err)
	}
	defer resp.Body.Close()
	msg, _ := io.ReadAll(io.LimitReader(resp.Body, 4<<10))
	switch {
	case resp.StatusCode/100 == 2:
		d.pushes.WithLabelValues("ok").Inc()
		return nil
	case resp.StatusCode == http.StatusBadRequest:
		d.pushes.WithLabelValues("rejected").Inc()
	default:
		d.pushes.WithLabelValues("failed").Inc()
	}
	return &pushError{addr: addr, code: resp.StatusCode, msg: strings.TrimSpace(string(msg))}
}

func firstLine(s string) string {
	s, _, _ = strings.Cut(s, "\n")
	return s
}
