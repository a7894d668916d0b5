package notify

import (
	"context"
	"fmt"
	"net/http"
	"time"
)

// pagerDutySender sends one Events API v2 event per alert: trigger when it
// fires, resolve when it resolves, with the alert's tenant and fingerprint
// as the dedup key so that PagerDuty ties them to one incident.
type pagerDutySender struct {
	cfg    PagerDutyConfig
	client *http.Client
}

// PagerDutyEvent is an Events API v2 event.
type PagerDutyEvent struct {
	RoutingKey  string            `json:"routing_key"`
	EventAction string            `json:"event_action"`
	DedupKey    string            `json:"dedup_key"`
	Payload     *PagerDutyPayload `json:"payload,omitempty"`
	Client      string            `json:"client,omitempty"`
	ClientURL   string            `json:"client_url,omitempty"`
	Links       []PagerDutyLink   `json:"links,omitempty"`
}

// PagerDutyPayload is the payload of a trigger event.
type PagerDutyPayload struct {
	Summary       string            `json:"summary"`
	Source        string            `json:"source"`
	Severity      string            `json:"severity"`
	Timestamp     string            `json:"timestamp,omitempty"`
	Component     string            `json:"component,omitempty"`
	Group         string            `json:"group,omitempty"`
	Class         string            `json:"class,omitempty"`
	CustomDetails map[string]string `json:"custom_details,omitempty"`
}

// PagerDutyLink is a link shown on the incident.
type PagerDutyLink struct {
	Href string `json:"href"`
	Text string `json:"text"`
}

func (s *pagerDutySender) send(ctx context.Context, alerts []*Alert) error {
	// Events are idempotent for PagerDuty (same dedup key), so a batch that
	// failed half-way is simply sent again.
	cfg := s.cfg
	key, err := readSecret(cfg.RoutingKey, cfg.RoutingKeyFile)
	if err != nil {
		return fmt.Errorf("PagerDuty routing key: %w", err)
	}
	cfg.RoutingKey = key
	for _, a := range alerts {
		if err := postJSON(ctx, s.client, cfg.URL, nil, pagerDutyEvent(cfg, a)); err != nil {
			return err
		}
	}
	return nil
}

func pagerDutyEvent(cfg PagerDutyConfig, a *Alert) PagerDutyEvent {
	ev := PagerDutyEvent{
		RoutingKey: cfg.RoutingKey,
		DedupKey:   fmt.Sprintf("strata/%s/%s", a.Tenant, a.Fingerprint()),
		Client:     "Strata",
		ClientURL:  cfg.ClientURL,
	}
	if a.Resolved {
		ev.EventAction = "resolve"
		return ev
	}
	ev.EventAction = "trigger"
	summary := a.Annotations.Get("summary")
	if summary == "" {
		summary = fmt.Sprintf("%s %s", a.Name(), a.Labels.String())
	}
	if len(summary) > 1024 {
		summary = summary[:1021] + "..."
	}
	severity := cfg.Severity
	switch s := a.Labels.Get("severity"); s {
	case "critical", "error", "warning", "info":
		severity = s
	}
	source := a.Labels.Get("instance")
	if source == "" {
		source = "strata"
	}
	details := a.Labels.Map()
	for k, v := range a.Annotations.Map() {
		details["annotation_"+k] = v
	}
	ev.Payload = &PagerDutyPayload{
		Summary: summary, Source: source, Severity: severity,
		Timestamp: a.StartsAt.UTC().Format(time.RFC3339), Component: a.Labels.Get("job"),
		Group: a.Tenant, Class: a.Name(), CustomDetails: details,
	}
	if a.GeneratorURL != "" {
		ev.Links = []PagerDutyLink{{Href: a.GeneratorURL, Text: "Expression"}}
	}
	return ev
}
