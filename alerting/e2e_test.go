package alerting_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"mime/quotedprintable"
	"net"
	"net/http"
	"net/http/httptest"
	"net/mail"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/golang/snappy"
	"github.com/prometheus/prometheus/prompb"

	"github.com/strata-tsdb/strata/alerting/notify"
	"github.com/strata-tsdb/strata/internal/proctest"
	"github.com/strata-tsdb/strata/internal/testutil"
	"github.com/strata-tsdb/strata/server"
)

func waitTCP(t *testing.T, addr string) {
	t.Helper()
	testutil.Eventually(t, 30*time.Second, addr+" to listen", func() bool {
		c, err := net.Dial("tcp", addr)
		if err == nil {
			c.Close()
		}
		return err == nil
	})
}

// maildir reads the messages an aiosmtpd Mailbox handler stored.
func maildir(t *testing.T, dir string) []*mail.Message {
	var out []*mail.Message
	for _, sub := range []string{"new", "cur"} {
		entries, _ := os.ReadDir(filepath.Join(dir, sub))
		for _, e := range entries {
			b, err := os.ReadFile(filepath.Join(dir, sub, e.Name()))
			if err != nil {
				continue
			}
			m, err := mail.ReadMessage(bytes.NewReader(b))
			if err == nil {
				out = append(out, m)
			}
		}
	}
	return out
}

func hasMail(t *testing.T, dir, from, subjectPrefix string) bool {
	for _, m := range maildir(t, dir) {
		if strings.Contains(m.Header.Get("From"), from) && strings.HasPrefix(m.Header.Get("Subject"), subjectPrefix) {
			return true
		}
	}
	return false
}

// pagerDuty is a local Events API v2 receiver that checks each event
// against PagerDuty's documented schema, and is down for its first calls.
type pagerDuty struct {
	t        *testing.T
	downFor  int32
	calls    atomic.Int32
	mu       sync.Mutex
	events   []notify.PagerDutyEvent
	problems []string
}

func (p *pagerDuty) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if p.calls.Add(1) <= p.downFor {
		http.Error(w, "down for maintenance", http.StatusServiceUnavailable)
		return
	}
	var raw map[string]any
	body, _ := io.ReadAll(r.Body)
	var ev notify.PagerDutyEvent
	problem := func(f string, a ...any) {
		p.mu.Lock()
		p.problems = append(p.problems, fmt.Sprintf(f, a...))
		p.mu.Unlock()
		w.WriteHeader(http.StatusBadRequest)
		_, _ = w.Write([]byte(`{"status":"invalid event","message":"Event object is invalid"}`))
	}
	if r.URL.Path != "/v2/enqueue" || r.Method != http.MethodPost || r.Header.Get("Content-Type") != "application/json" {
		problem("bad request line %s %s %s", r.Method, r.URL.Path, r.Header.Get("Content-Type"))
		return
	}
	if json.Unmarshal(body, &raw) != nil || json.Unmarshal(body, &ev) != nil {
		problem("not JSON: %s", body)
		return
	}
	switch {
	case ev.RoutingKey != "e2e-routing-key":
		problem("routing_key %q", ev.RoutingKey)
		return
	case ev.DedupKey == "" || len(ev.DedupKey) > 255:
		problem("dedup_key %q", ev.DedupKey)
		return
	case ev.EventAction == "trigger":
		pl, _ := raw["payload"].(map[string]any)
		for _, f := range []string{"summary", "source", "severity"} {
			if s, _ := pl[f].(string); s == "" {
				problem("trigger without payload.%s: %s", f, body)
				return
			}
		}
		if sev := pl["severity"]; sev != "critical" && sev != "error" && sev != "warning" && sev != "info" {
			problem("payload.severity %v", sev)
			return
		}
		if ts, _ := pl["timestamp"].(string); ts != "" {
			if _, err := time.Parse(time.RFC3339, ts); err != nil {
				problem("payload.timestamp %q", ts)
				return
			}
		}
	case ev.EventAction == "resolve" || ev.EventAction == "acknowledge":
	default:
		problem("event_action %q", ev.EventAction)
		return
	}
	p.mu.Lock()
	p.events = append(p.events, ev)
	p.mu.Unlock()
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(http.StatusAccepted)
	_, _ = fmt.Fprintf(w, `{"status":"success","message":"Event processed","dedup_key":%q}`, ev.DedupKey)
}

func (p *pagerDuty) actions() []string {
	p.mu.Lock()
	defer p.mu.Unlock()
	var out []string
	for _, e := range p.events {
		out = append(out, e.EventAction)
	}
	return out
}

// webhook records Alertmanager-format webhook messages.
type webhook struct {
	mu   sync.Mutex
	msgs []notify.WebhookMessage
}

