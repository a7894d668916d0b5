package querier

import (
	"bytes"
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"net/http"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/strata-tsdb/strata/tenant"
)

// LocalRulesHeader marks a request for the rules of the process that gets
// it only: a querier asks each ruler with it, so that a process both
// querier and ruler answers its own part instead of asking every ruler again.
const LocalRulesHeader = "X-Strata-Local-Rules"

// RulesOptions configure RulesHandler.
type RulesOptions struct {
	// Rulers returns the addresses of the healthy rulers.
	Rulers func() ([]string, error)
	// Local answers for this process's own rules: requests carrying
	// LocalRulesHeader.
	Local http.Handler
	// Client sends the requests; one with keep-alive when nil.
	Client *http.Client
	// Timeout bounds the answer of one ruler; a minute when zero.
	Timeout time.Duration
	// Scheme of the rulers' addresses; "http" when empty.
	Scheme string
}

// RulesHandler serves /api/v1/rules, /api/v1/alerts and
// /api/v1/anomaly/rules in a querier of a cluster: each tenant's rule
// groups are evaluated by one ruler (the rulers' ring shares the tenants
// out), so it asks every healthy ruler, passing the request's query and
// credentials on, and merges their answers in Prometheus's shape: groups
// sorted by file and name, alerts by labels. While a tenant changes hands
// two rulers may both list a group (or an alert): the one evaluated last
// is kept. A ruler that fails fails the answer (503): a partial list
// would look like rules or alerts that are gone. No healthy ruler: empty
// lists, as a Strata without rules answers.
//
// Prometheus's group_limit and next_token paginate one process's groups;
// across rulers they are not supported, and are answered 400.
func RulesHandler(opts RulesOptions) http.Handler {
	peerDefaults(&opts.Client, &opts.Timeout, &opts.Scheme, 4)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get(LocalRulesHeader) != "" {
			opts.Local.ServeHTTP(w, r)
			return
		}
		if r.Method != http.MethodGet && r.Method != http.MethodPost {
			w.Header().Set("Allow", "GET, POST")
			respondError(w, http.StatusMethodNotAllowed, "bad_data", fmt.Sprintf("method %s not allowed", r.Method))
			return
		}
		if err := r.ParseForm(); err != nil {
			respondError(w, http.StatusBadRequest, "bad_data", err.Error())
			return
		}
		if r.Form.Has("group_limit") || r.Form.Has("next_token") {
			respondError(w, http.StatusBadRequest, "bad_data", "group_limit and next_token are not supported by a cluster's querier: its rule groups are spread over several rulers")
			return
		}
		addrs, err := opts.Rulers()
		if err != nil {
			respondError(w, http.StatusServiceUnavailable, "unavailable", fmt.Sprintf("list the rulers: %v", err))
			return
		}
		answers := make([]rulesAnswer, len(addrs))
		var wg sync.WaitGroup
		for i, addr := range addrs {
			wg.Go(func() { answers[i] = askRuler(r.Context(), opts, addr, r) })
		}
		wg.Wait()
		var merged mergedRules
		for i, a := range answers {
			switch {
			case a.err != nil:
				respondError(w, http.StatusServiceUnavailable, "unavailable", fmt.Sprintf("ruler %s: %v", addrs[i], a.err))
				return
			case a.code != http.StatusOK:
				// The request's own fault (a bad parameter, credentials):
				// every ruler answers it alike; pass the answer on.
				w.Header().Set("Content-Type", "application/json")
				w.WriteHeader(a.code)
				_, _ = w.Write(a.body)
				return
			}
			if err := merged.add(a.body); err != nil {
				respondError(w, http.StatusServiceUnavailable, "unavailable", fmt.Sprintf("ruler %s: %v", addrs[i], err))
				return
			}
		}
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(map[string]any{"status": "success", "data": merged.data(r.URL.Path)})
	})
}

// rulesAnswer is one ruler's answer.
type rulesAnswer struct {
	code int
	body []byte
	err  error // the ruler could not answer (transport, 5xx)
}

