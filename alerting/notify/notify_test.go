package notify

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/prometheus/model/labels"

	"github.com/strata-tsdb/strata/internal/testutil"
)

func alert(name, instance string, resolved bool) *Alert {
	return &Alert{
		Tenant:      "t1",
		Labels:      labels.FromStrings("alertname", name, "instance", instance, "severity", "warning"),
		Annotations: labels.FromStrings("summary", name+" on "+instance),
		StartsAt:    time.Unix(1000, 0).UTC(), EndsAt: time.Unix(2000, 0).UTC(),
		GeneratorURL: "http://strata/graph", Resolved: resolved,
	}
}

// recorder is an HTTP receiver that fails its first `fail` requests.
type recorder struct {
	fail   int32
	status int
	calls  atomic.Int32
	mu     sync.Mutex
	bodies []string
}

func (r *recorder) ServeHTTP(w http.ResponseWriter, req *http.Request) {
	if r.calls.Add(1) <= r.fail {
		http.Error(w, "nope", r.status)
		return
	}
	b, _ := io.ReadAll(req.Body)
	r.mu.Lock()
	r.bodies = append(r.bodies, string(b))
	r.mu.Unlock()
	w.WriteHeader(http.StatusAccepted)
}

func (r *recorder) got() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]string(nil), r.bodies...)
}

func run(t *testing.T, o Options) (*Dispatcher, *prometheus.Registry) {
	t.Helper()
	reg := prometheus.NewRegistry()
	o.Registerer = reg
	o.MinBackoff = 10 * time.Millisecond
	if o.Config.QueueCapacity == 0 {
		o.Config.QueueCapacity = 100
	}
	o.Config.MaxBackoff = 50e6 // 50ms
	d, err := New(o)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); d.Run(ctx) }()
	t.Cleanup(func() { cancel(); <-done })
	return d, reg
}

// settled waits until the channels of d have nothing left to deliver: the
// queued gauge is 0 once every notification offered so far has been sent or
// given up (Send queues synchronously, and the gauge drops only after the
// outcome is counted).
func settled(t *testing.T, reg prometheus.Gatherer) {
	t.Helper()
	testutil.Eventually(t, 10*time.Second, "every queued notification to be delivered or dropped (strata_notifications_queued 0)", func() bool {
		return testutil.Metric(t, reg, "strata_notifications_queued") == 0
	})
}

func TestChannelsRetryUntilDelivered(t *testing.T) {
	for _, tc := range []struct {
		name   string
		status int
		fail   int32
		want   int // deliveries
	}{
		{"up", 0, 0, 1},
		{"down for a while (503)", http.StatusServiceUnavailable, 5, 1},
		{"rate limited (429)", http.StatusTooManyRequests, 2, 1},
		{"refused (400) is dropped", http.StatusBadRequest, 1, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rec := &recorder{fail: tc.fail, status: tc.status}
			srv := httptest.NewServer(rec)
			defer srv.Close()
			d, reg := run(t, Options{Config: Config{Webhooks: []WebhookConfig{{ChannelCommon: ChannelCommon{Name: "w"}, URL: srv.URL}}}})
			d.Send(alert("A", "x", false))
			// The one notification ends up sent or dropped as refused, and
			// then the channel has nothing left to try.
			testutil.Eventually(t, 10*time.Second, "the notification to be sent or dropped", func() bool {
				return testutil.Metric(t, reg, "strata_notifications_sent_total", "channel", "w")+
					testutil.Metric(t, reg, "strata_notifications_dropped_total", "channel", "w") == 1
			})
			settled(t, reg)
			if got := len(rec.got()); got != tc.want {
				t.Errorf("delivered %d times, want %d", got, tc.want)
			}
			if got, want := rec.calls.Load(), tc.fail+int32(tc.want); got != want {
				t.Errorf("%d attempts, want %d", got, want)
			}
			if v := testutil.Metric(t, reg, "strata_notifications_failed_total", "channel", "w"); v != float64(tc.fail) {
				t.Errorf("failed = %v, want %d", v, tc.fail)
			}
			if tc.status == http.StatusBadRequest {
				if v := testutil.Metric(t, reg, "strata_notifications_dropped_total", "channel", "w", "reason", "refused"); v != 1 {
					t.Errorf("dropped = %v, want 1", v)
				}
			}
		})
	}
}

