// Package ingest is Strata's one write path. A write of any protocol,
// decoded into a Request, is admitted as a whole (per-tenant rate limit, HA
// de-duplication), then validated series by series and appended to the
// tenant's store by one loop (Pipeline.Write), whichever protocol and
// decoder produced it: remote write 1.0 and 2.0 (package ingest/rwproto),
// OTLP (package otlp, whose translator appends into a Request), and what
// comes next (a distributor forwarding Requests) the same way. Receivers
// decode, call Write and map its Result to their answer.
//
// Invariants:
//   - Write returns a Result without error only once every sample it counts
//     is in the tenant's WAL (the store's appender Commit returned).
//   - Invalid series are rejected one by one, the valid rest is stored, and
//     the Result names the invalid ones (400); a store failure stores
//     nothing of the request (5xx), so that the sender retries it whole.
//   - Nothing Write keeps outlives the request's body unless copied: a
//     Request's strings may point into the body, which the receiver reuses.
package ingest

import (
	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/model/histogram"
)

// Request is one write request, decoded. Every string of the request is in
// Symbols, and labels (series' and exemplars') are name, value pairs of
// indices into it, as remote write 2.0 sends them; a decoder of a protocol
// that sends strings appends each to Symbols. Strings may point into the
// request's body (Body).
//
// A Request is reused (Reset) between requests: decoders append to its
// slices.
type Request struct {
	// Proto names the protocol the Request was decoded from; HA keeps the
	// Body of a request it may replay, and decodes it again with the
	// pipeline's decoder of Proto.
	Proto string
	// Body is the decoded body the strings point into.
	Body []byte

	Symbols    []string
	Refs       []uint32 // label pairs of series and exemplars
	Series     []Series
	Samples    []Sample
	Histograms []Histogram
	Exemplars  []Exemplar
	// Families is request-wide metadata (remote write 1.0), stored for
	// the families it names.
	Families []FamilyMetadata
	// RejectEmpty rejects series without samples or histograms (remote
	// write 2.0). Remote write 1.0 senders send a series' exemplars in an
	// entry of their own, without samples.
	RejectEmpty bool
	// TrackRejected asks for Result.RejectedSeries.
	TrackRejected bool

	// Scratch of the pipeline, kept with the Request for reuse.
	symHashes []uint64 // stringHash of each symbol; 0 when not computed yet
	rb        refBatch
	valid     []validSeries
	metaSeen  map[familyMetadata]struct{}
	metaRefs  map[metadataRefs]struct{}
}

// Span is a range [Lo, Hi) of one of a Request's slices.
type Span struct{ Lo, Hi int }

// Len is the number of elements of the span.
func (s Span) Len() int { return s.Hi - s.Lo }

// Series is one series of a Request: spans of its label references (name,
// value pairs) and of its samples, histograms and exemplars, and the
// metadata it carries (remote write 2.0).
type Series struct {
	Labels     Span
	Samples    Span
	Histograms Span
	Exemplars  Span
	Meta       Metadata
}

// Metadata is the metadata a series carries: its type and the symbols of
// its help and unit (0, the empty string, when absent).
type Metadata struct {
	Type             model.MetricType // "" for unknown
	HelpRef, UnitRef uint32
}

// Sample is a float sample; ST is its start (created) timestamp, 0 when
// unknown.
type Sample struct {
	ST, T int64
	V     float64
}

// Histogram is a native histogram sample: integer (H) or float (FH).
type Histogram struct {
	ST, T int64
	H     *histogram.Histogram
	FH    *histogram.FloatHistogram
}

// Exemplar is an exemplar of a series; Labels span name, value pairs of
// Refs.
type Exemplar struct {
	Labels Span
	V      float64
	T      int64
	HasT   bool
}

// FamilyMetadata is request-wide metadata of one metric family.
type FamilyMetadata struct {
	Family     string
	Type       model.MetricType
	Help, Unit string
}

// Reset empties r for reuse, dropping its references into the last body.
func (r *Request) Reset() {
	clear(r.Symbols)
	clear(r.Histograms)
	clear(r.Families)
	r.Proto, r.Body = "", nil
	r.Symbols, r.Refs, r.Series = r.Symbols[:0], r.Refs[:0], r.Series[:0]
	r.Samples, r.Histograms, r.Exemplars, r.Families = r.Samples[:0], r.Histograms[:0], r.Exemplars[:0], r.Families[:0]
	r.RejectEmpty, r.TrackRejected = false, false
	r.rb.reset()
	clear(r.valid)
	r.valid = r.valid[:0]
	clear(r.metaSeen)
	clear(r.metaRefs)
}

// AddSymbol appends s to the symbols and returns its reference.
func (r *Request) AddSymbol(s string) uint32 {
	r.Symbols = append(r.Symbols, s)
	return uint32(len(r.Symbols) - 1)
}

// AddLabel appends the pair name, value as two new symbols.
func (r *Request) AddLabel(name, value string) {
	r.Refs = append(r.Refs, r.AddSymbol(name), r.AddSymbol(value))
}

// symbol returns Symbols[ref], or false when ref is outside the table.
func (r *Request) symbol(ref uint32) (string, bool) {
	if int(ref) >= len(r.Symbols) {
		return "", false
	}
	return r.Symbols[ref], true
}

// count returns the samples and histograms of series s.
func (s *Series) count() int { return s.Samples.Len() + s.Histograms.Len() }

// maxPooledSeries bounds the requests kept for reuse, so that one huge
// request does not pin its buffers.
const maxPooledSeries = 1 << 16

// Pooled reports whether r is small enough to be kept for reuse.
func (r *Request) Pooled() bool { return cap(r.Series) <= maxPooledSeries }
