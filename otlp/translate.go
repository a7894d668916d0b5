package otlp

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/common/model"
	"github.com/prometheus/otlptranslator"
	"github.com/prometheus/prometheus/config"
	"github.com/prometheus/prometheus/model/histogram"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/storage"
	prw "github.com/prometheus/prometheus/storage/remote/otlptranslator/prometheusremotewrite"
	"github.com/prometheus/prometheus/util/annotations"
	"go.opentelemetry.io/collector/pdata/pmetric"
	"go.opentelemetry.io/collector/pdata/pmetric/pmetricotlp"

	"github.com/strata-tsdb/strata/ingest"
)

// Request.Proto of OTLP bodies: the pipeline keeps the decompressed body of
// a request HA may replay, and decodes it again by this name.
const (
	ProtoProtobuf = "otlp/protobuf"
	ProtoJSON     = "otlp/json"
)

// Translator turns OTLP metrics export requests into ingest.Requests with
// the translation Prometheus 3 itself uses (its prometheusremotewrite
// package over github.com/prometheus/otlptranslator): the converter appends
// to an appender that records each sample into the Request instead of a
// TSDB, and the pipeline validates and stores the Request as it does remote
// write's.
type Translator struct {
	settings prw.Settings
	delta    bool // delta temporality accepted (DeltaNative)
	pool     sync.Pool
}

// NewTranslator returns the translator of cfg; lookbackDelta is the query
// engine's, which spaces the target_info samples as in Prometheus.
func NewTranslator(cfg Config, lookbackDelta time.Duration) *Translator {
	strategy := otlptranslator.TranslationStrategyOption(cfg.TranslationStrategy)
	t := &Translator{
		settings: prw.Settings{
			AddMetricSuffixes: strategy.ShouldAddSuffixes(),
			AllowUTF8:         !strategy.ShouldEscape(),
			PromoteResourceAttributes: prw.NewPromoteResourceAttributes(config.OTLPConfig{
				PromoteAllResourceAttributes: cfg.PromoteAllResourceAttributes,
				PromoteResourceAttributes:    cfg.PromoteResourceAttributes,
				IgnoreResourceAttributes:     cfg.IgnoreResourceAttributes,
			}),
			KeepIdentifyingResourceAttributes:    cfg.KeepIdentifyingResourceAttributes,
			ConvertHistogramsToNHCB:              cfg.ConvertHistogramsToNHCB,
			PromoteScopeMetadata:                 cfg.PromoteScopeMetadata,
			AllowDeltaTemporality:                cfg.DeltaTemporality == DeltaNative,
			LookbackDelta:                        lookbackDelta,
			LabelNameUnderscoreSanitization:      cfg.LabelNameUnderscoreSanitization,
			LabelNamePreserveMultipleUnderscores: cfg.LabelNamePreserveMultipleUnderscores,
		},
		delta: cfg.DeltaTemporality == DeltaNative,
	}
	t.pool.New = func() any { return prw.NewPrometheusConverter(nil) }
	return t
}

// Decoders returns the decoders of the OTLP bodies HA keeps, by
// Request.Proto, for ingest.Options.Decoders.
func (t *Translator) Decoders() map[string]ingest.Decoder {
	dec := func(proto string) ingest.Decoder {
		return func(body []byte, req *ingest.Request) *ingest.Error {
			var tr translation
			return t.translate(context.Background(), body, proto, req, &tr)
		}
	}
	return map[string]ingest.Decoder{ProtoProtobuf: dec(ProtoProtobuf), ProtoJSON: dec(ProtoJSON)}
}

// unmarshal decodes an export request of proto.
func unmarshal(body []byte, proto string) (pmetric.Metrics, error) {
	req := pmetricotlp.NewExportRequest()
	var err error
	if proto == ProtoJSON {
		err = req.UnmarshalJSON(body)
	} else {
		err = req.UnmarshalProto(body)
	}
	return req.Metrics(), err
}

// translation is what translating one request found, beyond the Request.
type translation struct {
	// points is the number of OTLP data points in the request; stored is
	// the number that gave the Request at least one sample.
	points, stored int
	// point[i] is the index (in the order of translation) of the data
	// point series i of the Request came from, -1 for target_info.
	point []int32
	// errs are the translator's errors: metrics or resources it refused.
	errs []error
	// delta names metrics refused for their delta temporality.
	delta    []string
	warnings annotations.Annotations
}