// askRuler asks the ruler at addr what r asks, for its own rules only.
func askRuler(ctx context.Context, opts RulesOptions, addr string, r *http.Request) rulesAnswer {
	ctx, cancel := context.WithTimeout(ctx, opts.Timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, opts.Scheme+"://"+addr+r.URL.Path+"?"+r.Form.Encode(), nil)
	if err != nil {
		return rulesAnswer{err: err}
	}
	for _, h := range []string{"Authorization", tenant.HeaderName} {
		if v := r.Header.Values(h); len(v) > 0 {
			req.Header[h] = v
		}
	}
	req.Header.Set(LocalRulesHeader, "1")
	resp, err := opts.Client.Do(req)
	if err != nil {
		return rulesAnswer{err: err}
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return rulesAnswer{err: err}
	}
	if resp.StatusCode >= 500 {
		return rulesAnswer{err: fmt.Errorf("%s: %s", resp.Status, bytes.TrimSpace(body))}
	}
	return rulesAnswer{code: resp.StatusCode, body: body}
}

// mergedRules gathers the groups or alerts of several rulers' answers.
type mergedRules struct {
	groups, alerts []json.RawMessage
}

// add adds the groups or alerts of a success answer of the rules API.
func (m *mergedRules) add(body []byte) error {
	var env struct {
		Status string `json:"status"`
		Data   struct {
			Groups *[]json.RawMessage `json:"groups"`
			Alerts *[]json.RawMessage `json:"alerts"`
		} `json:"data"`
	}
	if err := json.Unmarshal(body, &env); err != nil {
		return fmt.Errorf("decode its answer: %w", err)
	}
	if env.Status != "success" {
		return fmt.Errorf("answered status %q", env.Status)
	}
	switch {
	case env.Data.Groups != nil:
		m.groups = append(m.groups, *env.Data.Groups...)
	case env.Data.Alerts != nil:
		m.alerts = append(m.alerts, *env.Data.Alerts...)
	default:
		return errors.New("its answer lists neither groups nor alerts")
	}
	return nil
}

// data is the merged answer's data for path: alerts by labels, or rule
// groups by file and name, once each.
func (m *mergedRules) data(path string) map[string]any {
	if strings.HasSuffix(path, "/alerts") {
		return map[string]any{"alerts": dedupe(m.alerts, alertKey)}
	}
	return map[string]any{"groups": dedupe(m.groups, groupKey)}
}

// dedupe sorts items by key and keeps, of items with one key, the one
// evaluated last.
func dedupe(items []json.RawMessage, key func(json.RawMessage) (string, time.Time)) []json.RawMessage {
	type keyed struct {
		key  string
		last time.Time
		raw  json.RawMessage
	}
	ks := make([]keyed, 0, len(items))
	for _, it := range items {
		k, last := key(it)
		ks = append(ks, keyed{k, last, it})
	}
	slices.SortStableFunc(ks, func(a, b keyed) int {
		return cmp.Or(cmp.Compare(a.key, b.key), b.last.Compare(a.last))
	})
	out := make([]json.RawMessage, 0, len(ks))
	for i, k := range ks {
		if i > 0 && ks[i-1].key == k.key {
			continue
		}
		out = append(out, k.raw)
	}
	return out
}

// groupKey is a rule group's file and name, and when it was last evaluated
// (Prometheus's group lastEvaluation, or its rules' latest).
func groupKey(raw json.RawMessage) (string, time.Time) {
	var g struct {
		Name           string    `json:"name"`
		File           string    `json:"file"`
		LastEvaluation time.Time `json:"lastEvaluation"`
		Rules          []struct {
			LastEvaluation time.Time `json:"lastEvaluation"`
		} `json:"rules"`
	}
	_ = json.Unmarshal(raw, &g) // undecodable: sorted first, kept
	last := g.LastEvaluation
	for _, r := range g.Rules {
		if r.LastEvaluation.After(last) {
			last = r.LastEvaluation
		}
	}
	return g.File + "\xff" + g.Name, last
}

// alertKey is an alert's labels, and when it became active.
func alertKey(raw json.RawMessage) (string, time.Time) {
	var a struct {
		Labels   map[string]string `json:"labels"`
		ActiveAt time.Time         `json:"activeAt"`
	}
	_ = json.Unmarshal(raw, &a)
	keys := slices.Sorted(maps.Keys(a.Labels))
	var b bytes.Buffer
	for _, k := range keys {
		b.WriteString(k)
		b.WriteByte(0xfe)
		b.WriteString(a.Labels[k])
		b.WriteByte(0xff)
	}
	return b.String(), a.ActiveAt
}

func respondError(w http.ResponseWriter, code int, typ, msg string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	_ = json.NewEncoder(w).Encode(map[string]string{"status": "error", "errorType": typ, "error": msg})
}
