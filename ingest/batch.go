package ingest

import (
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"unicode/utf8"

	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/model/exemplar"
	"github.com/prometheus/prometheus/model/histogram"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/storage"

	"github.com/strata-tsdb/strata/limits"
)

// Rejection reasons, used in messages and as the reason label of the
// rejected-samples metric of receivers.
const (
	ReasonInvalidLabels   = "invalid_labels"
	ReasonOutOfOrder      = "out_of_order"
	ReasonTooOld          = "too_old"
	ReasonFuture          = "too_far_in_future"
	ReasonDuplicate       = "duplicate_timestamp"
	ReasonHistogram       = "invalid_histogram"
	ReasonNoSamples       = "no_samples"
	ReasonInvalidMeta     = "invalid_metadata"
	ReasonInvalidExemplar = "invalid_exemplar"
)

// MaxReportedErrors bounds how many invalid series one 400 message names.
const MaxReportedErrors = 10

// Result is what one request wrote, and why it failed if it did.
type Result struct {
	Samples, Histograms, Exemplars int
	Rejected                       map[string]int // samples rejected, by reason
	// RejectedSeries are the indices into Request.Series of the series
	// with samples or histograms rejected for their content, in order,
	// when the Request asked for them (TrackRejected): OTLP counts the
	// data points they came from.
	RejectedSeries []int
	Err            *Error
}

// Error is a request's failure and the HTTP status it is answered with,
// which says what the sender does: 202 (not stored, not to be resent: a
// non-elected HA replica's), 400 (invalid series or body; the valid rest is
// stored), 413, 415, 429 (resent later), 5xx (transient; nothing stored,
// resent).
type Error struct {
	Code int
	Err  error
}

func (e *Error) Error() string { return e.Err.Error() }
func (e *Error) Unwrap() error { return e.Err }

// Errorf returns an Error of status code.
func Errorf(code int, format string, args ...any) *Error {
	return &Error{Code: code, Err: fmt.Errorf(format, args...)}
}

// batch appends one request's series to a tenant appender, collecting the
// invalid ones so that the valid rest is committed and the request answered
// with 400 naming the invalid ones, as Prometheus's receiver does.
type batch struct {
	app     storage.AppenderV2
	exApp   storage.ExemplarAppenderV2 // nil when the store keeps no exemplars
	maxTime int64
	res     *Result
	bad     []string
	nBad    int
	b       labels.ScratchBuilder
	exs     []exemplar.Exemplar
	adm     admission // the tenant's limits (admit.go)
	// cur is the index of the series being appended; track records the
	// series with rejected samples in res.RejectedSeries.
	cur   int
	track bool
}

func newBatch(app storage.AppenderV2, maxTime int64, res *Result) *batch {
	ba := &batch{app: app, maxTime: maxTime, res: res, b: labels.NewScratchBuilder(16)}
	ba.exApp, _ = app.(storage.ExemplarAppenderV2)
	return ba
}

// reject records that n samples of series were not stored for reason.
func (ba *batch) reject(reason string, n int, format string, args ...any) {
	if ba.res.Rejected == nil {
		ba.res.Rejected = map[string]int{}
	}
	ba.res.Rejected[reason] += n
	if ba.track && n > 0 {
		if rs := ba.res.RejectedSeries; len(rs) == 0 || rs[len(rs)-1] != ba.cur {
			ba.res.RejectedSeries = append(rs, ba.cur)
		}
	}
	ba.nBad++
	if len(ba.bad) < MaxReportedErrors {
		ba.bad = append(ba.bad, fmt.Sprintf(format, args...))
	}
}

// badRequest returns the 400 error for the invalid series, or nil if there were none.
func (ba *batch) badRequest() *Error {
	if ba.nBad == 0 {
		return nil
	}
	msg := strings.Join(ba.bad, "; ")
	if more := ba.nBad - len(ba.bad); more > 0 {
		msg += fmt.Sprintf("; and %d more", more)
	}
	return &Error{Code: http.StatusBadRequest, Err: errors.New(msg)}
}

// addLabel adds one label of a series being decoded. Labels with an empty
// value are dropped: in Prometheus's data model they are the same as absent.
func (ba *batch) addLabel(name, value string) {
	if value != "" && (ba.adm.dropLabel == "" || name != ba.adm.dropLabel) {
		ba.b.Add(name, value)
	}
}

