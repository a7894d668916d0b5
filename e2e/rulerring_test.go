package e2e

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"testing"
	"time"

	"github.com/prometheus/prometheus/prompb"

	"github.com/strata-tsdb/strata/internal/proctest"
	"github.com/strata-tsdb/strata/internal/testutil"
)

// rulerRules is every tenant's rule file: a recording and an alerting rule
// over the tenant's e2e_load; team-a's adds an anomaly rule.
const rulerRules = `groups:
  - name: load
    interval: 1s
    rules:
%s      - record: tenant:e2e_load:sum
        expr: sum(e2e_load)
      - alert: E2ELoadPresent
        expr: sum(e2e_load) > 0
        labels: {severity: page}
`

const rulerAnomalyRule = `      - anomaly: e2e:load
        expr: sum(e2e_load)
        detector: static
        params: {upper: 100}
`

// TestClusterRulersShardTenants runs three ingesters, a distributor, a
// querier and two rulers on loopback, all with the same rule flags, and
// twelve tenants with rules over data remote-written to the distributor:
// each tenant's group is evaluated by exactly one ruler (both owning some),
// which alone lists it in /api/v1/rules, and the querier lists every
// tenant's rules and alerts by asking both; the rules' outputs, written
// through the distributor's path, are queryable through the querier with
// the value of the rule's expression; an alert of every tenant reaches a
// real Alertmanager; after SIGKILL of one ruler the other evaluates every
// tenant once the dead one's heartbeat times out; a third ruler takes its
// share, and its tenants go back when it leaves the ring on SIGTERM.
func TestClusterRulersShardTenants(t *testing.T) {
	requireE2E(t)
	writeFile := func(path, content string) {
		t.Helper()
		if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	amBin := proctest.RequireProgram(t, "prometheus-alertmanager")
	dir := t.TempDir()
	amAddr := proctest.FreeAddr(t)
	amCfg := filepath.Join(dir, "alertmanager.yml")
	writeFile(amCfg, "route: {receiver: none}\nreceivers: [{name: none}]\n")
	proctest.Start(t, "alertmanager", amBin, "--config.file="+amCfg, "--storage.path="+filepath.Join(dir, "am"),
		"--web.listen-address="+amAddr, "--cluster.listen-address=")

	// Twelve: that either ruler owns none of them has a chance of 2^-11.
	var tenants []string
	rulesDir := filepath.Join(dir, "rules")
	for i := range 12 {
		id := fmt.Sprintf("team-%c", 'a'+i)
		tenants = append(tenants, id)
		anomaly := ""
		if i == 0 {
			anomaly = rulerAnomalyRule
		}
		if err := os.MkdirAll(filepath.Join(rulesDir, id), 0o755); err != nil {
			t.Fatal(err)
		}
		writeFile(filepath.Join(rulesDir, id, "rules.yml"), fmt.Sprintf(rulerRules, anomaly))
	}
	// The same rule and Alertmanager flags for every process, as one
	// configuration file would give them.
	common := []string{"-rules.tenants-dir", rulesDir, "-rules.evaluation-interval", "1s",
		"-rules.resend-delay", "1s", "-alertmanager.url", "http://" + amAddr}

	ingesters := []string{"ingester-1", "ingester-2", "ingester-3"}
	rulers := []string{"ruler-1", "ruler-2"}
	c := newTestCluster(t, append(append(ingesters, "distributor", "querier", "ruler-3"), rulers...)...)
	start := time.Now()
	for _, n := range ingesters {
		c.start(n, "ingester", "", t.TempDir(), common...)
	}
	dist := c.start("distributor", "distributor", "", t.TempDir(), common...)
	q := c.start("querier", "querier", "", t.TempDir(), common...)
	for _, p := range []*strataProc{dist, q} {
		waitActive(t, p.url, start, ingesters...)
	}

	// Each tenant's e2e_load: two series of 1 and 2 times the tenant's
	// number, one sample each a second ago (within the lookback of every
	// evaluation of the test).
	want := map[string]float64{}
	ts := time.Now().Add(-time.Second).UnixMilli()
	for i, id := range tenants {
		n := float64(i + 1)
		req := &prompb.WriteRequest{Timeseries: []prompb.TimeSeries{
			newSeries([]prompb.Sample{{Timestamp: ts, Value: n}}, "__name__", "e2e_load", "host", "h1"),
			newSeries([]prompb.Sample{{Timestamp: ts + 137, Value: 2 * n}}, "__name__", "e2e_load", "host", "h2"),
		}}
		code, body, err := sendWriteV1(t.Context(), http.DefaultClient, dist.url+"/api/v1/write", id, req)
		if err != nil || code != http.StatusNoContent {
			t.Fatalf("write %s: %d %s %v", id, code, body, err)
		}
		want[id] = 3 * n
	}

	procs := map[string]*strataProc{}
	for _, n := range rulers {
		procs[n] = c.start(n, "ruler", "", t.TempDir(), common...)
	}
	for _, n := range rulers {
		waitActive(t, procs[n].url+"/ruler", start, rulers...)
	}

	// groups is how many rule groups ruler n lists for tenant id.
	groups := func(n, id string) int {
		r := newAPIClient(procs[n].url, id).get(t, "/api/v1/rules", nil)
		var env struct {
			Data struct {
				Groups []json.RawMessage `json:"groups"`
			} `json:"data"`
		}
		if r.code != http.StatusOK || json.Unmarshal(r.body, &env) != nil {
			t.Fatalf("%s /api/v1/rules of %s: HTTP %d %s", n, id, r.code, r.body)
		}
		return len(env.Data.Groups)
	}
	evaluated := func(n string) float64 {
		return testutil.Metric(t, procs[n].metrics(), "strata_rules_tenants_evaluated")
	}
	evals := func(n, id string) float64 {
		return testutil.Metric(t, procs[n].metrics(), "strata_rule_group_evaluations_total", "tenant", id)
	}
	// Ruler-1 evaluated every tenant until ruler-2 joined; wait until
	// they share them, each tenant listed by exactly one.
	owner := map[string]string{}
	testutil.Eventually(t, 30*time.Second, "the rulers share the tenants", func() bool {
		if evaluated(rulers[0])+evaluated(rulers[1]) != float64(len(tenants)) {
			return false
		}
		clear(owner)
		for _, id := range tenants {
			g1, g2 := groups(rulers[0], id), groups(rulers[1], id)
			switch {
			case g1 == 1 && g2 == 0:
				owner[id] = rulers[0]
			case g1 == 0 && g2 == 1:
				owner[id] = rulers[1]
			default:
				return false
			}
		}
		return true
	})
	t.Logf("owners: %v", owner)
	owned := map[string]int{}
	for _, id := range tenants {
		owned[owner[id]]++
	}
	if owned[rulers[0]] == 0 || owned[rulers[1]] == 0 {
		t.Errorf("tenants per ruler: %v, want both owning some", owned)
	}
	for _, n := range rulers {
		if got := evaluated(n); got != float64(owned[n]) {
			t.Errorf("%s: strata_rules_tenants_evaluated = %v, want %d", n, got, owned[n])
		}
	}

	// From now on each tenant's group is evaluated by its owner only, and
	// its outputs are written (a failing write through the distributor
	// counts as an evaluation failure).
	failures := func(n string) float64 {
		return testutil.RequireMetric(t, procs[n].metrics(), "prometheus_rule_evaluation_failures_total")
	}
	failed := map[string]float64{}
	before := map[string]map[string]float64{}
	for _, n := range rulers {
		failed[n] = failures(n)
		before[n] = map[string]float64{}
		for _, id := range tenants {
			before[n][id] = evals(n, id)
		}
	}
	testutil.Eventually(t, 30*time.Second, "every tenant's group evaluated by its owner", func() bool {
		for _, id := range tenants {
			if evals(owner[id], id) < before[owner[id]][id]+3 {
				return false
			}
		}
		return true
	})
	for _, id := range tenants {
		for _, n := range rulers {
			if n != owner[id] && evals(n, id) != before[n][id] {
				t.Errorf("%s evaluated by %s, which does not own it (owner %s)", id, n, owner[id])
			}
		}
	}
	for _, n := range rulers {
		if d := failures(n) - failed[n]; d != 0 {
			t.Errorf("%s: %v rule evaluations failed", n, d)
		}
	}

	// The outputs, written by the rulers through the distributor, read
	// through the querier: the value of the rule's expression.
	value := func(id, query string) (float64, bool) {
		r := newAPIClient(q.url, id).query(t, query, time.Now().UnixMilli())
		var env struct {
			Data struct {
				Result []struct {
					Value [2]any `json:"value"`
				} `json:"result"`
			} `json:"data"`
		}
		if r.code != http.StatusOK || json.Unmarshal(r.body, &env) != nil || len(env.Data.Result) != 1 {
			return 0, false
		}
		s, _ := env.Data.Result[0].Value[1].(string)
		v, err := strconv.ParseFloat(s, 64)
		return v, err == nil
	}
	for _, id := range tenants {
		var got, expr float64
		testutil.Eventually(t, 30*time.Second, id+"'s recording rule output through the querier", func() bool {
			var ok1, ok2 bool
			got, ok1 = value(id, "tenant:e2e_load:sum")
			expr, ok2 = value(id, "sum(e2e_load)")
			return ok1 && ok2
		})
		if got != want[id] || got != expr {
			t.Errorf("%s: tenant:e2e_load:sum = %v, sum(e2e_load) = %v, want %v", id, got, expr, want[id])
		}
	}
	testutil.Eventually(t, 30*time.Second, "team-a's anomaly band through the querier", func() bool {
		v, ok := value("team-a", "e2e:load:upper")
		return ok && v == 100
	})
	if v, ok := value("team-b", "e2e:load:upper"); ok {
		t.Errorf("team-b, without anomaly rules, has e2e:load:upper %v", v)
	}

	// Every tenant's alert reaches Alertmanager, labelled with its tenant.
	amTenants := func() map[string]bool {
		resp, err := http.Get("http://" + amAddr + "/api/v2/alerts?" + url.Values{"filter": {"alertname=E2ELoadPresent"}}.Encode())
		if err != nil {
			return nil
		}
		defer resp.Body.Close()
		var alerts []struct {
			Labels map[string]string `json:"labels"`
		}
		if json.NewDecoder(resp.Body).Decode(&alerts) != nil {
			return nil
		}
		out := map[string]bool{}
		for _, a := range alerts {
			out[a.Labels["tenant"]] = true
		}
		return out
	}
	testutil.Eventually(t, 30*time.Second, "every tenant's alert in Alertmanager", func() bool {
		got := amTenants()
		for _, id := range tenants {
			if !got[id] {
				return false
			}
		}
		return true
	})

	// The querier lists every tenant's rules, alerts and anomaly rules,
	// from whichever ruler evaluates the tenant.
	for _, id := range tenants {
		api := newAPIClient(q.url, id)
		var rules struct {
			Data struct {
				Groups []struct {
					Name  string            `json:"name"`
					Rules []json.RawMessage `json:"rules"`
				} `json:"groups"`
			} `json:"data"`
		}
		if r := api.get(t, "/api/v1/rules", nil); r.code != http.StatusOK || json.Unmarshal(r.body, &rules) != nil ||
			len(rules.Data.Groups) != 1 || rules.Data.Groups[0].Name != "load" || len(rules.Data.Groups[0].Rules) != 2 {
			t.Errorf("the querier's /api/v1/rules of %s: HTTP %d %s; want its group load with 2 rules", id, r.code, r.body)
		}
		var alerts struct {
			Data struct {
				Alerts []struct {
					Labels map[string]string `json:"labels"`
					State  string            `json:"state"`
				} `json:"alerts"`
			} `json:"data"`
		}
		testutil.Eventually(t, 10*time.Second, id+"'s alert firing in the querier's /api/v1/alerts", func() bool {
			r := api.get(t, "/api/v1/alerts", nil)
			return r.code == http.StatusOK && json.Unmarshal(r.body, &alerts) == nil && len(alerts.Data.Alerts) == 1 &&
				alerts.Data.Alerts[0].Labels["alertname"] == "E2ELoadPresent" && alerts.Data.Alerts[0].State == "firing"
		})
		wantAnomaly := 0
		if id == "team-a" {
			wantAnomaly = 1
		}
		if r := api.get(t, "/api/v1/anomaly/rules", nil); r.code != http.StatusOK || json.Unmarshal(r.body, &rules) != nil || len(rules.Data.Groups) != wantAnomaly {
			t.Errorf("the querier's /api/v1/anomaly/rules of %s: HTTP %d %s; want %d group", id, r.code, r.body, wantAnomaly)
		}
	}
	if t.Failed() {
		return
	}

	// Kill the owner of team-a: the other evaluates every tenant once the
	// dead one is unhealthy (-ring.heartbeat-timeout 5s).
	victim := owner["team-a"]
	survivor := rulers[0]
	if victim == survivor {
		survivor = rulers[1]
	}
	procs[victim].Kill()
	killed := time.Now()
	testutil.Eventually(t, 30*time.Second, survivor+" evaluates every tenant", func() bool {
		if evaluated(survivor) != float64(len(tenants)) {
			return false
		}
		for _, id := range tenants {
			if groups(survivor, id) != 1 {
				return false
			}
		}
		return true
	})
	took := time.Since(killed)
	// Heartbeats are every 1s and recorded in whole seconds: the victim is
	// unhealthy 3s to 5s after the kill.
	if took < 2*time.Second {
		t.Errorf("%s took the tenants %v after the kill, before the victim's heartbeat could time out", survivor, took)
	}
	t.Logf("%s took the %d tenants of %s %v after the kill", survivor, owned[victim], victim, took.Round(100*time.Millisecond))
	for _, id := range tenants {
		before[survivor][id] = evals(survivor, id)
	}
	testutil.Eventually(t, 30*time.Second, survivor+" evaluates the victim's tenants, its outputs through the querier", func() bool {
		for _, id := range tenants {
			if evals(survivor, id) < before[survivor][id]+2 {
				return false
			}
			if owner[id] != victim {
				continue
			}
			// The last recorded sample is the survivor's.
			last, ok := value(id, "timestamp(tenant:e2e_load:sum)")
			if !ok || last < float64(killed.Unix()+2) {
				return false
			}
		}
		return true
	})
	if v, ok := value("team-a", "e2e:load:upper"); !ok || v != 100 {
		t.Errorf("team-a's anomaly band after the take-over: %v %v, want 100", v, ok)
	}

	// A third ruler joins and takes its share. Stopped with SIGTERM, it
	// leaves the ring (a killed one stays listed until -ring.forget-after,
	// 30s) and the survivor evaluates every tenant again.
	procs["ruler-3"] = c.start("ruler-3", "ruler", "", t.TempDir(), common...)
	testutil.Eventually(t, 30*time.Second, "ruler-3 and "+survivor+" share the tenants", func() bool {
		return evaluated("ruler-3") > 0 && evaluated("ruler-3")+evaluated(survivor) == float64(len(tenants))
	})
	if err := procs["ruler-3"].Stop(time.Minute); err != nil {
		t.Errorf("ruler-3 on SIGTERM: %v, want exit status 0", err)
	}
	stopped := time.Now()
	testutil.Eventually(t, 15*time.Second, survivor+" evaluates every tenant, ruler-3 gone from its ring", func() bool {
		ms, err := ringMembers(procs[survivor].url + "/ruler")
		if err != nil || slices.ContainsFunc(ms, func(m ringMember) bool { return m.ID == "ruler-3" }) {
			return false
		}
		return evaluated(survivor) == float64(len(tenants))
	})
	t.Logf("%s evaluated every tenant again %v after ruler-3 left", survivor, time.Since(stopped).Round(100*time.Millisecond))
}