func TestTransitions(t *testing.T) {
	for _, tc := range []struct {
		name   string
		repeat time.Duration
		sends  [][]*Alert
		want   []string // statuses of delivered webhook messages
	}{
		{"firing once, resends ignored", 0, [][]*Alert{{alert("A", "x", false)}, {alert("A", "x", false)}}, []string{"firing"}},
		{"firing then resolved", 0, [][]*Alert{{alert("A", "x", false)}, {alert("A", "x", true)}, {alert("A", "x", true)}}, []string{"firing", "resolved"}},
		{"resolved never notified firing is not sent", 0, [][]*Alert{{alert("A", "x", true)}}, nil},
		{"repeat interval reminds", time.Nanosecond, [][]*Alert{{alert("A", "x", false)}, {alert("A", "x", false)}}, []string{"firing", "firing"}},
		{"two alerts in one batch", 0, [][]*Alert{{alert("A", "x", false), alert("A", "y", false)}}, []string{"firing"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rec := &recorder{}
			srv := httptest.NewServer(rec)
			defer srv.Close()
			d, reg := run(t, Options{Config: Config{RepeatInterval: modelDuration(tc.repeat), Webhooks: []WebhookConfig{{URL: srv.URL}}}})
			for _, b := range tc.sends {
				d.Send(b...)
			}
			settled(t, reg)
			var got []string
			for _, b := range rec.got() {
				var m WebhookMessage
				if err := json.Unmarshal([]byte(b), &m); err != nil {
					t.Fatal(err)
				}
				got = append(got, m.Status)
			}
			if strings.Join(got, ",") != strings.Join(tc.want, ",") {
				t.Errorf("messages %v, want %v", got, tc.want)
			}
		})
	}
}

func TestWebhookPayload(t *testing.T) {
	m := webhookMessage("hook", []*Alert{alert("A", "x", false), alert("A", "y", true)})
	b, _ := json.Marshal(m)
	for _, want := range []string{
		`"version":"4"`, `"status":"firing"`, `"receiver":"hook"`, `"groupLabels":{"alertname":"A"}`,
		`"commonLabels":{"alertname":"A","severity":"warning"}`, `"endsAt":"1970-01-01T00:33:20Z"`,
		`"fingerprint":"`, `"generatorURL":"http://strata/graph"`,
	} {
		if !strings.Contains(string(b), want) {
			t.Errorf("payload lacks %s:\n%s", want, b)
		}
	}
}

func TestPagerDutyEvent(t *testing.T) {
	cfg := PagerDutyConfig{RoutingKey: "rk", Severity: "error"}
	for _, tc := range []struct {
		name   string
		a      *Alert
		action string
		sev    string
	}{
		{"trigger takes severity label", alert("A", "x", false), "trigger", "warning"},
		{"resolve has no payload", alert("A", "x", true), "resolve", ""},
	} {
		ev := pagerDutyEvent(cfg, tc.a)
		if ev.EventAction != tc.action || ev.RoutingKey != "rk" || !strings.HasPrefix(ev.DedupKey, "strata/t1/") {
			t.Errorf("%s: %+v", tc.name, ev)
		}
		if tc.sev == "" {
			if ev.Payload != nil {
				t.Errorf("%s: payload on resolve", tc.name)
			}
			continue
		}
		if ev.Payload.Severity != tc.sev || ev.Payload.Summary != "A on x" || ev.Payload.Source != "x" || ev.Payload.Timestamp != "1970-01-01T00:16:40Z" {
			t.Errorf("%s: payload %+v", tc.name, ev.Payload)
		}
	}
	if a, b := pagerDutyEvent(cfg, alert("A", "x", false)).DedupKey, pagerDutyEvent(cfg, alert("A", "x", true)).DedupKey; a != b {
		t.Errorf("trigger and resolve dedup keys differ: %s %s", a, b)
	}
}

func TestAlertmanagerCoalescesWhileDown(t *testing.T) {
	rec := &recorder{fail: 3, status: http.StatusBadGateway}
	srv := httptest.NewServer(rec)
	defer srv.Close()
	d, reg := run(t, Options{Alertmanager: AlertmanagerConfig{URL: StringList{srv.URL}}})
	d.Send(alert("A", "x", false))
	d.Send(alert("A", "y", false))
	d.Send(alert("A", "x", true)) // newer state of x replaces the older
	settled(t, reg)
	if n := len(rec.got()); n != 1 {
		t.Fatalf("%d deliveries, want 1 (the coalesced queue in one post)", n)
	}
	var posted []postableAlert
	if err := json.Unmarshal([]byte(rec.got()[0]), &posted); err != nil {
		t.Fatal(err)
	}
	if len(posted) != 2 {
		t.Fatalf("posted %d alerts, want 2 (x resolved, y firing): %s", len(posted), rec.got()[0])
	}
	if posted[0].Labels["instance"] != "x" || !posted[0].EndsAt.Equal(time.Unix(2000, 0)) {
		t.Errorf("first alert %+v", posted[0])
	}
}