// rejected returns the data points of the request not stored: those the
// translator refused and those with a series the pipeline rejected.
func (tr *translation) rejected(rejectedSeries []int) int {
	n := tr.points - tr.stored
	last := int32(-1)
	for _, i := range rejectedSeries {
		if i >= len(tr.point) {
			continue
		}
		if p := tr.point[i]; p >= 0 && p != last {
			n++
			last = p
		}
	}
	return max(n, 0)
}

// message describes the translator's refusals, at most maxErrors of them.
func (tr *translation) message() string {
	const maxErrors = 10
	var msgs []string
	if len(tr.delta) > 0 {
		names := tr.delta
		if len(names) > maxErrors {
			names = names[:maxErrors]
		}
		msgs = append(msgs, fmt.Sprintf("metrics of delta temporality are refused (-otlp.delta-temporality=%s; send cumulative temporality): %s", DeltaReject, strings.Join(names, ", ")))
	}
	n := 0
	for _, err := range tr.errs {
		if len(tr.delta) > 0 && strings.Contains(err.Error(), "invalid temporality and type combination") {
			continue
		}
		if n++; n <= maxErrors {
			msgs = append(msgs, err.Error())
		}
	}
	if n > maxErrors {
		msgs = append(msgs, fmt.Sprintf("and %d more", n-maxErrors))
	}
	return strings.Join(msgs, "; ")
}

// translate decodes body (an export request of proto) and translates it
// into req. A malformed body is a 400 and leaves nothing in req; the
// metrics the translator refuses are left out and described in tr.
func (t *Translator) translate(ctx context.Context, body []byte, proto string, req *ingest.Request, tr *translation) *ingest.Error {
	md, err := unmarshal(body, proto)
	if err != nil {
		return ingest.Errorf(http.StatusBadRequest, "decode OTLP %s body: %v", strings.TrimPrefix(proto, "otlp/"), err)
	}
	tr.points, tr.delta = t.scan(md)
	req.Proto, req.Body = proto, body
	req.TrackRejected = true
	if len(req.Symbols) == 0 {
		req.AddSymbol("") // reference 0: no help, no unit
	}
	c := t.pool.Get().(*prw.PrometheusConverter)
	app := &collector{req: req, tr: tr, helps: map[string]uint32{}}
	c.Reset(app)
	tr.warnings, err = c.FromMetrics(ctx, md, t.settings)
	c.Reset(nil)
	t.pool.Put(c)
	if err != nil {
		if ctxErr := ctx.Err(); ctxErr != nil {
			return &ingest.Error{Code: http.StatusServiceUnavailable, Err: fmt.Errorf("translate OTLP metrics: %w", ctxErr)}
		}
		if j, ok := err.(interface{ Unwrap() []error }); ok {
			tr.errs = j.Unwrap()
		} else {
			tr.errs = []error{err}
		}
	}
	tr.stored = app.stored
	return nil
}

// scan counts the data points of md and names the metrics of delta
// temporality the translator will refuse.
func (t *Translator) scan(md pmetric.Metrics) (points int, delta []string) {
	rms := md.ResourceMetrics()
	for i := range rms.Len() {
		sms := rms.At(i).ScopeMetrics()
		for j := range sms.Len() {
			ms := sms.At(j).Metrics()
			for k := range ms.Len() {
				m := ms.At(k)
				temporality := pmetric.AggregationTemporalityUnspecified
				switch m.Type() {
				case pmetric.MetricTypeGauge:
					points += m.Gauge().DataPoints().Len()
				case pmetric.MetricTypeSum:
					points += m.Sum().DataPoints().Len()
					temporality = m.Sum().AggregationTemporality()
				case pmetric.MetricTypeHistogram:
					points += m.Histogram().DataPoints().Len()
					temporality = m.Histogram().AggregationTemporality()
				case pmetric.MetricTypeExponentialHistogram:
					points += m.ExponentialHistogram().DataPoints().Len()
					temporality = m.ExponentialHistogram().AggregationTemporality()
				case pmetric.MetricTypeSummary:
					points += m.Summary().DataPoints().Len()
				}
				if temporality == pmetric.AggregationTemporalityDelta && !t.delta {
					delta = append(delta, m.Name())
				}
			}
		}
	}
	return points, delta
}

