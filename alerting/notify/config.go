package notify

import (
	"errors"
	"flag"
	"fmt"
	"net/url"
	"os"
	"strings"
	"time"

	"github.com/prometheus/common/model"

	"github.com/strata-tsdb/strata/internal/flagext"
)

// Config configures where alerts go besides Alertmanager, and how.
type Config struct {
	// TenantLabel is the label that names an alert's tenant in every
	// notification; empty leaves alerts unlabelled.
	TenantLabel string `yaml:"tenant_label"`
	// QueueCapacity bounds the notifications waiting for one channel.
	QueueCapacity int `yaml:"queue_capacity"`
	// RepeatInterval re-notifies webhook, email and PagerDuty about alerts
	// still firing; 0 notifies once per firing.
	RepeatInterval model.Duration `yaml:"repeat_interval"`
	// MaxBackoff bounds the wait between retries of a failing channel.
	MaxBackoff model.Duration `yaml:"max_backoff"`
	// Timeout bounds one delivery attempt.
	Timeout model.Duration `yaml:"timeout"`

	Webhooks  []WebhookConfig   `yaml:"webhooks"`
	Email     []EmailConfig     `yaml:"email"`
	PagerDuty []PagerDutyConfig `yaml:"pagerduty"`
}

// ChannelCommon are the settings every channel has.
type ChannelCommon struct {
	// Name names the channel in logs, metrics and webhook payloads.
	Name string `yaml:"name" help:"Name of the channel in logs, metrics and webhook payloads."`
	// Tenants limits the channel to the alerts of these tenants; empty means all.
	Tenants []string `yaml:"tenants" help:"Only the alerts of these tenants go to the channel; empty means every tenant."`
}

// WebhookConfig is a generic webhook that receives Alertmanager's webhook JSON.
type WebhookConfig struct {
	ChannelCommon `yaml:",inline"`
	URL           string            `yaml:"url" help:"URL the webhook JSON (Alertmanager's format) is POSTed to."`
	Headers       map[string]string `yaml:"headers" help:"Extra HTTP headers of each request."`
}

// EmailConfig sends plain-text email over SMTP.
type EmailConfig struct {
	ChannelCommon `yaml:",inline"`
	To            []string `yaml:"to" help:"Recipients."`
	From          string   `yaml:"from" help:"Sender address."`
	// Smarthost is the SMTP server, host:port.
	Smarthost    string `yaml:"smarthost" help:"SMTP server, host:port."`
	AuthUsername string `yaml:"auth_username" help:"SMTP user; empty sends without authentication."`
	AuthPassword string `yaml:"auth_password" help:"SMTP password."`
	// AuthPasswordFile is read at each delivery, so a rotated password
	// needs no restart.
	AuthPasswordFile string `yaml:"auth_password_file" help:"File holding the SMTP password, instead of auth_password; read at each delivery."`
	// RequireTLS refuses servers without STARTTLS; otherwise STARTTLS is
	// used when the server offers it.
	RequireTLS         bool `yaml:"require_tls" help:"Refuse SMTP servers without STARTTLS (otherwise it is used when offered)."`
	InsecureSkipVerify bool `yaml:"insecure_skip_verify" help:"Do not verify the SMTP server's certificate."`
}

// PagerDutyConfig sends PagerDuty Events API v2 events.
type PagerDutyConfig struct {
	ChannelCommon `yaml:",inline"`
	RoutingKey    string `yaml:"routing_key" help:"Integration key of the PagerDuty service (Events API v2)."`
	// RoutingKeyFile is read at each delivery.
	RoutingKeyFile string `yaml:"routing_key_file" help:"File holding the integration key, instead of routing_key; read at each delivery."`
	// URL of the Events API (default https://events.pagerduty.com/v2/enqueue).
	URL string `yaml:"url" help:"Events API URL; empty means https://events.pagerduty.com/v2/enqueue."`
	// Severity when the alert has no severity label of PagerDuty's
	// (critical, error, warning, info); default error.
	Severity string `yaml:"severity" help:"PagerDuty severity of alerts without a severity label (critical, error, warning, info); empty means error."`
	// ClientURL links back from the incident, e.g. to Grafana.
	ClientURL string `yaml:"client_url" help:"Link from the incident back to, e.g., Grafana."`
}

// DefaultPagerDutyURL is PagerDuty's Events API v2 endpoint.
const DefaultPagerDutyURL = "https://events.pagerduty.com/v2/enqueue"

// AlertmanagerConfig names the Alertmanagers alerts are sent to.
type AlertmanagerConfig struct {
	// URL lists Alertmanager base URLs (http://host:9093); alerts go to each.
	URL     StringList     `yaml:"url"`
	Timeout model.Duration `yaml:"timeout"`
}

// StringList is flagext.StringList, kept under this name for the
// packages that configure notifications.
type StringList = flagext.StringList