func (h *webhook) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	var m notify.WebhookMessage
	if err := json.NewDecoder(r.Body).Decode(&m); err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	h.mu.Lock()
	h.msgs = append(h.msgs, m)
	h.mu.Unlock()
}

func (h *webhook) statuses() []string {
	h.mu.Lock()
	defer h.mu.Unlock()
	var out []string
	for _, m := range h.msgs {
		out = append(out, m.Status)
	}
	return out
}

// remoteWrite sends one sample per series, now, with remote write 1.0.
func remoteWrite(t *testing.T, url, tenant string, series map[string]float64) {
	t.Helper()
	var req prompb.WriteRequest
	now := time.Now().UnixMilli()
	for inst, v := range series {
		req.Timeseries = append(req.Timeseries, prompb.TimeSeries{
			Labels:  []prompb.Label{{Name: "__name__", Value: "e2e_load"}, {Name: "instance", Value: inst}, {Name: "job", Value: "e2e"}},
			Samples: []prompb.Sample{{Value: v, Timestamp: now}},
		})
	}
	b, err := req.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	hr, _ := http.NewRequest(http.MethodPost, url+"/api/v1/write", bytes.NewReader(snappy.Encode(nil, b)))
	hr.Header.Set("Content-Type", "application/x-protobuf")
	hr.Header.Set("Content-Encoding", "snappy")
	hr.Header.Set("X-Prometheus-Remote-Write-Version", "0.1.0")
	hr.Header.Set("X-Scope-OrgID", tenant)
	resp, err := http.DefaultClient.Do(hr)
	if err != nil {
		t.Error(err)
		return
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusNoContent {
		t.Errorf("remote write: %s", resp.Status)
	}
}

// apiGet returns the data of a Prometheus API answer.
func apiGet(t *testing.T, url, tenant string) json.RawMessage {
	t.Helper()
	req, _ := http.NewRequest(http.MethodGet, url, nil)
	req.Header.Set("X-Scope-OrgID", tenant)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var r struct {
		Status string          `json:"status"`
		Data   json.RawMessage `json:"data"`
		Error  string          `json:"error"`
	}
	b, _ := io.ReadAll(resp.Body)
	if err := json.Unmarshal(b, &r); err != nil || r.Status != "success" {
		t.Fatalf("GET %s: %s %s", url, resp.Status, b)
	}
	return r.Data
}

const ruleFile = `groups:
  - name: e2e
    interval: 1s
    rules:
      - anomaly: e2e:load
        expr: e2e_load
        detector: static
        params: {upper: 50}
        labels: {team: e2e}
      - record: e2e:load:doubled
        expr: e2e_load * 2
      - alert: LoadAnomalous
        expr: e2e:load:anomaly_score > 1
        for: 2s
        keep_firing_for: 1s
        labels: {severity: critical}
        annotations:
          summary: "anomaly score {{ $value | printf \"%.1f\" }} on {{ $labels.instance }}"
`

// TestEndToEnd writes samples to Strata, whose anomaly rule scores them and
// whose alerting rule fires; the alert reaches a real Alertmanager (which
// mails it through a real SMTP server), Strata's own email channel (the
// same SMTP server), a webhook and a PagerDuty receiver that is down at
// first; then the samples go back to normal and every channel hears the
// alert resolve.
func TestEndToEnd(t *testing.T) {
	if testing.Short() {
		t.Skip("starts Alertmanager and an SMTP server; skipped with -short")
	}
	amBin := proctest.RequireProgram(t, "prometheus-alertmanager")
	python := "/usr/bin/python3"
	if exec.Command(python, "-c", "import aiosmtpd").Run() != nil {
		if testing.Short() {
			t.Skip("python3-aiosmtpd not installed")
		}
		t.Fatal("python3-aiosmtpd not installed: run scripts/deps.sh")
	}
	dir := t.TempDir()

	smtpAddr := proctest.FreeAddr(t)
	mails := filepath.Join(dir, "maildir")
	for _, sub := range []string{"new", "cur", "tmp"} {
		_ = os.MkdirAll(filepath.Join(mails, sub), 0o755)
	}
	proctest.Start(t, "aiosmtpd", python, "-m", "aiosmtpd", "-n", "-l", smtpAddr, "-c", "aiosmtpd.handlers.Mailbox", mails)

	amAddr := proctest.FreeAddr(t)
	amCfg := filepath.Join(dir, "alertmanager.yml")
	writeFile(t, amCfg, fmt.Sprintf(`global:
  smtp_smarthost: %q
  smtp_from: alertmanager@example.org
  smtp_require_tls: false
route:
  receiver: mail
  group_by: [alertname]
  group_wait: 1s
  group_interval: 1s
  repeat_interval: 1h
receivers:
  - name: mail
    email_configs:
      - to: oncall@example.org
        send_resolved: true
`, smtpAddr))
	proctest.Start(t, "alertmanager", amBin, "--config.file="+amCfg, "--storage.path="+filepath.Join(dir, "am"),
		"--web.listen-address="+amAddr, "--cluster.listen-address=")

	hook := &webhook{}
	hookSrv := httptest.NewServer(hook)
	defer hookSrv.Close()
	pd := &pagerDuty{t: t, downFor: 3}
	pdSrv := httptest.NewServer(pd)
	defer pdSrv.Close()

	rules := filepath.Join(dir, "rules.yml")
	writeFile(t, rules, ruleFile)
	cfgFile := filepath.Join(dir, "strata.yml")
	writeFile(t, cfgFile, fmt.Sprintf(`notifications:
  max_backoff: 1s
  webhooks:
    - name: hook
      url: %s
  email:
    - name: mail
      to: [ops@example.org]
      from: strata@example.org
      smarthost: %q
  pagerduty:
    - name: pager
      routing_key: e2e-routing-key
      url: %s/v2/enqueue
`, hookSrv.URL, smtpAddr, pdSrv.URL))
	waitTCP(t, smtpAddr)
	waitTCP(t, amAddr)

	cfg, err := server.LoadConfig([]string{
		"-config.file", cfgFile,
		"-http.listen-address", "127.0.0.1:0",
		"-storage.path", filepath.Join(dir, "data"),
		"-tenant.default", "team-a",
		"-rules.files", rules,
		"-rules.evaluation-interval", "1s",
		"-rules.resend-delay", "1s",
		"-alertmanager.url", "http://" + amAddr,
	}, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	logger := slog.New(slog.NewTextHandler(testWriter{t}, &slog.HandlerOptions{Level: slog.LevelInfo}))
	srv, err := server.New(cfg, logger)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	runDone := make(chan error, 1)
	go func() { runDone <- srv.Run(ctx) }()
	defer func() {
		cancel()
		if err := <-runDone; err != nil {
			t.Errorf("server: %v", err)
		}
	}()
	url := "http://" + srv.Addr().String()

	// Samples every 200ms: normal, then anomalous, then normal again.
	var load atomic.Int64
	load.Store(10)
	writerCtx, stopWriter := context.WithCancel(ctx)
	var writerWG sync.WaitGroup
	writerWG.Add(1)
	go func() {
		defer writerWG.Done()
		for writerCtx.Err() == nil {
			remoteWrite(t, url, "team-a", map[string]float64{"host-1": float64(load.Load())})
			select {
			case <-writerCtx.Done():
			case <-time.After(200 * time.Millisecond):
			}
		}
	}()
	defer func() { stopWriter(); writerWG.Wait() }()

	// The rules API answers as Prometheus's.
	var rulesData struct {
		Groups []struct {
			Name  string `json:"name"`
			Rules []struct {
				Name string `json:"name"`
				Type string `json:"type"`
			} `json:"rules"`
		} `json:"groups"`
	}
	testutil.Eventually(t, 10*time.Second, "rules loaded", func() bool {
		_ = json.Unmarshal(apiGet(t, url+"/api/v1/rules", "team-a"), &rulesData)
		return len(rulesData.Groups) == 1
	})
	if g := rulesData.Groups[0]; g.Name != "e2e" || len(g.Rules) != 2 || g.Rules[0].Type != "recording" || g.Rules[1].Type != "alerting" {
		t.Errorf("rules = %+v", rulesData)
	}
	if d := apiGet(t, url+"/api/v1/rules", "team-b"); !strings.Contains(string(d), `"groups":[]`) {
		t.Errorf("tenant team-b sees rules: %s", d)
	}

	// The anomaly rule writes its series.
	testutil.Eventually(t, 15*time.Second, "anomaly series", func() bool {
		d := apiGet(t, url+"/api/v1/query?query=e2e:load:upper", "team-a")
		return strings.Contains(string(d), `"team":"e2e"`) && strings.Contains(string(d), `"50"`)
	})

	load.Store(100)
	testutil.Eventually(t, 20*time.Second, "alert firing in /api/v1/alerts", func() bool {
		return strings.Contains(string(apiGet(t, url+"/api/v1/alerts", "team-a")), `"state":"firing"`)
	})
	d := apiGet(t, url+`/api/v1/query?query=ALERTS{alertname="LoadAnomalous",alertstate="firing"}`, "team-a")
	if !strings.Contains(string(d), `"instance":"host-1"`) {
		t.Errorf("ALERTS series missing: %s", d)
	}
	if d := apiGet(t, url+`/api/v1/query?query=ALERTS_FOR_STATE`, "team-a"); !strings.Contains(string(d), "LoadAnomalous") {
		t.Errorf("ALERTS_FOR_STATE missing: %s", d)
	}
	if d := apiGet(t, url+`/api/v1/query?query=ALERTS`, "team-b"); strings.Contains(string(d), "LoadAnomalous") {
		t.Errorf("team-b sees team-a's ALERTS: %s", d)
	}

	testutil.Eventually(t, 20*time.Second, "alert in Alertmanager", func() bool {
		resp, err := http.Get("http://" + amAddr + "/api/v2/alerts?active=true")
		if err != nil {
			return false
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return strings.Contains(string(b), `"alertname":"LoadAnomalous"`) && strings.Contains(string(b), `"tenant":"team-a"`)
	})
	testutil.Eventually(t, 30*time.Second, "Alertmanager's email", func() bool {
		return hasMail(t, mails, "alertmanager@example.org", "[FIRING:1] LoadAnomalous")
	})
	testutil.Eventually(t, 20*time.Second, "Strata's email", func() bool {
		return hasMail(t, mails, "strata@example.org", "[FIRING:1] LoadAnomalous (tenant team-a)")
	})
	testutil.Eventually(t, 20*time.Second, "webhook firing", func() bool { return slices(hook.statuses()) == "firing" })
	testutil.Eventually(t, 30*time.Second, "PagerDuty trigger after its outage", func() bool { return slices(pd.actions()) == "trigger" })
	if n := pd.calls.Load(); n < 4 {
		t.Errorf("PagerDuty called %d times, want retries through its outage", n)
	}
	var body string
	for _, m := range maildir(t, mails) {
		if strings.Contains(m.Header.Get("From"), "strata@") {
			b, _ := io.ReadAll(quotedprintable.NewReader(m.Body))
			body = string(b)
		}
	}
	if !strings.Contains(body, "anomaly score 2.0 on host-1") || !strings.Contains(body, "tenant = team-a") {
		t.Errorf("Strata's email body lacks the summary or labels:\n%s", body)
	}

	load.Store(10)
	testutil.Eventually(t, 30*time.Second, "webhook resolved", func() bool { return slices(hook.statuses()) == "firing,resolved" })
	testutil.Eventually(t, 20*time.Second, "PagerDuty resolve", func() bool { return slices(pd.actions()) == "trigger,resolve" })
	testutil.Eventually(t, 20*time.Second, "Strata's resolved email", func() bool {
		return hasMail(t, mails, "strata@example.org", "[RESOLVED:1] LoadAnomalous")
	})
	testutil.Eventually(t, 30*time.Second, "Alertmanager's resolved email", func() bool {
		return hasMail(t, mails, "alertmanager@example.org", "[RESOLVED] LoadAnomalous")
	})
	pd.mu.Lock()
	if len(pd.problems) > 0 {
		t.Errorf("PagerDuty payload problems: %v", pd.problems)
	}
	if pd.events[0].DedupKey != pd.events[1].DedupKey {
		t.Errorf("trigger and resolve dedup keys differ: %q %q", pd.events[0].DedupKey, pd.events[1].DedupKey)
	}
	pd.mu.Unlock()

	// Reload: a new rule appears; a broken file keeps the old rules.
	writeFile(t, rules, ruleFile+"      - record: e2e:load:tripled\n        expr: e2e_load * 3\n")
	if resp := post(t, url+"/-/reload"); resp != http.StatusOK {
		t.Fatalf("reload: %d", resp)
	}
	_ = json.Unmarshal(apiGet(t, url+"/api/v1/rules", "team-a"), &rulesData)
	if n := len(rulesData.Groups[0].Rules); n != 3 {
		t.Errorf("after reload: %d rules, want 3", n)
	}
	writeFile(t, rules, "groups: [{name: x, rules: [{anomaly: bad, expr: 'up', detector: nope}]}]\n")
	if resp := post(t, url+"/-/reload"); resp != http.StatusInternalServerError {
		t.Errorf("reload of a broken file: %d, want 500", resp)
	}
	_ = json.Unmarshal(apiGet(t, url+"/api/v1/rules", "team-a"), &rulesData)
	if n := len(rulesData.Groups[0].Rules); n != 3 {
		t.Errorf("after a failed reload: %d rules, want the previous 3", n)
	}
}

func slices(s []string) string { return strings.Join(s, ",") }

func post(t *testing.T, url string) int {
	resp, err := http.Post(url, "", nil)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	return resp.StatusCode
}

func writeFile(t *testing.T, path, content string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}

// testWriter sends logs to the test log, line by line.
type testWriter struct{ t *testing.T }

func (w testWriter) Write(p []byte) (int, error) {
	s := bufio.NewScanner(bytes.NewReader(p))
	for s.Scan() {
		w.t.Log(s.Text())
	}
	return len(p), nil
}
