// Package remotewrite is Strata's Prometheus remote-write receiver: the HTTP
// endpoint that negotiates remote write 1.0 and 2.0, reads and decompresses
// the body within its limits, decodes it (package ingest/rwproto) and hands
// it to the write path (package ingest), which validates each series and
// appends the valid ones to the tenant's store; it answers with the status
// codes below and, for 2.0, the headers saying what was written.
//
// Status codes follow the remote-write specifications and Prometheus's own
// receiver, so that a sender retries exactly what can succeed later:
//   - 204: everything was stored (in the WAL) before the answer was written.
//   - 400: malformed body or invalid series; the valid series of the request
//     are stored all the same and the message names the invalid ones. The
//     sender drops the request.
//   - 413: body larger than the configured limit.
//   - 415: unsupported Content-Type, protobuf message or Content-Encoding.
//   - 5xx: a transient failure of the store; nothing of the request is
//     stored, and the sender retries it.
package remotewrite

import (
	"errors"
	"io"
	"log/slog"
	"mime"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/golang/snappy"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/strata-tsdb/strata/hatracker"
	"github.com/strata-tsdb/strata/ingest"
	"github.com/strata-tsdb/strata/ingest/rwproto"
	"github.com/strata-tsdb/strata/internal/snappybound"
	"github.com/strata-tsdb/strata/limits"
	"github.com/strata-tsdb/strata/tenant"
)

// Protobuf messages named by the proto parameter of Content-Type.
const (
	ProtoV1 = rwproto.ProtoV1
	ProtoV2 = rwproto.ProtoV2
)

// Response headers of remote write 2.0 that confirm what was written.
const (
	HeaderSamplesWritten    = "X-Prometheus-Remote-Write-Samples-Written"
	HeaderHistogramsWritten = "X-Prometheus-Remote-Write-Histograms-Written"
	HeaderExemplarsWritten  = "X-Prometheus-Remote-Write-Exemplars-Written"
)

// Storage is what the receiver writes to.
type Storage = ingest.Storage

// Options configure a Handler.
type Options struct {
	// MaxBodyBytes bounds both the compressed and the decompressed body.
	MaxBodyBytes int64
	// MaxFutureTime is how far ahead of now a sample's timestamp may be.
	MaxFutureTime time.Duration
	// Tenants resolves the tenant of each request.
	Tenants tenant.Resolver
	// Limits, when set, are the per-tenant limits (see limits.go).
	Limits *limits.Overrides
	// HA de-duplicates HA pairs of tenants with accept_ha_samples; a new
	// tracker when nil.
	HA *hatracker.Tracker
	// DisableFastDecode decodes every body with the generated (gogo)
	// decoders only: for tests comparing the two.
	DisableFastDecode bool
	// Pipeline is the write path requests are handed to; one writing to
	// the store with the options above when nil. A pipeline made outside
	// decodes the bodies HA keeps with rwproto.Decoders.
	Pipeline *ingest.Pipeline
	// Metrics are the ingest metrics, shared with the other receivers of
	// the process; registered on Registerer when nil.
	Metrics *Metrics

	Logger     *slog.Logger
	Registerer prometheus.Registerer
	// Now returns the current time; time.Now when nil.
	Now func() time.Time
}

// DefaultMaxBodyBytes is the default limit on a request body: Prometheus
// sends at most a few MiB per request.
const DefaultMaxBodyBytes = 64 << 20

// Handler is the remote-write HTTP endpoint.
type Handler struct {
	pipe    *ingest.Pipeline
	opts    Options
	logger  *slog.Logger
	metrics *Metrics
	bufs    sync.Pool // *[]byte: compressed bodies
	bodies  sync.Pool // *[]byte: decompressed bodies, up to maxPooledBody
	// decoders by protobuf message (rwproto.Decoders)
	decoders map[string]ingest.Decoder
}