// labels returns the series built with addLabel after checking it against the
// remote-write rules: a non-empty metric name, valid UTF-8 names and values,
// and label names sorted and unique. Sorting is the sender's duty; a receiver
// that sorted silently would hide a sender bug that also breaks other receivers.
func (ba *batch) labels() (labels.Labels, error) {
	ls := ba.b.Labels()
	var (
		prev    string
		first   = true
		hasName bool
		err     error
	)
	ls.Range(func(l labels.Label) {
		if err != nil {
			return
		}
		switch {
		case !model.UTF8Validation.IsValidLabelName(l.Name):
			err = fmt.Errorf("invalid label name %q", l.Name)
		case !utf8.ValidString(l.Value):
			err = fmt.Errorf("invalid UTF-8 in value of label %q", l.Name)
		case !first && l.Name == prev:
			err = fmt.Errorf("duplicate label name %q", l.Name)
		case !first && l.Name < prev:
			err = fmt.Errorf("label names not sorted (%q after %q)", l.Name, prev)
		}
		if l.Name == model.MetricNameLabel {
			hasName = true
		}
		prev, first = l.Name, false
	})
	if err == nil && !hasName {
		err = errors.New("missing metric name")
	}
	return ls, err
}

// series resolves and validates the labels of series s of req, and checks
// it against the tenant's limits and the request's rules. It rejects the
// series and returns false when it is not to be stored.
func (ba *batch) series(req *Request, s *Series) (labels.Labels, bool) {
	n := s.count()
	refs := req.Refs[s.Labels.Lo:s.Labels.Hi]
	if len(refs)%2 != 0 {
		ba.reject(ReasonInvalidLabels, n, "series with label references %v: odd number of references", refs)
		return labels.EmptyLabels(), false
	}
	ba.b.Reset()
	for i := 0; i < len(refs); i += 2 {
		name, ok1 := req.symbol(refs[i])
		value, ok2 := req.symbol(refs[i+1])
		if !ok1 || !ok2 {
			ba.reject(ReasonInvalidLabels, n, "series with label references %v: reference outside the symbols table (size %d)", refs, len(req.Symbols))
			return labels.EmptyLabels(), false
		}
		ba.addLabel(name, value)
	}
	ls, err := ba.labels()
	if err != nil {
		ba.reject(ReasonInvalidLabels, n, "invalid series %s: %v", ls.String(), err)
		return ls, false
	}
	if !ba.withinLimits(ls, n) {
		return ls, false
	}
	if req.RejectEmpty && n == 0 {
		ba.reject(ReasonNoSamples, 0, "series %s has no samples or histograms", ls.String())
		return ls, false
	}
	// Metadata referring outside the symbols table makes the series
	// malformed, as it does in Prometheus's receiver.
	if err := req.checkMeta(&s.Meta); err != nil {
		ba.reject(ReasonInvalidMeta, n, "invalid metadata of series %s: %v", ls.String(), err)
		return ls, false
	}
	return ls, true
}

// samples appends the samples, histograms and exemplars of series s,
// starting with the series reference ref (0 when unknown). It returns the
// series' reference, and an error only for a store failure that must fail
// the whole request.
func (ba *batch) samples(req *Request, s *Series, ls labels.Labels, ref storage.SeriesRef) (storage.SeriesRef, error) {
	var err error
	for _, smp := range req.Samples[s.Samples.Lo:s.Samples.Hi] {
		if ref, err = ba.appendSample(ref, ls, smp.ST, smp.T, smp.V, nil, nil); err != nil {
			return ref, err
		}
	}
	for i := s.Histograms.Lo; i < s.Histograms.Hi; i++ {
		h := &req.Histograms[i]
		if ref, err = ba.appendSample(ref, ls, h.ST, h.T, 0, h.H, h.FH); err != nil {
			return ref, err
		}
	}
	if s.Exemplars.Len() == 0 {
		return ref, nil
	}
	ba.exs = ba.exs[:0]
	for i := s.Exemplars.Lo; i < s.Exemplars.Hi; i++ {
		e := &req.Exemplars[i]
		els, err := req.exemplarLabels(&ba.b, e)
		if err != nil {
			ba.reject(ReasonInvalidExemplar, 0, "exemplar of series %s: %v", ls.String(), err)
			continue
		}
		ba.exs = append(ba.exs, exemplar.Exemplar{Labels: els, Value: e.V, Ts: e.T, HasTs: e.HasT})
	}
	ba.appendExemplars(ref, ls)
	return ref, nil
}

// exemplarLabels returns the labels of exemplar e, sorted, as remote write
// 2.0's codec resolves them.
func (r *Request) exemplarLabels(b *labels.ScratchBuilder, e *Exemplar) (labels.Labels, error) {
	refs := r.Refs[e.Labels.Lo:e.Labels.Hi]
	if len(refs)%2 != 0 {
		return labels.EmptyLabels(), fmt.Errorf("invalid labelRefs length %d", len(refs))
	}
	b.Reset()
	for i := 0; i < len(refs); i += 2 {
		n, v := refs[i], refs[i+1]
		if int(n) >= len(r.Symbols) || int(v) >= len(r.Symbols) {
			return labels.EmptyLabels(), fmt.Errorf("labelRefs %d (name) = %d (value) outside of symbols table (size %d)", n, v, len(r.Symbols))
		}
		b.Add(r.Symbols[n], r.Symbols[v])
	}
	b.Sort()
	return b.Labels(), nil
}

