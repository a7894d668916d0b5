package strata

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/grafana/grafana-plugin-sdk-go/backend"
	"github.com/prometheus/common/model"
)

func TestSeriesName(t *testing.T) {
	ls := model.Metric{"__name__": "up", "job": "api", "instance": "h:9100"}
	tests := []struct {
		legend, expr string
		labels       model.Metric
		want         string
	}{
		{"", "up", ls, `up{instance="h:9100", job="api"}`},
		{"{{job}} on {{ instance }}", "up", ls, "api on h:9100"},
		{"{{missing}}x", "up", ls, "x"},
		{"__auto", "up", ls, ""},
		{"__auto", "sum(up)", model.Metric{}, "sum(up)"},
		{"", "sum(up)", model.Metric{}, "sum(up)"},
		{"", "up", model.Metric{"__name__": "up"}, "up"},
		{"", "x", model.Metric{"a": `q"uote`}, `{a="q\"uote"}`},
	}
	for _, tc := range tests {
		if got := seriesName(tc.legend, tc.expr, tc.labels); got != tc.want {
			t.Errorf("seriesName(%q, %q, %v) = %q, want %q", tc.legend, tc.expr, tc.labels, got, tc.want)
		}
	}
}

func TestResolveTiming(t *testing.T) {
	from := time.Date(2026, 1, 1, 0, 0, 7, 0, time.UTC)
	tests := []struct {
		name              string
		rangeDur          time.Duration
		interval          time.Duration
		maxDataPoints     int64
		minStep           string
		wantStep          time.Duration
		wantRate          string
		wantErrorContains string
	}{
		{name: "panel interval", rangeDur: time.Hour, interval: 15 * time.Second, wantStep: 15 * time.Second, wantRate: "1m"},
		{name: "min step wins", rangeDur: time.Hour, interval: 15 * time.Second, minStep: "1m", wantStep: time.Minute, wantRate: "4m"},
		{name: "min step in seconds", rangeDur: time.Hour, interval: time.Second, minStep: "30", wantStep: 30 * time.Second, wantRate: "2m"},
		{name: "safe step for long ranges", rangeDur: 30 * 24 * time.Hour, interval: 15 * time.Second, wantStep: 235636 * time.Millisecond},
		{name: "from max data points", rangeDur: time.Hour, maxDataPoints: 60, wantStep: time.Minute, wantRate: "1m15s"},
		{name: "bad min step", rangeDur: time.Hour, minStep: "soon", wantErrorContains: "invalid min step"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			dq := backend.DataQuery{Interval: tc.interval, MaxDataPoints: tc.maxDataPoints,
				TimeRange: backend.TimeRange{From: from, To: from.Add(tc.rangeDur)}}
			tm, err := resolveTiming(dq, tc.minStep)
			if tc.wantErrorContains != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErrorContains) {
					t.Fatalf("error = %v, want %q", err, tc.wantErrorContains)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if tm.step != tc.wantStep {
				t.Errorf("step = %s, want %s", tm.step, tc.wantStep)
			}
			if tm.start.UnixMilli()%tm.step.Milliseconds() != 0 || tm.end.UnixMilli()%tm.step.Milliseconds() != 0 {
				t.Errorf("range %s–%s not aligned to the step", tm.start, tm.end)
			}
			if tc.wantRate != "" {
				if got := promDuration(tm.rateInterval()); got != tc.wantRate {
					t.Errorf("rate interval = %s, want %s", got, tc.wantRate)
				}
			}
		})
	}
}

func TestInterpolate(t *testing.T) {
	tm := timing{step: 30 * time.Second, rangeDur: 2 * time.Hour}
	got := tm.interpolate("rate(x[$__rate_interval]) + $__interval_ms + y[$__interval] + ${__range} + $__range_s + $__range_ms + $__rate_interval_ms")
	want := "rate(x[1m]) + 30000 + y[30s] + 7200s + 7200 + 7200000 + 60000" // max(30s+15s, 4×15s)
	if got != want {
		t.Errorf("got %q\nwant %q", got, want)
	}
}

