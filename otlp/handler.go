// Package otlp is Strata's OTLP/HTTP metrics receiver: POST
// /otlp/v1/metrics and Prometheus's /api/v1/otlp/v1/metrics, protobuf or
// JSON bodies, uncompressed, gzip or zstd. Each export request is
// translated as Prometheus 3 translates it (Translator) into an
// ingest.Request and written by the same ingest.Pipeline as remote write:
// the same tenant resolution, body limit, per-tenant limits, validation, HA
// de-duplication and durability.
//
// Answers follow the OTLP/HTTP specification:
//   - 200 with an ExportMetricsServiceResponse (in the request's encoding)
//     once everything stored is in the tenant's WAL; its partial_success
//     counts the data points rejected for their content (refused by the
//     translation, e.g. delta temporality or a name that cannot be
//     translated, or by the pipeline's validation and limits) and says why.
//   - 400 with a google.rpc.Status when the body is malformed, or when every
//     data point of the request was rejected: nothing is stored.
//   - 413 for a body over the limit (compressed or decompressed), 415 for an
//     unsupported Content-Type or Content-Encoding.
//   - 429 when the tenant's ingestion rate is exceeded and 503 when the
//     store cannot take the request (full disk, tenant unavailable, append
//     failure): nothing is stored, and the client retries, as the
//     specification's retryable codes say. Remote write's 500 is 503 here,
//     which OTLP clients retry.
package otlp

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"mime"
	"net/http"
	"strings"
	"time"

	"github.com/klauspost/compress/gzip"
	"github.com/klauspost/compress/zstd"
	"github.com/prometheus/client_golang/prometheus"
	"go.opentelemetry.io/collector/pdata/pmetric/pmetricotlp"
	"google.golang.org/genproto/googleapis/rpc/status"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"

	"github.com/strata-tsdb/strata/ingest"
	"github.com/strata-tsdb/strata/limits"
	"github.com/strata-tsdb/strata/remotewrite"
	"github.com/strata-tsdb/strata/tenant"
)

// Paths the receiver is served on.
const (
	Path           = "/otlp/v1/metrics"
	PrometheusPath = "/api/v1/otlp/v1/metrics"
)

// Content types of OTLP/HTTP.
const (
	contentTypeProtobuf = "application/x-protobuf"
	contentTypeJSON     = "application/json"
)

// ReasonTranslation is the reason label of the rejected-samples metric for
// data points the translation refused.
const ReasonTranslation = "otlp_translation"

// Options configure a Handler.
type Options struct {
	// Pipeline is the write path; required.
	Pipeline *ingest.Pipeline
	// Translator translates the requests; required. Its Decoders must be
	// among the pipeline's, for the requests HA keeps.
	Translator *Translator
	// MaxBodyBytes bounds both the compressed and the decompressed body,
	// as remote write's limit does; a tenant's max_request_body_bytes
	// overrides it.
	MaxBodyBytes int64
	Tenants      tenant.Resolver
	Limits       *limits.Overrides
	// Metrics are the ingest metrics shared with remote write; registered
	// on Registerer when nil.
	Metrics *remotewrite.Metrics

	Logger     *slog.Logger
	Registerer prometheus.Registerer
}

// Handler is the OTLP/HTTP metrics endpoint.
type Handler struct {
	opts   Options
	logger *slog.Logger
	zstd   *zstd.Decoder
}

// NewHandler returns the OTLP/HTTP metrics handler.
func NewHandler(opts Options) *Handler {
	if opts.MaxBodyBytes <= 0 {
		opts.MaxBodyBytes = remotewrite.DefaultMaxBodyBytes
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if opts.Registerer == nil {
		opts.Registerer = prometheus.NewRegistry()
	}
	if opts.Metrics == nil {
		opts.Metrics = remotewrite.NewMetrics(opts.Registerer)
	}
	// One decoder for every request: DecodeAll is safe for concurrent use.
	// Its memory bound is the largest limit; each request's own limit is
	// checked on the frame header and on the output.
	dec, err := zstd.NewReader(nil, zstd.WithDecoderConcurrency(0), zstd.WithDecoderLowmem(true))
	if err != nil {
		panic(fmt.Sprintf("zstd decoder: %v", err)) // only for invalid options
	}
	return &Handler{opts: opts, logger: opts.Logger, zstd: dec}
}

// Close releases the zstd decoder.
func (h *Handler) Close() { h.zstd.Close() }

// ServeHTTP implements http.Handler.
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	start := time.Now()
	code, id := h.serve(w, r)
	h.opts.Metrics.ObserveRequest(id, "otlp", code, start)
}

