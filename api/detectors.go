package api

import (
	"context"
	"net/http"
	"time"

	"github.com/strata-tsdb/strata/alerting/detect"
	"github.com/strata-tsdb/strata/alerting/ruler"
)

// DetectorParam is a parameter of a detector in the answer of
// /api/v1/anomaly/detectors.
type DetectorParam struct {
	Name    string `json:"name"`
	Default string `json:"default"`
	Help    string `json:"help"`
}

// Detector is one detector in the answer of /api/v1/anomaly/detectors.
type Detector struct {
	Name   string          `json:"name"`
	Help   string          `json:"help"`
	Params []DetectorParam `json:"params"`
}

// detectorsHandler answers /api/v1/anomaly/detectors: the detectors that
// /api/v1/anomaly/query_range and anomaly rules take, with their
// parameters, and the default detector.
func detectorsHandler(w http.ResponseWriter, _ *http.Request) {
	out := struct {
		Default   string     `json:"default"`
		Detectors []Detector `json:"detectors"`
	}{Default: detect.Default}
	for _, k := range detect.Kinds() {
		d := Detector{Name: k.Name, Help: k.Help, Params: []DetectorParam{}}
		for _, p := range k.Params {
			d.Params = append(d.Params, DetectorParam{Name: p.Name, Default: p.Default, Help: p.Help})
		}
		out.Detectors = append(out.Detectors, d)
	}
	respondSuccess(w, out)
}

// AnomalyRuleInfo is one anomaly rule in the answer of /api/v1/anomaly/rules.
type AnomalyRuleInfo struct {
	Name     string            `json:"name"`
	Query    string            `json:"query"`
	Detector string            `json:"detector"`
	Params   map[string]string `json:"params"`
	// Series is the series the rule scores.
	Series int `json:"series"`
	// Health is "ok", "err" (LastError says why) or "unknown" before the
	// first evaluation, as /api/v1/rules says of a rule.
	Health         string    `json:"health"`
	LastError      string    `json:"lastError,omitempty"`
	LastEvaluation time.Time `json:"lastEvaluation"`
	Type           string    `json:"type"`
}

// AnomalyRuleGroup is a rule group's anomaly rules, in file order.
type AnomalyRuleGroup struct {
	Name  string            `json:"name"`
	File  string            `json:"file"`
	Rules []AnomalyRuleInfo `json:"rules"`
}

// anomalyRulesHandler answers /api/v1/anomaly/rules: the anomaly rules of
// the tenant of the request by group, in the shape of /api/v1/rules (which
// lists the groups' alerting and recording rules only: Prometheus's rule
// manager holds no anomaly rule).
func anomalyRulesHandler(list func(context.Context) []ruler.AnomalyRule) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		groups := []*AnomalyRuleGroup{}
		byKey := map[[2]string]*AnomalyRuleGroup{}
		for _, ar := range list(r.Context()) {
			key := [2]string{ar.File, ar.Group}
			g := byKey[key]
			if g == nil {
				g = &AnomalyRuleGroup{Name: ar.Group, File: ar.File, Rules: []AnomalyRuleInfo{}}
				byKey[key] = g
				groups = append(groups, g)
			}
			info := AnomalyRuleInfo{
				Name: ar.Name, Query: ar.Expr, Detector: ar.Detector, Params: ar.Params, Series: ar.Series,
				Health: "ok", LastEvaluation: ar.LastEvaluation.UTC(), Type: "anomaly",
			}
			switch {
			case ar.LastError != nil:
				info.Health, info.LastError = "err", ar.LastError.Error()
			case ar.LastEvaluation.IsZero():
				info.Health = "unknown"
			}
			if info.Params == nil {
				info.Params = map[string]string{}
			}
			g.Rules = append(g.Rules, info)
		}
		respondSuccess(w, map[string]any{"groups": groups})
	}
}
