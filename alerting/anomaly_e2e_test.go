package alerting_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"math"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/golang/snappy"
	"github.com/prometheus/prometheus/prompb"

	"github.com/strata-tsdb/strata/internal/proctest"
	"github.com/strata-tsdb/strata/internal/testutil"
	"github.com/strata-tsdb/strata/server"
)

// amWebhook records the alerts a real Alertmanager posts to its webhook
// receiver: the instances of firing LoadAnomalous alerts.
type amWebhook struct {
	mu     sync.Mutex
	firing map[string]bool
}

func (h *amWebhook) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	var msg struct {
		Alerts []struct {
			Status string            `json:"status"`
			Labels map[string]string `json:"labels"`
		} `json:"alerts"`
	}
	if err := json.NewDecoder(r.Body).Decode(&msg); err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	for _, a := range msg.Alerts {
		if a.Status == "firing" && a.Labels["alertname"] == "RequestsAnomalous" {
			h.firing[a.Labels["instance"]] = true
		}
	}
}

func (h *amWebhook) fired(instance string) bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.firing[instance]
}

// writeSamples sends samples of e2e_requests per instance with remote write 1.0.
func writeSamples(t *testing.T, url string, samples map[string][]prompb.Sample) {
	t.Helper()
	var req prompb.WriteRequest
	for inst, ss := range samples {
		req.Timeseries = append(req.Timeseries, prompb.TimeSeries{
			Labels:  []prompb.Label{{Name: "__name__", Value: "e2e_requests"}, {Name: "instance", Value: inst}, {Name: "job", Value: "e2e"}},
			Samples: ss,
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
	hr.Header.Set("X-Scope-OrgID", "team-a")
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

// TestAnomalyAlertThroughAlertmanager runs the default detector in an
// anomaly rule of the real server over three noisy series with an hour of
// history: a spike in one and a level shift in another fire the alerting
// rule on the score, and the alerts reach a real Alertmanager, which posts
// them to its webhook receiver; the third series, unchanged, fires nothing.
// (TestAnomalyRuleSimulatedWeek in alerting/ruler runs the same detector over
// a simulated week, a stuck value included.)
func TestAnomalyAlertThroughAlertmanager(t *testing.T) {
	if testing.Short() {
		t.Skip("starts Alertmanager; skipped with -short")
	}
	amBin := proctest.RequireProgram(t, "prometheus-alertmanager")
	dir := t.TempDir()

	hook := &amWebhook{firing: map[string]bool{}}
	hookSrv := httptest.NewServer(hook)
	defer hookSrv.Close()
	amAddr := proctest.FreeAddr(t)
	amCfg := filepath.Join(dir, "alertmanager.yml")
	writeFile(t, amCfg, fmt.Sprintf(`route:
  receiver: hook
  group_by: [alertname, instance]
  group_wait: 1s
  group_interval: 1s
  repeat_interval: 1h
receivers:
  - name: hook
    webhook_configs:
      - url: %s
`, hookSrv.URL))
	proctest.Start(t, "alertmanager", amBin, "--config.file="+amCfg, "--storage.path="+filepath.Join(dir, "am"),
		"--web.listen-address="+amAddr, "--cluster.listen-address=")

	// The rule evaluates every second; its detectors learn the last hour
	// (3600 samples) from the store when they start. The alert keeps
	// firing through the detector's rest after an incident's onset.
	rules := filepath.Join(dir, "rules.yml")
	writeFile(t, rules, `groups:
  - name: requests
    interval: 1s
    rules:
      - anomaly: e2e:requests
        expr: e2e_requests
        params: {history: 1h}
      - alert: RequestsAnomalous
        expr: e2e:requests:anomaly_score > 1
        keep_firing_for: 1m
`)
	waitTCP(t, amAddr)
	cfg, err := server.LoadConfig([]string{
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
	logger := slog.New(slog.NewTextHandler(testWriter{t}, &slog.HandlerOptions{Level: slog.LevelWarn}))
	srv, err := server.New(cfg, logger)
	if err != nil {
		t.Fatal(err)
	}

	// An hour of history, one sample a second: requests around 100 with
	// noise. Until it has been written the series have no recent sample,
	// so the rule does not see them yet.
	rng := rand.New(rand.NewPCG(11, 12))
	level := func(ts int64) float64 { return 100 + 10*math.Sin(float64(ts)/6e5) + 3*rng.NormFloat64() }
	instances := []string{"spike", "shift", "steady"}
	start := time.Now().Add(-time.Hour).Truncate(time.Second).UnixMilli()

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
	testutil.Eventually(t, 10*time.Second, "Strata to listen", func() bool {
		resp, err := http.Get(url + "/-/ready")
		if err == nil {
			resp.Body.Close()
		}
		return err == nil
	})
	batch := map[string][]prompb.Sample{}
	ts := start
	for ; ts < time.Now().UnixMilli(); ts += 1000 {
		for _, inst := range instances {
			batch[inst] = append(batch[inst], prompb.Sample{Timestamp: ts, Value: level(ts)})
		}
		if len(batch[instances[0]]) == 600 {
			writeSamples(t, url, batch)
			batch = map[string][]prompb.Sample{}
		}
	}
	writeSamples(t, url, batch)

	// Live samples every 250ms; incidents are switched on below.
	var mu sync.Mutex
	offset := map[string]float64{}
	writerCtx, stopWriter := context.WithCancel(ctx)
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for writerCtx.Err() == nil {
			now := time.Now().UnixMilli()
			if now > ts {
				ts = now
				batch := map[string][]prompb.Sample{}
				mu.Lock()
				for _, inst := range instances {
					batch[inst] = []prompb.Sample{{Timestamp: now, Value: level(now) + offset[inst]}}
				}
				mu.Unlock()
				writeSamples(t, url, batch)
			}
			select {
			case <-writerCtx.Done():
			case <-time.After(250 * time.Millisecond):
			}
		}
	}()
	defer func() { stopWriter(); wg.Wait() }()

	testutil.Eventually(t, 30*time.Second, "anomaly scores", func() bool {
		var v struct {
			Result []json.RawMessage `json:"result"`
		}
		_ = json.Unmarshal(apiGet(t, url+"/api/v1/query?query=e2e:requests:anomaly_score", "team-a"), &v)
		return len(v.Result) == len(instances)
	})
	// Some quiet evaluations first: nothing fires. Ten more evaluations of
	// the anomaly rule (one a second) are counted on Strata's /metrics; the
	// alert rule is evaluated after it in the same group, and with
	// keep_firing_for an alert of any of them would still be listed.
	metrics := testutil.Scrape(url + "/metrics")
	evaluations := func() float64 {
		return testutil.RequireMetric(t, metrics, "strata_anomaly_rule_evaluation_duration_seconds")
	}
	quietFrom := evaluations()
	testutil.Eventually(t, 60*time.Second, "ten quiet evaluations of the anomaly rule", func() bool {
		return evaluations() >= quietFrom+10
	})
	if d := apiGet(t, url+"/api/v1/alerts", "team-a"); strings.Contains(string(d), `"state"`) {
		t.Fatalf("alerts before any incident: %s", d)
	}
	for _, inst := range instances {
		if hook.fired(inst) {
			t.Fatalf("%s fired before any incident", inst)
		}
	}

	mu.Lock()
	offset["spike"] = 150
	// +40 on a level of about 100 (noise σ 3, a slow swing of ±10). Until
	// the detector's histograms learned deviations a window late, this shift
	// peaked near score 1 and was missed in about two runs of five, so the
	// test used +80; TestSurpriseModerateShiftAfterHistory now checks +20 to
	// +60 on the same series in 40 runs each. Detection quality is measured
	// on NAB (bench/nab); this test is about delivery through Alertmanager.
	offset["shift"] = 40
	mu.Unlock()
	time.AfterFunc(3*time.Second, func() { mu.Lock(); offset["spike"] = 0; mu.Unlock() })
	testutil.Eventually(t, 60*time.Second, "the spike's alert at Alertmanager's receiver", func() bool { return hook.fired("spike") })
	testutil.Eventually(t, 60*time.Second, "the level shift's alert at Alertmanager's receiver", func() bool { return hook.fired("shift") })
	if hook.fired("steady") {
		t.Errorf("the steady series fired")
	}
}
