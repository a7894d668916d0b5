// Package querier reads a cluster's recent data from its ingesters: a
// storage.Querier per tenant and query that asks every ingester that may
// hold the tenant's series (the ring's read set), tolerates as many
// failures as the replication allows, and merges the replicas' series,
// identical samples once. The querier's store merges it with the bucket's
// blocks (blocks.Options.Recent).
package querier

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"slices"
	"sync"
	"time"

	"github.com/gogo/protobuf/proto"
	"github.com/golang/snappy"
	"github.com/grafana/dskit/ring"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/prompb"
	"github.com/prometheus/prometheus/storage"
	"github.com/prometheus/prometheus/storage/remote"
	"github.com/prometheus/prometheus/util/annotations"

	"github.com/strata-tsdb/strata/tenant"
)

// ReadPath is the ingesters' internal read endpoint: Prometheus's remote
// read over the ingester's head and local blocks only (never its view of
// the bucket, which the querier reads itself).
//
// Why remote read: it is Prometheus's own protocol for exactly this (a
// query's matchers and hints in, series out), served by Prometheus's
// handler and decoded by its codec; its "series" hint answers label
// queries without samples.
const ReadPath = "/ingester/read"

// ReadRing is what the reader needs of the ring: dskit's *ring.Ring.
type ReadRing interface {
	GetReplicationSetForOperation(op ring.Operation) (ring.ReplicationSet, error)
}

// Options configure a Reader.
type Options struct {
	Ring ReadRing
	// Client sends the reads; one with keep-alive when nil.
	Client *http.Client
	// Timeout bounds one read from one ingester.
	Timeout time.Duration
	// Scheme of the ingesters' addresses; "http" when empty.
	Scheme string

	Logger     *slog.Logger
	Registerer prometheus.Registerer
}

// peerDefaults fills in the defaults of a client of other Strata processes:
// a keep-alive client holding up to conns idle connections per peer, a
// minute's timeout and plain HTTP.
func peerDefaults(client **http.Client, timeout *time.Duration, scheme *string, conns int) {
	if *client == nil {
		*client = &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: conns, IdleConnTimeout: 90 * time.Second}}
	}
	if *timeout <= 0 {
		*timeout = time.Minute
	}
	if *scheme == "" {
		*scheme = "http"
	}
}

// Reader reads tenants' recent data from the ingesters.
type Reader struct {
	opts  Options
	reads *prometheus.CounterVec
}

// NewReader returns a Reader over opts.Ring.
func NewReader(opts Options) *Reader {
	peerDefaults(&opts.Client, &opts.Timeout, &opts.Scheme, 16)
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if opts.Registerer == nil {
		opts.Registerer = prometheus.NewRegistry()
	}
	return &Reader{opts: opts, reads: promauto.With(opts.Registerer).NewCounterVec(prometheus.CounterOpts{
		Name: "strata_querier_ingester_reads_total",
		Help: "Reads of a querier from ingesters, by outcome (ok, failed).",
	}, []string{"outcome"})}
}

// Querier returns the querier of tenant id's data in [mint, maxt] held by
// the ingesters (blocks.Options.Recent).
func (r *Reader) Querier(_ context.Context, id string, mint, maxt int64) (storage.Querier, error) {
	return &querier{r: r, tenant: id, mint: mint, maxt: maxt}, nil
}

type querier struct {
	r          *Reader
	tenant     string
	mint, maxt int64
}

// read runs q on every ingester of the read set and returns the answers of
// those that answered. It fails when more failed than the set allows: then
// some acknowledged samples may be on none of those that answered.
func (q *querier) read(ctx context.Context, pq *prompb.Query) ([]*prompb.QueryResult, annotations.Annotations, error) {
	rs, err := q.r.opts.Ring.GetReplicationSetForOperation(ring.Read)
	if err != nil {
		return nil, nil, fmt.Errorf("ingesters to read from: %w", err)
	}
	body, err := proto.Marshal(&prompb.ReadRequest{
		Queries:               []*prompb.Query{pq},
		AcceptedResponseTypes: []prompb.ReadRequest_ResponseType{prompb.ReadRequest_SAMPLES},
	})
	if err != nil {
		return nil, nil, err
	}
	body = snappy.Encode(nil, body)
	type answer struct {
		res *prompb.QueryResult
		err error
	}
	answers := make([]answer, len(rs.Instances))
	var wg sync.WaitGroup
	for i, in := range rs.Instances {
		wg.Go(func() {
			res, err := q.r.readOne(ctx, in.Addr, q.tenant, body)
			answers[i] = answer{res, err}
		})
	}
	wg.Wait()
	var (
		out   []*prompb.QueryResult
		errs  []error
		warns annotations.Annotations
	)
	for _, a := range answers {
		if a.err != nil {
			q.r.reads.WithLabelValues("failed").Inc()
			errs = append(errs, a.err)
			continue
		}
		q.r.reads.WithLabelValues("ok").Inc()
		out = append(out, a.res)
	}
	if len(errs) > rs.MaxErrors {
		return nil, nil, fmt.Errorf("%d of %d ingesters failed to answer, at most %d may: %w", len(errs), len(rs.Instances), rs.MaxErrors, errors.Join(errs...))
	}
	for _, err := range errs {
		warns.Add(fmt.Errorf("an ingester did not answer; its replicas did: %w", err))
	}
	return out, warns, nil
}

