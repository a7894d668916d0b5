package blocks

import (
	"math"

	"github.com/prometheus/prometheus/model/exemplar"
	"github.com/prometheus/prometheus/model/histogram"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/storage"
)

// ChangeObserver is told of every change to a tenant's data that queries
// see, once they see it, with the time range it touches: what a cache of
// query results (package frontend) needs to drop what the change makes
// stale. Calls are synchronous: a write is acknowledged after its commit's
// call returns.
type ChangeObserver interface {
	// Committed is called after a commit of samples (remote write, rule
	// results) with the range of their timestamps.
	Committed(tenant string, mint, maxt int64)
	// BucketChanged is called when a block with data in [mint, maxt]
	// enters or leaves the bucket view queries read: blocks merged,
	// downsampled, deleted by retention or by hand, or written by another
	// process. Blocks this process ships are not reported: they hold what
	// the head or local blocks served already.
	BucketChanged(tenant string, mint, maxt int64)
}

// observed returns app reporting its committed range to obs.
func observed(app storage.AppenderV2, tenant string, obs ChangeObserver) storage.AppenderV2 {
	oa := &observingAppender{AppenderV2: app, tenant: tenant, obs: obs, mint: math.MaxInt64, maxt: math.MinInt64}
	if ea, ok := app.(storage.ExemplarAppenderV2); ok {
		return observingExemplarAppender{oa, ea}
	}
	return oa
}

type observingAppender struct {
	storage.AppenderV2
	tenant     string
	obs        ChangeObserver
	mint, maxt int64
}

func (a *observingAppender) Append(ref storage.SeriesRef, ls labels.Labels, st, t int64, v float64, h *histogram.Histogram, fh *histogram.FloatHistogram, opts storage.AppendV2Options) (storage.SeriesRef, error) {
	// Counted whatever the error: a partial error stores the sample, and a
	// range too wide only invalidates more.
	a.mint, a.maxt = min(a.mint, t), max(a.maxt, t)
	return a.AppenderV2.Append(ref, ls, st, t, v, h, fh, opts)
}

func (a *observingAppender) Commit() error {
	err := a.AppenderV2.Commit()
	if err == nil && a.mint <= a.maxt {
		a.obs.Committed(a.tenant, a.mint, a.maxt)
	}
	return err
}

type observingExemplarAppender struct {
	*observingAppender
	ea storage.ExemplarAppenderV2
}

// AppendExemplars implements storage.ExemplarAppenderV2.
func (a observingExemplarAppender) AppendExemplars(ref storage.SeriesRef, ls labels.Labels, es []exemplar.Exemplar) (storage.SeriesRef, error) {
	return a.ea.AppendExemplars(ref, ls, es)
}
