package ingest

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/prometheus/model/metadata"
	"github.com/prometheus/prometheus/model/timestamp"
	"github.com/prometheus/prometheus/storage"

	"github.com/strata-tsdb/strata/hatracker"
	"github.com/strata-tsdb/strata/limits"
)

// Storage is what the pipeline writes to.
type Storage interface {
	// Appender returns an appender for tenant. Its Commit must return only
	// once the appended data is durable.
	Appender(ctx context.Context, tenant string) (storage.AppenderV2, error)
	// SetMetadata records the metadata of a metric family of tenant.
	SetMetadata(tenant, family string, md metadata.Metadata) error
}

// Decoder decodes a body of one protocol into req (which it appends to),
// or returns the error the sender is answered with.
type Decoder func(body []byte, req *Request) *Error

// Options configure a Pipeline.
type Options struct {
	// MaxFutureTime is how far ahead of now a sample's timestamp may be.
	MaxFutureTime time.Duration
	// Limits, when set, are the per-tenant limits (see admit.go).
	Limits *limits.Overrides
	// Rates are the tenants' ingestion token buckets; made from Limits
	// when nil.
	Rates *limits.RateLimiters
	// HA de-duplicates HA pairs of tenants with accept_ha_samples; a new
	// tracker when nil.
	HA *hatracker.Tracker
	// Decoders decode the bodies HA keeps, by Request.Proto.
	Decoders map[string]Decoder

	Logger     *slog.Logger
	Registerer prometheus.Registerer
	// Now returns the current time, for sample timestamps, rate limits and
	// HA elections; time.Now when nil.
	Now func() time.Time
}

// Pipeline admits, validates and appends decoded requests: the one write
// path of every protocol.
type Pipeline struct {
	store  Storage
	opts   Options
	logger *slog.Logger
	lims   *limitState
	refs   refCaches
	reqs   sync.Pool // *Request
}

// New returns a pipeline writing to store.
func New(store Storage, opts Options) *Pipeline {
	if opts.MaxFutureTime <= 0 {
		opts.MaxFutureTime = 10 * time.Minute
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if opts.Registerer == nil {
		opts.Registerer = prometheus.NewRegistry()
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	return &Pipeline{store: store, opts: opts, logger: opts.Logger, lims: newLimitState(opts)}
}

// GetRequest returns an empty Request for a decoder to fill; PutRequest
// returns it once the request is answered.
func (p *Pipeline) GetRequest() *Request {
	if r, ok := p.reqs.Get().(*Request); ok {
		return r
	}
	return &Request{}
}

// PutRequest returns a Request of GetRequest for reuse.
func (p *Pipeline) PutRequest(r *Request) {
	r.Reset()
	if r.Pooled() {
		p.reqs.Put(r)
	}
}

// Write admits req for tenant id and stores its valid series. Requests that
// HA kept for a newly elected replica are stored first, each with its own
// Result handed to replayed: they are older than req, and stored after it
// they would be out of order.
func (p *Pipeline) Write(ctx context.Context, id string, req *Request, replayed func(*Result)) Result {
	adm, err := p.admit(id, req)
	for _, k := range adm.replay {
		res := p.replay(ctx, id, k, replayed)
		if replayed != nil {
			replayed(&res)
		}
	}
	if err != nil {
		res := Result{Err: err}
		if err.Code == http.StatusTooManyRequests {
			res.Rejected = map[string]int{ReasonRateLimited: req.count()}
		}
		return res
	}
	return p.append(ctx, id, req, adm)
}

// count returns the request's samples and histograms.
func (r *Request) count() int { return len(r.Samples) + len(r.Histograms) }

// replay stores a request of a newly elected HA replica that was answered
// 202 while another replica was elected (see package hatracker).
func (p *Pipeline) replay(ctx context.Context, id string, k hatracker.Kept, replayed func(*Result)) Result {
	dec, ok := p.opts.Decoders[k.Proto]
	if !ok {
		return Result{Err: Errorf(http.StatusInternalServerError, "no decoder of %q to store a kept HA request", k.Proto)}
	}
	req := p.GetRequest()
	defer p.PutRequest(req)
	if err := dec(k.Body, req); err != nil {
		return Result{Err: err}
	}
	res := p.Write(ctx, id, req, replayed)
	if res.Err != nil {
		p.logger.Warn("storing a kept request of a newly elected HA replica failed", "tenant", id, "code", res.Err.Code, "err", res.Err.Err)
	}
	return res
}

// append stores the valid series of an admitted request.
func (p *Pipeline) append(ctx context.Context, id string, req *Request, adm admission) Result {
	app, err := p.store.Appender(ctx, id)
	if err != nil {
		// A tenant refused by a limit (max_tenants) cannot succeed until an
		// operator raises it: 400. Anything else (a full disk, a tenant
		// that cannot open) is transient: 503.
		var le *limits.Error
		if errors.As(err, &le) {
			return Result{Err: &Error{Code: http.StatusBadRequest, Err: err}}
		}
		return Result{Err: &Error{Code: http.StatusServiceUnavailable, Err: fmt.Errorf("open store of tenant %q: %w", id, err)}}
	}
	var res Result
	ba := newBatch(app, timestamp.FromTime(p.opts.Now().Add(p.opts.MaxFutureTime)), &res)
	ba.adm = adm
	ba.track = req.TrackRejected

	// Every series is looked up in the reference cache at once, and the
	// hits verified, before the appends (refcache.go).
	cache := p.refs.get(adm.cacheKey(id))
	rb := &req.rb
	rb.start(len(req.Series))
	req.symHashes = growClear(req.symHashes, len(req.Symbols))
	for i := range req.Series {
		rb.hashes[i] = req.key(&req.Series[i], adm.dropLabel)
	}
	cache.getMany(rb.hashes, rb.found)
	for i := range req.Series {
		if rb.found[i].found {
			r := rb.encoded(i)
			rb.found[i].found = req.match(&r, &req.Series[i], adm.dropLabel)
		}
	}

	var appendErr error
	for i := range req.Series {
		s := &req.Series[i]
		ba.cur = i
		ls, ref, hit := rb.hit(i)
		if !hit {
			var ok bool
			if ls, ok = ba.series(req, s); !ok {
				continue
			}
		} else if !ba.withinLimits(ls, s.count()) {
			// Checked on every request, cached or not: the limits may
			// have changed since the series was cached.
			continue
		}
		first := ref
		if ref, appendErr = ba.samples(req, s, ls, ref); appendErr != nil {
			break
		}
		rb.appended(i, ls, first, ref)
		req.valid = append(req.valid, validSeries{idx: i, ls: ls})
	}
	ba.finish(appendErr)
	cache.putMany(rb.puts)
	if res.Err == nil || res.Err.Code < 500 {
		p.storeMetadata(id, req)
	}
	return res
}

// growClear returns s with length n, zeroed.
func growClear(s []uint64, n int) []uint64 {
	if cap(s) < n {
		return make([]uint64, n)
	}
	s = s[:n]
	clear(s)
	return s
}