// serve answers the request and returns the status code it wrote and the
// tenant, when known.
func (h *Handler) serve(w http.ResponseWriter, r *http.Request) (int, string) {
	if r.Method != http.MethodPost {
		w.Header().Set("Allow", http.MethodPost)
		return h.fail(w, "", "", ingest.Errorf(http.StatusMethodNotAllowed, "method %s not allowed, use POST", r.Method)), ""
	}
	proto, herr := negotiate(r)
	if herr != nil {
		return h.fail(w, "", "", herr), ""
	}
	id, err := h.opts.Tenants.FromRequest(r)
	if err != nil {
		return h.fail(w, proto, "", &ingest.Error{Code: tenant.StatusCode(err), Err: err}), ""
	}
	body, herr := h.readBody(r, h.maxBody(id))
	if herr != nil {
		return h.fail(w, proto, id, herr), id
	}

	pipe := h.opts.Pipeline
	req := pipe.GetRequest()
	defer pipe.PutRequest(req)
	var tr translation
	if herr := h.opts.Translator.translate(r.Context(), body, proto, req, &tr); herr != nil {
		return h.fail(w, proto, id, herr), id
	}
	if tr.warnings != nil {
		ws, _ := tr.warnings.AsStrings("", 10, 0)
		h.logger.Debug("warnings translating OTLP metrics", "tenant", id, "warnings", ws)
	}
	if tr.points > 0 && tr.stored == 0 {
		// The translation refused every data point: the request is
		// invalid as a whole, and nothing of it (its target_info) is
		// stored.
		h.opts.Metrics.Record(id, &ingest.Result{Rejected: map[string]int{ReasonTranslation: tr.points}})
		return h.fail(w, proto, id, ingest.Errorf(http.StatusBadRequest, "%s", tr.message())), id
	}
	res := pipe.Write(r.Context(), id, req, func(kept *ingest.Result) { h.opts.Metrics.Record(id, kept) })
	translationRejected := tr.points - tr.stored
	if translationRejected > 0 {
		if res.Rejected == nil {
			res.Rejected = map[string]int{}
		}
		res.Rejected[ReasonTranslation] += translationRejected
	}
	h.opts.Metrics.Record(id, &res)
	return h.answer(w, proto, id, &tr, &res), id
}

// answer maps the pipeline's result to the OTLP answer and writes it.
func (h *Handler) answer(w http.ResponseWriter, proto, id string, tr *translation, res *ingest.Result) int {
	var msgs []string
	if m := tr.message(); m != "" {
		msgs = append(msgs, m)
	}
	if res.Err != nil {
		switch code := res.Err.Code; {
		case code == http.StatusAccepted:
			// A non-elected HA replica's request: not stored, and not to
			// be sent again. A success for the client.
			return h.ok(w, proto, 0, "")
		case code == http.StatusBadRequest && (len(res.Rejected) > 0 || res.Samples+res.Histograms+res.Exemplars > 0):
			// Invalid series (or exemplars), the valid rest stored: a
			// partial success, unless nothing was.
			msgs = append(msgs, res.Err.Error())
		case code >= 500:
			return h.fail(w, proto, id, &ingest.Error{Code: http.StatusServiceUnavailable, Err: res.Err.Err})
		default:
			return h.fail(w, proto, id, res.Err)
		}
	}
	rejected := tr.rejected(res.RejectedSeries)
	msg := strings.Join(msgs, "; ")
	if rejected == 0 {
		// Nothing rejected; a message (invalid exemplars) is a warning.
		return h.ok(w, proto, 0, msg)
	}
	if res.Samples+res.Histograms == 0 {
		// Nothing of the request was stored: it is invalid as a whole.
		return h.fail(w, proto, id, ingest.Errorf(http.StatusBadRequest, "%s", msg))
	}
	return h.ok(w, proto, rejected, msg)
}