// NewHandler returns a remote-write handler that writes to store.
func NewHandler(store Storage, opts Options) *Handler {
	if opts.MaxBodyBytes <= 0 {
		opts.MaxBodyBytes = DefaultMaxBodyBytes
	}
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
	if opts.Metrics == nil {
		opts.Metrics = NewMetrics(opts.Registerer)
	}
	h := &Handler{opts: opts, logger: opts.Logger, metrics: opts.Metrics, decoders: rwproto.Decoders(!opts.DisableFastDecode), pipe: opts.Pipeline}
	if h.pipe == nil {
		h.pipe = ingest.New(store, ingest.Options{
			MaxFutureTime: opts.MaxFutureTime,
			Limits:        opts.Limits,
			HA:            opts.HA,
			Decoders:      h.decoders,
			Logger:        opts.Logger,
			Registerer:    opts.Registerer,
			Now:           opts.Now,
		})
	}
	return h
}

// httpError is an error with the status code it is answered with.
type httpError = ingest.Error

var errorf = ingest.Errorf

// protoVersion negotiates the protobuf message from the request headers.
func protoVersion(r *http.Request) (string, *httpError) {
	ct := r.Header.Get("Content-Type")
	msg := ProtoV1
	if ct != "" {
		mt, params, err := mime.ParseMediaType(ct)
		if err != nil {
			return "", errorf(http.StatusUnsupportedMediaType, "invalid Content-Type %q: %v", ct, err)
		}
		if mt != "application/x-protobuf" {
			return "", errorf(http.StatusUnsupportedMediaType, "unsupported Content-Type %q, want application/x-protobuf", ct)
		}
		if p, ok := params["proto"]; ok {
			msg = p
		}
	}
	if msg != ProtoV1 && msg != ProtoV2 {
		return "", errorf(http.StatusUnsupportedMediaType, "unsupported protobuf message %q, want %s or %s", msg, ProtoV1, ProtoV2)
	}
	// Content-Encoding is snappy; an absent header is taken as snappy, as
	// early 1.0 senders did not set it.
	if enc := r.Header.Get("Content-Encoding"); enc != "" && !strings.EqualFold(enc, "snappy") {
		return "", errorf(http.StatusUnsupportedMediaType, "unsupported Content-Encoding %q, want snappy", enc)
	}
	return msg, nil
}

// maxPooledBody bounds the decompressed bodies kept for reuse: senders'
// requests are a few hundred KiB, and a rare huge one should not stay
// pinned in the pool.
const maxPooledBody = 8 << 20

// readBody reads and decompresses the request body within the size limit.
// Both returned buffers go back to their pools with putBufs once the
// request is answered: the decoded body is reused by a later request, so
// nothing may keep a reference into it (the flat decoders' strings point
// into it; what outlives the request is copied: labels by
// labels.ScratchBuilder, metadata, HA cluster and replica names explicitly;
// gogo copies every string it decodes).
func (h *Handler) readBody(r *http.Request, limit int64) (decoded []byte, buf, dbuf *[]byte, herr *httpError) {
	if r.ContentLength > limit {
		return nil, nil, nil, errorf(http.StatusRequestEntityTooLarge, "request body of %d bytes exceeds the limit of %d bytes", r.ContentLength, limit)
	}
	bp, _ := h.bufs.Get().(*[]byte)
	if bp == nil {
		bp = new([]byte)
	}
	compressed := (*bp)[:0]
	var err error
	compressed, err = readAll(http.MaxBytesReader(nil, r.Body, limit), compressed)
	*bp = compressed
	if err != nil {
		h.putBufs(bp, nil)
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			return nil, nil, nil, errorf(http.StatusRequestEntityTooLarge, "request body exceeds the limit of %d bytes", limit)
		}
		return nil, nil, nil, errorf(http.StatusBadRequest, "read request body: %v", err)
	}
	// The decoded length is checked against what the body can hold before
	// it is allocated: a tiny body may claim the whole limit.
	n, err := snappybound.DecodedLen(compressed, limit)
	if err != nil {
		h.putBufs(bp, nil)
		if errors.Is(err, snappybound.ErrTooLarge) {
			return nil, nil, nil, &httpError{Code: http.StatusRequestEntityTooLarge, Err: err}
		}
		return nil, nil, nil, &httpError{Code: http.StatusBadRequest, Err: err}
	}
	// golang/snappy rather than klauspost/compress/s2's snappy-compatible
	// decoder: s2 decoded the bench's bodies about 40% slower.
	dp, _ := h.bodies.Get().(*[]byte)
	if dp == nil {
		dp = new([]byte)
	}
	if cap(*dp) < n {
		*dp = make([]byte, n)
	}
	decoded, err = snappy.Decode((*dp)[:n], compressed)
	if err != nil {
		h.putBufs(bp, dp)
		return nil, nil, nil, errorf(http.StatusBadRequest, "decode snappy body: %v", err)
	}
	return decoded, bp, dp, nil
}

