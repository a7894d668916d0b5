package ingest

import (
	"fmt"
	"strings"

	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/model/metadata"
)

// validSeries is a stored series of a request, whose metadata is stored
// after the commit: its index in Request.Series and its labels.
type validSeries struct {
	idx int
	ls  labels.Labels
}

// familyMetadata is one metadata entry of a metric family.
type familyMetadata struct {
	family string
	md     metadata.Metadata
}

// metadataRefs identifies, within one request, the metadata entry a series
// carries: the symbol references of its metric name, help and unit, and its
// type. Series with the same references carry the same entry; comparing
// references is cheaper than comparing the strings.
type metadataRefs struct {
	name, help, unit uint32
	typ              model.MetricType
}

// checkMeta reports metadata referring outside the symbols table, in the
// words of remote write 2.0's codec.
func (r *Request) checkMeta(m *Metadata) error {
	if int(m.UnitRef) >= len(r.Symbols) {
		return fmt.Errorf("metadata unit_ref %d outside of symbols table (size %d)", m.UnitRef, len(r.Symbols))
	}
	if int(m.HelpRef) >= len(r.Symbols) {
		return fmt.Errorf("metadata help_ref %d outside of symbols table (size %d)", m.HelpRef, len(r.Symbols))
	}
	return nil
}

// storeMetadata stores the request-wide metadata, and that of the stored
// series (each distinct entry once: the store keeps a set of entries per
// family, so repeating one changes nothing), copying the strings, which may
// point into the request body.
func (p *Pipeline) storeMetadata(id string, req *Request) {
	for _, f := range req.Families {
		if f.Family == "" {
			continue
		}
		md := metadata.Metadata{Type: f.Type, Help: strings.Clone(f.Help), Unit: strings.Clone(f.Unit)}
		if err := p.store.SetMetadata(id, strings.Clone(f.Family), md); err != nil {
			p.logger.Warn("storing metadata failed", "tenant", id, "family", f.Family, "err", err)
		}
	}
	if req.metaSeen == nil {
		req.metaSeen, req.metaRefs = map[familyMetadata]struct{}{}, map[metadataRefs]struct{}{}
	}
	var (
		prev  metadataRefs
		named bool
	)
	for i := range req.valid {
		s := &req.Series[req.valid[i].idx]
		m := s.Meta
		if m.Type == "" && m.HelpRef == 0 && m.UnitRef == 0 {
			continue
		}
		name, ok := req.nameRef(s)
		mr := metadataRefs{name: name, help: m.HelpRef, unit: m.UnitRef, typ: m.Type}
		if ok {
			// Series of one family usually follow each other: a series
			// with the references of the one before carries its entry.
			if named && mr == prev {
				continue
			}
			if _, seen := req.metaRefs[mr]; seen {
				prev, named = mr, true
				continue
			}
			req.metaRefs[mr] = struct{}{}
		}
		prev, named = mr, ok
		p.storeSeriesMetadata(id, req, m, req.valid[i].ls)
	}
}

// storeSeriesMetadata records the metadata a series carries under its
// metric family name: the metric name less the suffix its type adds.
func (p *Pipeline) storeSeriesMetadata(id string, req *Request, m Metadata, ls labels.Labels) {
	md := metadata.Metadata{Type: m.Type, Help: req.Symbols[m.HelpRef], Unit: req.Symbols[m.UnitRef]}
	if md.Type == "" {
		md.Type = model.MetricTypeUnknown
	}
	if md.Type == model.MetricTypeUnknown && md.Help == "" && md.Unit == "" {
		return
	}
	key := familyMetadata{family: familyName(ls.Get(model.MetricNameLabel), md.Type), md: md}
	if _, ok := req.metaSeen[key]; ok {
		return
	}
	req.metaSeen[key] = struct{}{}
	md.Help, md.Unit = strings.Clone(md.Help), strings.Clone(md.Unit)
	if err := p.store.SetMetadata(id, key.family, md); err != nil {
		p.logger.Warn("storing metadata failed", "tenant", id, "family", key.family, "err", err)
	}
}

// nameRef returns the symbol reference of the metric name of a series whose
// first label is __name__ (names are sorted, and __name__ sorts first among
// the usual label names), or false.
func (r *Request) nameRef(s *Series) (uint32, bool) {
	refs := r.Refs[s.Labels.Lo:s.Labels.Hi]
	if len(refs) < 2 || int(refs[0]) >= len(r.Symbols) || r.Symbols[refs[0]] != model.MetricNameLabel {
		return 0, false
	}
	return refs[1], true
}

// familyName is the metric family a series of type typ named name belongs to.
func familyName(name string, typ model.MetricType) string {
	var suffixes []string
	switch typ {
	case model.MetricTypeHistogram, model.MetricTypeGaugeHistogram:
		suffixes = []string{"_bucket", "_count", "_sum", "_gcount", "_gsum"}
	case model.MetricTypeSummary:
		suffixes = []string{"_count", "_sum"}
	}
	for _, s := range suffixes {
		if f, ok := strings.CutSuffix(name, s); ok {
			return f
		}
	}
	return name
}