// readOne sends one remote read to the ingester at addr.
func (r *Reader) readOne(ctx context.Context, addr, id string, body []byte) (*prompb.QueryResult, error) {
	ctx, cancel := context.WithTimeout(ctx, r.opts.Timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, r.opts.Scheme+"://"+addr+ReadPath, bytes.NewReader(body))
	if err != nil {
		return nil, err
	}
	req.Header.Set("Content-Type", "application/x-protobuf")
	req.Header.Set("Content-Encoding", "snappy")
	req.Header.Set("X-Prometheus-Remote-Read-Version", "0.1.0")
	req.Header.Set(tenant.HeaderName, id)
	resp, err := r.opts.Client.Do(req)
	if err != nil {
		return nil, fmt.Errorf("read from ingester %s: %w", addr, err)
	}
	defer resp.Body.Close()
	compressed, err := io.ReadAll(resp.Body)
	if err != nil {
		return nil, fmt.Errorf("read from ingester %s: %w", addr, err)
	}
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("read from ingester %s: %s: %s", addr, resp.Status, bytes.TrimSpace(compressed))
	}
	raw, err := snappy.Decode(nil, compressed)
	if err != nil {
		return nil, fmt.Errorf("read from ingester %s: %w", addr, err)
	}
	var rr prompb.ReadResponse
	if err := proto.Unmarshal(raw, &rr); err != nil {
		return nil, fmt.Errorf("read from ingester %s: %w", addr, err)
	}
	if len(rr.Results) != 1 {
		return nil, fmt.Errorf("read from ingester %s: %d results for one query", addr, len(rr.Results))
	}
	return rr.Results[0], nil
}

// Select merges the ingesters' series: replicas of a series are one
// series, identical samples once.
func (q *querier) Select(ctx context.Context, _ bool, hints *storage.SelectHints, ms ...*labels.Matcher) storage.SeriesSet {
	mint, maxt := q.mint, q.maxt
	if hints != nil {
		mint, maxt = max(mint, hints.Start), min(maxt, hints.End)
	}
	pq, err := remote.ToQuery(mint, maxt, ms, hints)
	if err != nil {
		return storage.ErrSeriesSet(err)
	}
	results, warns, err := q.read(ctx, pq)
	if err != nil {
		return storage.ErrSeriesSet(err)
	}
	sets := make([]storage.SeriesSet, 0, len(results))
	for _, res := range results {
		sets = append(sets, remote.FromQueryResult(true, res))
	}
	return warnSet{storage.NewMergeSeriesSet(sets, 0, storage.ChainedSeriesMerge), warns}
}

// warnSet adds the warnings of ingesters that did not answer.
type warnSet struct {
	storage.SeriesSet
	warns annotations.Annotations
}

func (s warnSet) Warnings() annotations.Annotations {
	return s.warns.Merge(s.SeriesSet.Warnings())
}

// labelSets returns the label sets of the series matching ms, read with
// the "series" hint: the ingesters send labels without samples.
func (q *querier) labelSets(ctx context.Context, hints *storage.LabelHints, ms ...*labels.Matcher) ([]labels.Labels, annotations.Annotations, error) {
	if len(ms) == 0 {
		ms = []*labels.Matcher{labels.MustNewMatcher(labels.MatchRegexp, labels.MetricName, ".+")}
	}
	ss := q.Select(ctx, true, &storage.SelectHints{Start: q.mint, End: q.maxt, Func: "series"}, ms...)
	var out []labels.Labels
	for ss.Next() {
		out = append(out, ss.At().Labels())
	}
	return out, ss.Warnings(), ss.Err()
}

// LabelValues answers from the matching series' labels.
func (q *querier) LabelValues(ctx context.Context, name string, hints *storage.LabelHints, ms ...*labels.Matcher) ([]string, annotations.Annotations, error) {
	sets, warns, err := q.labelSets(ctx, hints, ms...)
	if err != nil {
		return nil, warns, err
	}
	seen := map[string]struct{}{}
	for _, ls := range sets {
		if v := ls.Get(name); v != "" {
			seen[v] = struct{}{}
		}
	}
	return sortedKeys(seen, hints), warns, nil
}

// LabelNames answers from the matching series' labels.
func (q *querier) LabelNames(ctx context.Context, hints *storage.LabelHints, ms ...*labels.Matcher) ([]string, annotations.Annotations, error) {
	sets, warns, err := q.labelSets(ctx, hints, ms...)
	if err != nil {
		return nil, warns, err
	}
	seen := map[string]struct{}{}
	for _, ls := range sets {
		ls.Range(func(l labels.Label) { seen[l.Name] = struct{}{} })
	}
	return sortedKeys(seen, hints), warns, nil
}

func sortedKeys(m map[string]struct{}, hints *storage.LabelHints) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	slices.Sort(out)
	if hints != nil && hints.Limit > 0 && len(out) > hints.Limit {
		out = out[:hints.Limit]
	}
	return out
}

func (q *querier) Close() error { return nil }