// putBufs returns the buffers of readBody to their pools.
func (h *Handler) putBufs(bp, dp *[]byte) {
	if bp != nil && cap(*bp) <= int(h.opts.MaxBodyBytes) {
		h.bufs.Put(bp)
	}
	if dp != nil && cap(*dp) <= maxPooledBody {
		h.bodies.Put(dp)
	}
}

// readAll reads r to its end, appending to buf.
func readAll(r io.Reader, buf []byte) ([]byte, error) {
	for {
		if len(buf) == cap(buf) {
			buf = append(buf, 0)[:len(buf)]
		}
		n, err := r.Read(buf[len(buf):cap(buf)])
		buf = buf[:len(buf)+n]
		if err == io.EOF {
			return buf, nil
		}
		if err != nil {
			return buf, err
		}
	}
}

// ServeHTTP implements http.Handler.
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	// The duration is measured with the real clock: Options.Now is for
	// judging sample timestamps and may be pinned.
	start := time.Now()
	proto := "unknown"
	code, tenantID := h.serve(w, r, &proto)
	h.metrics.ObserveRequest(tenantID, proto, code, start)
}

// serve answers the request and returns the status code it wrote.
func (h *Handler) serve(w http.ResponseWriter, r *http.Request, proto *string) (int, string) {
	if r.Method != http.MethodPost {
		w.Header().Set("Allow", http.MethodPost)
		return h.fail(w, "", errorf(http.StatusMethodNotAllowed, "method %s not allowed, use POST", r.Method)), ""
	}
	id, err := h.opts.Tenants.FromRequest(r)
	if err != nil {
		return h.fail(w, "", &httpError{Code: tenant.StatusCode(err), Err: err}), ""
	}
	msg, herr := protoVersion(r)
	if herr != nil {
		return h.fail(w, id, herr), id
	}
	*proto = "v1"
	if msg == ProtoV2 {
		*proto = "v2"
	}
	body, bp, dp, herr := h.readBody(r, h.maxBody(id))
	if herr != nil {
		return h.fail(w, id, herr), id
	}
	defer h.putBufs(bp, dp)

	req := h.pipe.GetRequest()
	defer h.pipe.PutRequest(req)
	var res ingest.Result
	if err := h.decoders[msg](body, req); err != nil {
		res.Err = err
	} else {
		res = h.pipe.Write(r.Context(), id, req, func(kept *ingest.Result) { h.metrics.Record(id, kept) })
	}
	h.metrics.Record(id, &res)
	if msg == ProtoV2 && res.Err == nil || msg == ProtoV2 && res.Err.Code < 500 {
		// Remote write 2.0 confirms what was written, also alongside a 4xx.
		w.Header().Set(HeaderSamplesWritten, strconv.Itoa(res.Samples))
		w.Header().Set(HeaderHistogramsWritten, strconv.Itoa(res.Histograms))
		w.Header().Set(HeaderExemplarsWritten, strconv.Itoa(res.Exemplars))
	}
	if res.Err != nil {
		return h.fail(w, id, res.Err), id
	}
	w.WriteHeader(http.StatusNoContent)
	return http.StatusNoContent, id
}

func (h *Handler) fail(w http.ResponseWriter, id string, e *httpError) int {
	if e.Code == http.StatusAccepted {
		// A de-duplicated HA request: not stored, and not to be resent.
		http.Error(w, e.Err.Error(), e.Code)
		return e.Code
	}
	if e.Code >= 500 {
		h.logger.Error("remote write failed", "tenant", id, "code", e.Code, "err", e.Err)
	} else {
		h.logger.Debug("remote write rejected", "tenant", id, "code", e.Code, "err", e.Err)
	}
	http.Error(w, e.Err.Error(), e.Code)
	return e.Code
}

// maxBody returns the body size limit of tenant id.
func (h *Handler) maxBody(id string) int64 {
	if h.opts.Limits != nil {
		if n := h.opts.Limits.For(id).MaxRequestBodyBytes; n > 0 {
			return n
		}
	}
	return h.opts.MaxBodyBytes
}