// classify maps a store error for one sample to a rejection reason, or ""
// when the error is not the sample's fault and the request must fail with 5xx.
func classify(err error) string {
	switch {
	case errors.Is(err, storage.ErrOutOfOrderSample):
		return ReasonOutOfOrder
	case errors.Is(err, storage.ErrTooOldSample), errors.Is(err, storage.ErrOutOfBounds):
		return ReasonTooOld
	case errors.Is(err, storage.ErrDuplicateSampleForTimestamp):
		return ReasonDuplicate
	}
	var he histogram.Error
	if errors.As(err, &he) {
		return ReasonHistogram
	}
	var le *limits.Error
	if errors.As(err, &le) {
		return le.Limit
	}
	return ""
}

// appendSample appends one float or histogram sample. It returns the series
// reference and a non-nil error only for failures that must fail the request.
func (ba *batch) appendSample(ref storage.SeriesRef, ls labels.Labels, st, t int64, v float64, h *histogram.Histogram, fh *histogram.FloatHistogram) (storage.SeriesRef, error) {
	if ba.haCovered(t) {
		return ref, nil // stored from the previously elected HA replica
	}
	if t > ba.maxTime {
		ba.reject(ReasonFuture, 1, "sample timestamp %d is too far in the future for series %s", t, ls.String())
		return ref, nil
	}
	newRef, err := ba.app.Append(ref, ls, st, t, v, h, fh, storage.AppendV2Options{})
	if err != nil && !errors.Is(err, (*storage.AppendPartialError)(nil)) {
		reason := classify(err)
		if reason == "" {
			return ref, err
		}
		ba.reject(reason, 1, "%v at timestamp %d for series %s", err, t, ls.String())
		return ref, nil
	}
	if h != nil || fh != nil {
		ba.res.Histograms++
	} else {
		ba.res.Samples++
	}
	return newRef, nil
}

// appendExemplars appends the exemplars gathered in ba.exs for series ls.
// ref is 0 when this request appended no sample to the series: its
// exemplars still belong to a series stored before (Prometheus's 1.0
// sender puts samples and exemplars of a series in separate entries), and
// the store finds it by its labels. Exemplars are best effort, as in
// Prometheus: a failure is counted, never a reason to fail the request.
func (ba *batch) appendExemplars(ref storage.SeriesRef, ls labels.Labels) {
	if len(ba.exs) == 0 || ba.exApp == nil {
		return
	}
	ba.limitExemplars(ls)
	valid := ba.exs[:0]
	for _, e := range ba.exs {
		if e.Ts <= ba.maxTime {
			valid = append(valid, e)
		}
	}
	slices.SortFunc(valid, exemplar.Compare)
	_, err := ba.exApp.AppendExemplars(ref, ls, valid)
	failed := 0
	if err != nil {
		var pe *storage.AppendPartialError
		if errors.As(err, &pe) {
			failed = len(pe.ExemplarErrors)
		} else {
			failed = len(valid)
		}
	}
	ba.res.Exemplars += len(valid) - failed
}

// finish commits the batch, or rolls it back when appendErr is set.
func (ba *batch) finish(appendErr error) {
	if appendErr != nil {
		_ = ba.app.Rollback()
		*ba.res = Result{Err: &Error{Code: http.StatusInternalServerError, Err: fmt.Errorf("append to store: %w", appendErr)}}
		return
	}
	if err := ba.app.Commit(); err != nil {
		// A store that forwards (a distributor's) reports the samples its
		// ingesters rejected at Commit, as a 4xx *Error: the valid rest is
		// stored, as for rejections at Append. Its other errors carry the
		// status to answer (503 without a quorum).
		var se *Error
		if errors.As(err, &se) && se.Code/100 == 4 {
			if bad := ba.badRequest(); bad != nil && se.Code == http.StatusBadRequest {
				se = &Error{Code: se.Code, Err: fmt.Errorf("%w; %w", bad.Err, se.Err)}
			}
			ba.res.Err = se
			return
		}
		code := http.StatusInternalServerError
		if errors.As(err, &se) {
			code = se.Code
		}
		*ba.res = Result{Err: &Error{Code: code, Err: fmt.Errorf("commit to store: %w", err)}}
		return
	}
	ba.res.Err = ba.badRequest()
}