// collector is the appender the translator appends to: it records every
// sample, with its exemplars and metadata, as a series of one sample of the
// Request, and which OTLP data point it came from. It stores nothing.
type collector struct {
	req *ingest.Request
	tr  *translation
	// helps interns help and unit strings: every sample of a metric
	// carries the same.
	helps map[string]uint32

	// The data point of the last sample: the samples of one data point
	// (a classic histogram's or a summary's series) follow each other with
	// the same family, timestamp and labels but for the name, le and
	// quantile.
	started    bool
	lastFamily string
	lastT      int64
	lastHash   uint64
	ordinal    int32
	stored     int
	hashBuf    []byte
}

var _ storage.AppenderV2 = (*collector)(nil)

func (c *collector) symbol(s string) uint32 {
	if s == "" {
		return 0
	}
	if ref, ok := c.helps[s]; ok {
		return ref
	}
	ref := c.req.AddSymbol(s)
	c.helps[s] = ref
	return ref
}

// isTargetInfo reports whether opts are those of the translator's
// target_info samples, which come from a resource, not a data point.
func isTargetInfo(opts *storage.AppendV2Options) bool {
	return opts.Metadata.Type == model.MetricTypeGauge && opts.Metadata.Help == "Target metadata" &&
		strings.HasSuffix(opts.MetricFamilyName, "target_info")
}

// Append implements storage.AppenderV2.
func (c *collector) Append(_ storage.SeriesRef, ls labels.Labels, st, t int64, v float64, h *histogram.Histogram, fh *histogram.FloatHistogram, opts storage.AppendV2Options) (storage.SeriesRef, error) {
	req := c.req
	s := ingest.Series{Labels: ingest.Span{Lo: len(req.Refs)}}
	ls.Range(func(l labels.Label) { req.AddLabel(l.Name, l.Value) })
	s.Labels.Hi = len(req.Refs)
	if h != nil || fh != nil {
		s.Histograms = ingest.Span{Lo: len(req.Histograms), Hi: len(req.Histograms) + 1}
		req.Histograms = append(req.Histograms, ingest.Histogram{ST: st, T: t, H: h, FH: fh})
	} else {
		s.Samples = ingest.Span{Lo: len(req.Samples), Hi: len(req.Samples) + 1}
		req.Samples = append(req.Samples, ingest.Sample{ST: st, T: t, V: v})
	}
	s.Exemplars.Lo = len(req.Exemplars)
	for _, e := range opts.Exemplars {
		lo := len(req.Refs)
		e.Labels.Range(func(l labels.Label) { req.AddLabel(l.Name, l.Value) })
		req.Exemplars = append(req.Exemplars, ingest.Exemplar{Labels: ingest.Span{Lo: lo, Hi: len(req.Refs)}, V: e.Value, T: e.Ts, HasT: e.HasTs})
	}
	s.Exemplars.Hi = len(req.Exemplars)
	s.Meta = ingest.Metadata{Type: opts.Metadata.Type, HelpRef: c.symbol(opts.Metadata.Help), UnitRef: c.symbol(opts.Metadata.Unit)}
	req.Series = append(req.Series, s)

	if isTargetInfo(&opts) {
		c.tr.point = append(c.tr.point, -1)
		return 0, nil
	}
	var hash uint64
	hash, c.hashBuf = ls.HashWithoutLabels(c.hashBuf, model.MetricNameLabel, model.BucketLabel, model.QuantileLabel)
	if !c.started || hash != c.lastHash || t != c.lastT || opts.MetricFamilyName != c.lastFamily {
		if c.started {
			c.ordinal++
		}
		c.started = true
		c.lastHash, c.lastT, c.lastFamily = hash, t, strings.Clone(opts.MetricFamilyName)
		c.stored++
	}
	c.tr.point = append(c.tr.point, c.ordinal)
	return 0, nil
}

// Commit implements storage.AppenderV2; the pipeline commits.
func (*collector) Commit() error { return nil }

// Rollback implements storage.AppenderV2.
func (*collector) Rollback() error { return errors.New("the OTLP collector cannot roll back") }