func TestAlertRegions(t *testing.T) {
	base := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	pts := func(from, to int) []model.SamplePair {
		var out []model.SamplePair
		for i := from; i <= to; i++ {
			out = append(out, model.SamplePair{Timestamp: model.TimeFromUnixNano(base.Add(time.Duration(i) * time.Minute).UnixNano()), Value: 1})
		}
		return out
	}
	firing := model.Metric{"__name__": "ALERTS", "alertname": "A", "alertstate": "firing"}
	pending := model.Metric{"__name__": "ALERTS", "alertname": "A", "alertstate": "pending"}
	m := model.Matrix{
		{Metric: firing, Values: append(pts(0, 4), pts(20, 30)...)},
		{Metric: pending, Values: pts(10, 12)},
	}
	regions := alertRegions(m, time.Minute, base.Add(30*time.Minute))
	var got []string
	for _, r := range regions {
		got = append(got, r.state+" "+r.start.Format("15:04")+"-"+r.end.Format("15:04"))
		if _, ok := r.labels["alertstate"]; ok {
			t.Errorf("region labels keep alertstate: %v", r.labels)
		}
	}
	want := []string{"resolved 00:00-00:04", "pending 00:10-00:12", "firing 00:20-00:30"}
	if strings.Join(got, ",") != strings.Join(want, ",") {
		t.Errorf("regions = %q, want %q", got, want)
	}
}

func TestAlertsSelector(t *testing.T) {
	tests := []struct {
		q       Query
		want    string
		wantErr string
	}{
		{Query{}, "ALERTS{}", ""},
		{Query{AlertName: "Hot.*"}, `ALERTS{alertname=~"Hot.*"}`, ""},
		{Query{Matchers: ` {severity="critical", team=~"a|b",} `, AlertName: "X"}, `ALERTS{severity="critical", team=~"a|b", alertname=~"X"}`, ""},
		{Query{Matchers: `severity="critical"`}, "", "braces"},
		{Query{AlertName: "(("}, "", "regular expression"},
	}
	for _, tc := range tests {
		got, err := alertsSelector(tc.q)
		if tc.wantErr != "" {
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Errorf("alertsSelector(%+v) error = %v, want %q", tc.q, err, tc.wantErr)
			}
			continue
		}
		if err != nil || got != tc.want {
			t.Errorf("alertsSelector(%+v) = %q, %v; want %q", tc.q, got, err, tc.want)
		}
	}
}

func TestParseSettings(t *testing.T) {
	js := func(v map[string]any) json.RawMessage {
		b, _ := json.Marshal(v)
		return b
	}
	tests := []struct {
		name     string
		settings backend.DataSourceInstanceSettings
		check    func(t *testing.T, s Settings)
		wantErr  string
	}{
		{"defaults", backend.DataSourceInstanceSettings{URL: "http://strata:9201/"}, func(t *testing.T, s Settings) {
			if s.URL.String() != "http://strata:9201" || s.AuthType != AuthNone || s.Timeout != DefaultTimeout || s.Tenant != "" {
				t.Errorf("settings = %+v", s)
			}
		}, ""},
		{"all fields", backend.DataSourceInstanceSettings{URL: "https://s.example/prefix",
			JSONData:                js(map[string]any{"tenant": " t1 ", "authType": "basic", "basicAuthUser": "u", "timeoutSeconds": 2.5}),
			DecryptedSecureJSONData: map[string]string{"basicAuthPassword": "p"}}, func(t *testing.T, s Settings) {
			if s.Tenant != "t1" || s.BasicAuthUser != "u" || s.BasicAuthPassword != "p" || s.Timeout != 2500*time.Millisecond {
				t.Errorf("settings = %+v", s)
			}
		}, ""},
		{"no URL", backend.DataSourceInstanceSettings{}, nil, "URL is empty"},
		{"not http", backend.DataSourceInstanceSettings{URL: "ftp://x"}, nil, "http://"},
		{"basic without user", backend.DataSourceInstanceSettings{URL: "http://x", JSONData: js(map[string]any{"authType": "basic"})}, nil, "needs a user"},
		{"bearer without token", backend.DataSourceInstanceSettings{URL: "http://x", JSONData: js(map[string]any{"authType": "bearer"})}, nil, "needs a token"},
		{"negative timeout", backend.DataSourceInstanceSettings{URL: "http://x", JSONData: js(map[string]any{"timeoutSeconds": -1})}, nil, "negative"},
		{"bad json", backend.DataSourceInstanceSettings{URL: "http://x", JSONData: json.RawMessage(`{`)}, nil, "jsonData"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s, err := ParseSettings(tc.settings)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("error = %v, want %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			tc.check(t, s)
		})
	}
}