// negotiate returns the Request.Proto of the request's Content-Type, and
// checks its Content-Encoding.
func negotiate(r *http.Request) (string, *ingest.Error) {
	ct := r.Header.Get("Content-Type")
	mt, _, err := mime.ParseMediaType(ct)
	if err != nil && ct != "" {
		return "", ingest.Errorf(http.StatusUnsupportedMediaType, "invalid Content-Type %q: %v", ct, err)
	}
	var proto string
	switch mt {
	case contentTypeProtobuf:
		proto = ProtoProtobuf
	case contentTypeJSON:
		proto = ProtoJSON
	default:
		return "", ingest.Errorf(http.StatusUnsupportedMediaType, "unsupported Content-Type %q, want %s or %s", ct, contentTypeProtobuf, contentTypeJSON)
	}
	switch enc := strings.ToLower(r.Header.Get("Content-Encoding")); enc {
	case "", "identity", "gzip", "zstd":
	default:
		return proto, ingest.Errorf(http.StatusUnsupportedMediaType, "unsupported Content-Encoding %q, want gzip, zstd or none", enc)
	}
	return proto, nil
}

// readBody reads and decompresses the request body within limit bytes,
// compressed and decompressed.
func (h *Handler) readBody(r *http.Request, limit int64) ([]byte, *ingest.Error) {
	if r.ContentLength > limit {
		return nil, ingest.Errorf(http.StatusRequestEntityTooLarge, "request body of %d bytes exceeds the limit of %d bytes", r.ContentLength, limit)
	}
	raw, err := io.ReadAll(http.MaxBytesReader(nil, r.Body, limit))
	if err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			return nil, ingest.Errorf(http.StatusRequestEntityTooLarge, "request body exceeds the limit of %d bytes", limit)
		}
		return nil, ingest.Errorf(http.StatusBadRequest, "read request body: %v", err)
	}
	switch strings.ToLower(r.Header.Get("Content-Encoding")) {
	case "gzip":
		gr, err := gzip.NewReader(bytes.NewReader(raw))
		if err != nil {
			return nil, ingest.Errorf(http.StatusBadRequest, "decode gzip body: %v", err)
		}
		return readLimited(gr, limit, "gzip")
	case "zstd":
		return h.unzstd(raw, limit)
	}
	return raw, nil
}

// readLimited reads a decompressing reader to its end, failing with 413
// as soon as more than limit bytes come out: the buffer never grows past
// the limit, whatever the compressed body claims.
func readLimited(r io.Reader, limit int64, what string) ([]byte, *ingest.Error) {
	b, err := io.ReadAll(io.LimitReader(r, limit+1))
	if err != nil {
		return nil, &ingest.Error{Code: http.StatusBadRequest, Err: fmt.Errorf("decode %s body: %w", what, err)}
	}
	if int64(len(b)) > limit {
		return nil, ingest.Errorf(http.StatusRequestEntityTooLarge, "decompressed request body exceeds the limit of %d bytes", limit)
	}
	return b, nil
}

