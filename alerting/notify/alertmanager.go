package notify

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	neturl "net/url"
	"time"

	"github.com/prometheus/prometheus/model/labels"
)

// alertmanagerSender posts alerts to Alertmanager's API v2 (POST /api/v2/alerts).
type alertmanagerSender struct {
	url    string
	client *http.Client
}

// postableAlert is Alertmanager's API v2 alert.
type postableAlert struct {
	Labels       map[string]string `json:"labels"`
	Annotations  map[string]string `json:"annotations,omitempty"`
	StartsAt     time.Time         `json:"startsAt,omitzero"`
	EndsAt       time.Time         `json:"endsAt,omitzero"`
	GeneratorURL string            `json:"generatorURL,omitempty"`
}

func (s *alertmanagerSender) send(ctx context.Context, alerts []*Alert) error {
	out := make([]postableAlert, len(alerts))
	for i, a := range alerts {
		out[i] = postableAlert{
			Labels: a.Labels.Map(), Annotations: a.Annotations.Map(),
			StartsAt: a.StartsAt, EndsAt: a.EndsAt, GeneratorURL: a.GeneratorURL,
		}
	}
	return postJSON(ctx, s.client, s.url+"/api/v2/alerts", nil, out)
}

// postJSON posts v as JSON and classifies the answer.
func postJSON(ctx context.Context, client *http.Client, url string, headers map[string]string, v any) error {
	body, err := json.Marshal(v)
	if err != nil {
		return Permanent(err)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, bytes.NewReader(body))
	if err != nil {
		return Permanent(err)
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", "Strata")
	for k, v := range headers {
		req.Header.Set(k, v)
	}
	resp, err := client.Do(req)
	if err != nil {
		// *url.Error repeats the whole URL; the error is logged and shown.
		var ue *neturl.Error
		if errors.As(err, &ue) {
			err = ue.Err
		}
		return fmt.Errorf("post to %s: %w", redactURL(url), err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
	if err := httpError(resp, b); err != nil {
		return fmt.Errorf("post to %s: %w", redactURL(url), err)
	}
	return nil
}

// redactURL is how a channel's URL appears in errors and logs: scheme and
// host only. Webhook URLs often carry their credential in the user info,
// the path (Slack, Teams) or the query, so none of those is shown.
func redactURL(s string) string {
	u, err := neturl.Parse(s)
	if err != nil || u.Host == "" {
		return "<unparsable URL>"
	}
	r := u.Scheme + "://" + u.Host
	if u.Path != "" && u.Path != "/" || u.RawQuery != "" {
		r += "/<redacted>"
	}
	return r
}

// labelMap is a label set as a JSON object.
func labelMap(ls labels.Labels) map[string]string { return ls.Map() }