func TestQueueCapacityDropsOldest(t *testing.T) {
	c := &channel{name: "c", capacity: 2, now: time.Now, wake: make(chan struct{}, 1), notified: map[modelFingerprint]time.Time{},
		m: &metrics{dropped: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "d"}, []string{"channel", "reason"}),
			queued: prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "q"}, []string{"channel"})},
		logger: discard()}
	for _, inst := range []string{"a", "b", "c"} {
		c.offer([]*Alert{alert("A", inst, false)})
	}
	if len(c.queue) != 2 || c.queue[0][0].Labels.Get("instance") != "b" {
		t.Errorf("queue = %v, want b and c", c.queue)
	}
}

func TestConfigValidate(t *testing.T) {
	base := func() Config { return Config{QueueCapacity: 1, Timeout: 1, MaxBackoff: 1} }
	for _, tc := range []struct {
		name string
		mod  func(*Config)
		err  string
	}{
		{"empty is fine", func(*Config) {}, ""},
		{"webhook URL", func(c *Config) { c.Webhooks = []WebhookConfig{{URL: "ftp://x"}} }, "not an http"},
		{"email needs to", func(c *Config) { c.Email = []EmailConfig{{From: "a@b", Smarthost: "h:25"}} }, "to is empty"},
		{"pagerduty needs a key", func(c *Config) { c.PagerDuty = []PagerDutyConfig{{}} }, "routing_key"},
		{"pagerduty severity", func(c *Config) { c.PagerDuty = []PagerDutyConfig{{RoutingKey: "k", Severity: "meh"}} }, "severity"},
		{"duplicate names", func(c *Config) {
			c.Webhooks = []WebhookConfig{{ChannelCommon: ChannelCommon{Name: "x"}, URL: "http://a"}, {ChannelCommon: ChannelCommon{Name: "x"}, URL: "http://b"}}
		}, "used twice"},
	} {
		c := base()
		tc.mod(&c)
		err := c.Validate()
		if (tc.err == "") != (err == nil) || (err != nil && !strings.Contains(err.Error(), tc.err)) {
			t.Errorf("%s: err = %v, want %q", tc.name, err, tc.err)
		}
	}
}

func TestHTTPErrorClassification(t *testing.T) {
	for code, permanent := range map[int]bool{400: true, 401: true, 404: true, 408: false, 429: false, 500: false, 503: false} {
		err := httpError(&http.Response{StatusCode: code, Status: http.StatusText(code)}, nil)
		var p permanentError
		if errors.As(err, &p) != permanent {
			t.Errorf("HTTP %d: permanent = %v, want %v", code, !permanent, permanent)
		}
	}
}

// TestDeliveryErrorsHideURLCredentials: a webhook URL often carries its
// credential (user info, a Slack-style path, a token in the query); a
// failed delivery's error, which is logged, names only scheme and host.
func TestDeliveryErrorsHideURLCredentials(t *testing.T) {
	refused := httptest.NewServer(http.NotFoundHandler())
	refused.Close() // nothing listens: the client's error
	failing := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		http.Error(w, "down", http.StatusServiceUnavailable)
	}))
	defer failing.Close()
	for _, base := range []string{refused.URL, failing.URL} {
		for _, suffix := range []string{"/services/T0/B0/s3cr3t", "/hook?token=s3cr3t"} {
			u := strings.Replace(base, "http://", "http://user:s3cr3t@", 1) + suffix
			s := &webhookSender{cfg: WebhookConfig{URL: u}, client: http.DefaultClient, receiver: "w"}
			err := s.send(context.Background(), []*Alert{alert("A", "i", false)})
			if err == nil {
				t.Fatalf("send to %s succeeded", u)
			}
			if strings.Contains(err.Error(), "s3cr3t") || strings.Contains(err.Error(), "user") {
				t.Errorf("error shows the URL's credential: %v", err)
			}
			if !strings.Contains(err.Error(), strings.TrimPrefix(base, "http://")) {
				t.Errorf("error does not name the host: %v", err)
			}
		}
	}
}
