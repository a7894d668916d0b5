package notify

import (
	"context"
	"net/http"
	"time"

	"github.com/prometheus/prometheus/model/labels"
)

// webhookSender posts Alertmanager's webhook JSON (version 4), so that any
// receiver written for Alertmanager's webhook_config works unchanged.
type webhookSender struct {
	cfg      WebhookConfig
	receiver string
	client   *http.Client
}

// WebhookMessage is Alertmanager's webhook payload.
type WebhookMessage struct {
	Version           string            `json:"version"`
	GroupKey          string            `json:"groupKey"`
	TruncatedAlerts   int               `json:"truncatedAlerts"`
	Status            string            `json:"status"`
	Receiver          string            `json:"receiver"`
	GroupLabels       map[string]string `json:"groupLabels"`
	CommonLabels      map[string]string `json:"commonLabels"`
	CommonAnnotations map[string]string `json:"commonAnnotations"`
	ExternalURL       string            `json:"externalURL"`
	Alerts            []WebhookAlert    `json:"alerts"`
}

// WebhookAlert is one alert of a webhook payload.
type WebhookAlert struct {
	Status       string            `json:"status"`
	Labels       map[string]string `json:"labels"`
	Annotations  map[string]string `json:"annotations"`
	StartsAt     time.Time         `json:"startsAt"`
	EndsAt       time.Time         `json:"endsAt"`
	GeneratorURL string            `json:"generatorURL"`
	Fingerprint  string            `json:"fingerprint"`
}

func (s *webhookSender) send(ctx context.Context, alerts []*Alert) error {
	return postJSON(ctx, s.client, s.cfg.URL, s.cfg.Headers, webhookMessage(s.receiver, alerts))
}

func webhookMessage(receiver string, alerts []*Alert) WebhookMessage {
	msg := WebhookMessage{
		Version: "4", Status: "resolved", Receiver: receiver,
		GroupLabels:       map[string]string{},
		CommonLabels:      commonPairs(alerts, func(a *Alert) labels.Labels { return a.Labels }),
		CommonAnnotations: commonPairs(alerts, func(a *Alert) labels.Labels { return a.Annotations }),
	}
	if n, ok := msg.CommonLabels[labels.AlertName]; ok {
		msg.GroupLabels[labels.AlertName] = n
	}
	msg.GroupKey = "{}:" + labels.FromMap(msg.GroupLabels).String()
	for _, a := range alerts {
		if !a.Resolved {
			msg.Status = "firing"
		}
		endsAt := a.EndsAt
		if !a.Resolved {
			endsAt = time.Time{} // Alertmanager shows firing alerts without an end
		}
		msg.Alerts = append(msg.Alerts, WebhookAlert{
			Status: a.Status(), Labels: labelMap(a.Labels), Annotations: labelMap(a.Annotations),
			StartsAt: a.StartsAt, EndsAt: endsAt, GeneratorURL: a.GeneratorURL,
			Fingerprint: a.Fingerprint().String(),
		})
	}
	return msg
}

// commonPairs returns the label pairs all alerts share.
func commonPairs(alerts []*Alert, get func(*Alert) labels.Labels) map[string]string {
	out := map[string]string{}
	if len(alerts) == 0 {
		return out
	}
	get(alerts[0]).Range(func(l labels.Label) {
		for _, a := range alerts[1:] {
			if get(a).Get(l.Name) != l.Value {
				return
			}
		}
		out[l.Name] = l.Value
	})
	return out
}
