package ruler

import (
	"bytes"
	"errors"
	"fmt"
	"log/slog"
	"os"

	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/model/rulefmt"
	"github.com/prometheus/prometheus/promql/parser"
	"gopkg.in/yaml.v3"

	"github.com/strata-tsdb/strata/alerting/detect"
)

// A rule file is a Prometheus rule file whose groups may also hold anomaly
// rules: entries with an `anomaly` key instead of `alert` or `record`.
//
//	groups:
//	  - name: node
//	    interval: 1m
//	    rules:
//	      - anomaly: node:cpu_busy            # writes node:cpu_busy:anomaly_score,
//	        expr: sum by (instance) (rate(node_cpu_seconds_total{mode!="idle"}[5m]))
//	        detector: seasonal                # :upper and :lower per series
//	        params: {season: 1w, k: 3}
//	        labels: {team: infra}
//	      - alert: NodeCPUAnomalous
//	        expr: node:cpu_busy:anomaly_score > 1
//	        for: 10m
//
// Everything else is Prometheus's format, checked by Prometheus's own parser
// (rulefmt) once the anomaly entries are taken out. A group's anomaly rules
// are evaluated at each of its evaluations, before its Prometheus rules, so
// that its alerting rules see this evaluation's scores.

// AnomalyRuleDef is one anomaly rule as written in a rule file.
type AnomalyRuleDef struct {
	Name     string            `yaml:"anomaly"`
	Expr     string            `yaml:"expr"`
	Detector string            `yaml:"detector"`
	Params   map[string]string `yaml:"params"`
	Labels   map[string]string `yaml:"labels"`
}

// anomalyRuleDef is an AnomalyRuleDef checked and compiled.
type anomalyRuleDef struct {
	AnomalyRuleDef
	expr    parser.Expr
	factory detect.Factory
	labels  labels.Labels
}

// parsedFile is a rule file split in two.
type parsedFile struct {
	prometheus []byte                      // the file without anomaly rules
	anomalies  map[string][]anomalyRuleDef // by group name, in file order
}

// parseRuleFile reads path and splits it into the Prometheus rule file and
// the anomaly rules, checking the anomaly rules.
func parseRuleFile(path string, p parser.Parser) (*parsedFile, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var doc yaml.Node
	if err := yaml.Unmarshal(b, &doc); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	pf := &parsedFile{prometheus: b, anomalies: map[string][]anomalyRuleDef{}}
	if len(doc.Content) == 0 {
		return pf, nil
	}
	groups := mappingValue(doc.Content[0], "groups")
	if groups == nil || groups.Kind != yaml.SequenceNode {
		return pf, nil
	}
	changed := false
	for _, g := range groups.Content {
		nameNode := mappingValue(g, "name")
		rulesNode := mappingValue(g, "rules")
		if nameNode == nil || rulesNode == nil || rulesNode.Kind != yaml.SequenceNode {
			continue
		}
		kept := rulesNode.Content[:0:0]
		for _, r := range rulesNode.Content {
			if mappingValue(r, "anomaly") == nil {
				kept = append(kept, r)
				continue
			}
			changed = true
			def, err := compileAnomalyRule(r, p)
			if err != nil {
				return nil, fmt.Errorf("%s:%d:%d: anomaly rule: %w", path, r.Line, r.Column, err)
			}
			for _, other := range pf.anomalies[nameNode.Value] {
				if other.Name == def.Name {
					return nil, fmt.Errorf("%s:%d:%d: anomaly rule %q is repeated in group %q", path, r.Line, r.Column, def.Name, nameNode.Value)
				}
			}
			pf.anomalies[nameNode.Value] = append(pf.anomalies[nameNode.Value], def)
		}
		rulesNode.Content = kept
	}
	if changed {
		var buf bytes.Buffer
		enc := yaml.NewEncoder(&buf)
		if err := enc.Encode(&doc); err != nil {
			return nil, fmt.Errorf("%s: %w", path, err)
		}
		pf.prometheus = buf.Bytes()
	}
	return pf, nil
}

func compileAnomalyRule(n *yaml.Node, p parser.Parser) (anomalyRuleDef, error) {
	var def anomalyRuleDef
	dec := n.Decode
	// Strict decoding: an unknown key is a mistake worth reporting.
	var raw map[string]yaml.Node
	if err := dec(&raw); err != nil {
		return def, err
	}
	for k := range raw {
		switch k {
		case "anomaly", "expr", "detector", "params", "labels":
		default:
			return def, fmt.Errorf("unknown field %q (anomaly rules have anomaly, expr, detector, params, labels)", k)
		}
	}
	if err := dec(&def.AnomalyRuleDef); err != nil {
		return def, err
	}
	if !model.UTF8Validation.IsValidMetricName(def.Name + ":anomaly_score") {
		return def, fmt.Errorf("invalid name %q", def.Name)
	}
	if def.Expr == "" {
		return def, errors.New("expr is empty")
	}
	expr, err := p.ParseExpr(def.Expr)
	if err != nil {
		return def, fmt.Errorf("expr: %w", err)
	}
	if t := expr.Type(); t != parser.ValueTypeVector && t != parser.ValueTypeScalar {
		return def, fmt.Errorf("expr must give an instant vector or a scalar, not %s", t)
	}
	def.expr = expr
	if def.factory, err = detect.New(detect.Spec{Detector: def.Detector, Params: def.Params}); err != nil {
		return def, err
	}
	for k, v := range def.Labels {
		if !model.UTF8Validation.IsValidLabelName(k) || k == model.MetricNameLabel {
			return def, fmt.Errorf("invalid label name %q", k)
		}
		if !model.LabelValue(v).IsValid() {
			return def, fmt.Errorf("invalid label value %q", v)
		}
	}
	def.labels = labels.FromMap(def.Labels)
	return def, nil
}

// mappingValue returns the value of key in mapping node n, or nil.
func mappingValue(n *yaml.Node, key string) *yaml.Node {
	if n == nil || n.Kind != yaml.MappingNode {
		return nil
	}
	for i := 0; i+1 < len(n.Content); i += 2 {
		if n.Content[i].Value == key {
			return n.Content[i+1]
		}
	}
	return nil
}

// fileLoader gives Prometheus's rule manager the rule files without their
// anomaly rules.
type fileLoader struct {
	parser parser.Parser
	logger *slog.Logger
}

func (l fileLoader) Load(path string, ignoreUnknownFields bool, scheme model.ValidationScheme) (*rulefmt.RuleGroups, []error) {
	pf, err := parseRuleFile(path, l.parser)
	if err != nil {
		return nil, []error{err}
	}
	rgs, errs := rulefmt.Parse(pf.prometheus, ignoreUnknownFields, scheme, l.parser, l.logger)
	for i := range errs {
		errs[i] = fmt.Errorf("%s: %w", path, errs[i])
	}
	return rgs, errs
}

func (l fileLoader) Parse(query string) (parser.Expr, error) { return l.parser.ParseExpr(query) }