// Validate reports the first setting that cannot work.
func (c *Config) Validate() error {
	if c.QueueCapacity <= 0 {
		return errors.New("notifications.queue_capacity must be positive")
	}
	if c.Timeout <= 0 || c.MaxBackoff <= 0 {
		return errors.New("notifications.timeout and notifications.max_backoff must be positive")
	}
	names := map[string]bool{}
	name := func(kind string, i int, cc ChannelCommon) (string, error) {
		n := cc.Name
		if n == "" {
			n = fmt.Sprintf("%s-%d", kind, i)
		}
		if names[n] {
			return "", fmt.Errorf("notifications: channel name %q is used twice", n)
		}
		names[n] = true
		return n, nil
	}
	for i, w := range c.Webhooks {
		if _, err := name("webhook", i, w.ChannelCommon); err != nil {
			return err
		}
		if err := checkURL(w.URL); err != nil {
			return fmt.Errorf("notifications.webhooks[%d].url: %w", i, err)
		}
	}
	for i, e := range c.Email {
		if _, err := name("email", i, e.ChannelCommon); err != nil {
			return err
		}
		switch {
		case len(e.To) == 0:
			return fmt.Errorf("notifications.email[%d].to is empty", i)
		case e.From == "":
			return fmt.Errorf("notifications.email[%d].from is empty", i)
		case !strings.Contains(e.Smarthost, ":"):
			return fmt.Errorf("notifications.email[%d].smarthost %q must be host:port", i, e.Smarthost)
		case e.AuthPassword != "" && e.AuthPasswordFile != "":
			return fmt.Errorf("notifications.email[%d]: auth_password and auth_password_file are both set", i)
		}
	}
	for i, p := range c.PagerDuty {
		if _, err := name("pagerduty", i, p.ChannelCommon); err != nil {
			return err
		}
		switch {
		case p.RoutingKey == "" && p.RoutingKeyFile == "":
			return fmt.Errorf("notifications.pagerduty[%d].routing_key is empty", i)
		case p.RoutingKey != "" && p.RoutingKeyFile != "":
			return fmt.Errorf("notifications.pagerduty[%d]: routing_key and routing_key_file are both set", i)
		}
		if p.URL != "" {
			if err := checkURL(p.URL); err != nil {
				return fmt.Errorf("notifications.pagerduty[%d].url: %w", i, err)
			}
		}
		switch p.Severity {
		case "", "critical", "error", "warning", "info":
		default:
			return fmt.Errorf("notifications.pagerduty[%d].severity %q is not critical, error, warning or info", i, p.Severity)
		}
	}
	return nil
}

// Validate reports the first setting that cannot work.
func (c *AlertmanagerConfig) Validate() error {
	for _, u := range c.URL {
		if err := checkURL(u); err != nil {
			return fmt.Errorf("alertmanager.url: %w", err)
		}
	}
	if c.Timeout <= 0 {
		return errors.New("alertmanager.timeout must be positive")
	}
	return nil
}

func checkURL(s string) error {
	u, err := url.Parse(s)
	if err != nil {
		return err
	}
	if u.Scheme != "http" && u.Scheme != "https" || u.Host == "" {
		return fmt.Errorf("%q is not an http(s) URL", s)
	}
	return nil
}

func durationOr(d model.Duration, def time.Duration) time.Duration {
	if d <= 0 {
		return def
	}
	return time.Duration(d)
}

// RegisterFlags registers the flag-settable settings, setting their defaults.
func (c *Config) RegisterFlags(fs *flag.FlagSet) {
	fs.StringVar(&c.TenantLabel, "notifications.tenant-label", "tenant", "Label naming the tenant of every alert sent to Alertmanager and the notification channels; empty sends alerts unlabelled.")
	fs.IntVar(&c.QueueCapacity, "notifications.queue-capacity", 10000, "Notifications kept per channel while it is unreachable; beyond it the oldest are dropped.")
	flagext.DurationVar(fs, &c.RepeatInterval, "notifications.repeat-interval", 4*time.Hour, "How often webhook, email and PagerDuty channels are reminded of alerts still firing; 0 notifies once per firing.")
	flagext.DurationVar(fs, &c.MaxBackoff, "notifications.max-backoff", time.Minute, "Longest wait between retries of a failing channel.")
	flagext.DurationVar(fs, &c.Timeout, "notifications.timeout", 10*time.Second, "Bound of one delivery attempt.")
}

// RegisterFlags registers the Alertmanager flags, setting their defaults.
func (c *AlertmanagerConfig) RegisterFlags(fs *flag.FlagSet) {
	fs.Var(&c.URL, "alertmanager.url", "Comma-separated Alertmanager base URLs (http://alertmanager:9093) that alerts are sent to (API v2).")
	flagext.DurationVar(fs, &c.Timeout, "alertmanager.timeout", 10*time.Second, "Bound of one request to an Alertmanager.")
}

// readSecret returns value, or when file is set the content of file without
// surrounding white space.
func readSecret(value, file string) (string, error) {
	if file == "" {
		return value, nil
	}
	b, err := os.ReadFile(file)
	if err != nil {
		return "", fmt.Errorf("read secret: %w", err)
	}
	return strings.TrimSpace(string(b)), nil
}