// unzstd decompresses a zstd body. The size a frame declares is checked
// against the limit before anything is allocated; a frame that declares
// none is streamed within the limit.
func (h *Handler) unzstd(raw []byte, limit int64) ([]byte, *ingest.Error) {
	var hdr zstd.Header
	if err := hdr.Decode(raw); err != nil {
		return nil, ingest.Errorf(http.StatusBadRequest, "decode zstd body: %v", err)
	}
	if hdr.HasFCS && hdr.FrameContentSize > uint64(limit) {
		return nil, ingest.Errorf(http.StatusRequestEntityTooLarge, "decompressed request body of %d bytes exceeds the limit of %d bytes", hdr.FrameContentSize, limit)
	}
	// The window a frame asks for is allocated: at most the limit, or the
	// 8 MiB encoders use by default; the output is bounded by the limit.
	dec, err := zstd.NewReader(bytes.NewReader(raw), zstd.WithDecoderConcurrency(1), zstd.WithDecoderMaxMemory(uint64(max(limit, 8<<20))))
	if err != nil {
		return nil, ingest.Errorf(http.StatusBadRequest, "decode zstd body: %v", err)
	}
	defer dec.Close()
	b, herr := readLimited(dec, limit, "zstd")
	if herr != nil && (errors.Is(herr.Err, zstd.ErrDecoderSizeExceeded) || errors.Is(herr.Err, zstd.ErrWindowSizeExceeded)) {
		return nil, ingest.Errorf(http.StatusRequestEntityTooLarge, "decompressed request body exceeds the limit of %d bytes", limit)
	}
	return b, herr
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

// ok writes a 200 with an ExportMetricsServiceResponse, with a partial
// success when rejected > 0.
func (h *Handler) ok(w http.ResponseWriter, proto string, rejected int, msg string) int {
	resp := pmetricotlp.NewExportResponse()
	if rejected > 0 || msg != "" {
		ps := resp.PartialSuccess()
		ps.SetRejectedDataPoints(int64(rejected))
		ps.SetErrorMessage(msg)
	}
	var (
		b   []byte
		err error
	)
	if proto == ProtoJSON {
		b, err = resp.MarshalJSON()
	} else {
		b, err = resp.MarshalProto()
	}
	if err != nil {
		h.logger.Error("encode OTLP response", "err", err)
	}
	w.Header().Set("Content-Type", contentType(proto))
	w.WriteHeader(http.StatusOK)
	_, _ = w.Write(b)
	return http.StatusOK
}

func contentType(proto string) string {
	if proto == ProtoJSON {
		return contentTypeJSON
	}
	return contentTypeProtobuf
}

// fail answers e as the specification says: a google.rpc.Status in the
// request's encoding (plain text when it is not known).
func (h *Handler) fail(w http.ResponseWriter, format, id string, e *ingest.Error) int {
	if e.Code >= 500 {
		h.logger.Error("OTLP write failed", "tenant", id, "code", e.Code, "err", e.Err)
	} else {
		h.logger.Debug("OTLP write rejected", "tenant", id, "code", e.Code, "err", e.Err)
	}
	if format == "" {
		http.Error(w, e.Err.Error(), e.Code)
		return e.Code
	}
	st := &status.Status{Code: grpcCode(e.Code), Message: e.Err.Error()}
	var (
		b   []byte
		err error
	)
	if format == ProtoJSON {
		b, err = protojson.Marshal(st)
	} else {
		b, err = proto.Marshal(st)
	}
	if err != nil {
		http.Error(w, e.Err.Error(), e.Code)
		return e.Code
	}
	w.Header().Set("Content-Type", contentType(format))
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(e.Code)
	_, _ = w.Write(b)
	return e.Code
}

// grpcCode is the google.rpc.Code of an HTTP status, as gRPC maps them.
func grpcCode(httpCode int) int32 {
	switch httpCode {
	case http.StatusBadRequest, http.StatusRequestEntityTooLarge, http.StatusUnsupportedMediaType:
		return 3 // INVALID_ARGUMENT
	case http.StatusUnauthorized:
		return 16 // UNAUTHENTICATED
	case http.StatusForbidden:
		return 7 // PERMISSION_DENIED
	case http.StatusTooManyRequests:
		return 8 // RESOURCE_EXHAUSTED
	case http.StatusServiceUnavailable:
		return 14 // UNAVAILABLE
	case http.StatusMethodNotAllowed:
		return 12 // UNIMPLEMENTED
	}
	return 2 // UNKNOWN
}
