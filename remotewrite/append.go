package remotewrite

import (
	"context"
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

// Rejection reasons, used in messages and as the reason label of
// strata_remote_write_samples_rejected_total.
const (
	reasonInvalidLabels = "invalid_labels"
	reasonOutOfOrder    = "out_of_order"
	reasonTooOld        = "too_old"
	reasonFuture        = "too_far_in_future"
	reasonDuplicate     = "duplicate_timestamp"
	reasonHistogram     = "invalid_histogram"
	reasonNoSamples     = "no_samples"
	reasonInvalidMeta   = "invalid_metadata"
)

// maxReportedErrors bounds how many invalid series one 400 message names.
const maxReportedErrors = 10

// result is what one request wrote and why it failed, if it did.
type result struct {
	samples, histograms, exemplars int
	rejected                       map[string]int // samples rejected, by reason
	err                            *httpError
}

// batch appends one request's series to a tenant appender, collecting the
// invalid ones so that the valid rest is committed and the request answered
// with 400 naming the invalid ones, as Prometheus's receiver does.
type batch struct {
	app     storage.AppenderV2
	exApp   storage.ExemplarAppenderV2 // nil when the store keeps no exemplars
	maxTime int64
	res     *result
	bad     []string
	nBad    int
	b       labels.ScratchBuilder
	exs     []exemplar.Exemplar
	adm     admission // the tenant's limits (limits.go)
}

func newBatch(app storage.AppenderV2, maxTime int64, res *result) *batch {
	ba := &batch{app: app, maxTime: maxTime, res: res, b: labels.NewScratchBuilder(16)}
	ba.exApp, _ = app.(storage.ExemplarAppenderV2)
	return ba
}

// reject records that n samples of series were not stored for reason.
func (ba *batch) reject(reason string, n int, format string, args ...any) {
	if ba.res.rejected == nil {
		ba.res.rejected = map[string]int{}
	}
	ba.res.rejected[reason] += n
	ba.nBad++
	if len(ba.bad) < maxReportedErrors {
		ba.bad = append(ba.bad, fmt.Sprintf(format, args...))
	}
}

// badRequest returns the 400 error for the invalid series, or nil if there were none.
func (ba *batch) badRequest() *httpError {
	if ba.nBad == 0 {
		return nil
	}
	msg := strings.Join(ba.bad, "; ")
	if more := ba.nBad - len(ba.bad); more > 0 {
		msg += fmt.Sprintf("; and %d more", more)
	}
	return &httpError{code: http.StatusBadRequest, err: errors.New(msg)}
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

// classify maps a store error for one sample to a rejection reason, or ""
// when the error is not the sample's fault and the request must fail with 5xx.
func classify(err error) string {
	switch {
	case errors.Is(err, storage.ErrOutOfOrderSample):
		return reasonOutOfOrder
	case errors.Is(err, storage.ErrTooOldSample), errors.Is(err, storage.ErrOutOfBounds):
		return reasonTooOld
	case errors.Is(err, storage.ErrDuplicateSampleForTimestamp):
		return reasonDuplicate
	}
	var he histogram.Error
	if errors.As(err, &he) {
		return reasonHistogram
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
		ba.reject(reasonFuture, 1, "sample timestamp %d is too far in the future for series %s", t, ls.String())
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
		ba.res.histograms++
	} else {
		ba.res.samples++
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
	ba.res.exemplars += len(valid) - failed
}

// finish commits the batch, or rolls it back when appendErr is set.
func (ba *batch) finish(appendErr error) {
	if appendErr != nil {
		_ = ba.app.Rollback()
		*ba.res = result{err: &httpError{code: http.StatusInternalServerError, err: fmt.Errorf("append to store: %w", appendErr)}}
		return
	}
	if err := ba.app.Commit(); err != nil {
		*ba.res = result{err: &httpError{code: http.StatusInternalServerError, err: fmt.Errorf("commit to store: %w", err)}}
		return
	}
	ba.res.err = ba.badRequest()
}

// appender opens the tenant's appender. A limit the store holds (such as
// its number of tenants) is answered 400, as the series limits are: the
// request cannot succeed until an operator raises it. Any other failure
// (a full disk, a tenant that cannot open) is transient: 503.
func (h *Handler) appender(ctx context.Context, id string) (storage.AppenderV2, *httpError) {
	app, err := h.store.Appender(ctx, id)
	if err != nil {
		var le *limits.Error
		if errors.As(err, &le) {
			return nil, &httpError{code: http.StatusBadRequest, err: err}
		}
		return nil, &httpError{code: http.StatusServiceUnavailable, err: fmt.Errorf("open store of tenant %q: %w", id, err)}
	}
	return app, nil
}
