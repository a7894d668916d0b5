// Package notify delivers alerts: to Alertmanager (API v2), to generic
// webhooks (Alertmanager's webhook JSON), by email over SMTP, and to
// PagerDuty (Events API v2).
//
// Each channel has its own queue and goroutine, so a slow or failing
// channel delays no other. A delivery that fails for a reason that may pass
// (a network error, a 5xx, a 429) is retried with exponential backoff until
// it succeeds; nothing is dropped while a channel is down, up to the queue's
// capacity, beyond which the oldest notifications go first (and are
// counted). A refusal that will not pass (another 4xx) is logged and dropped.
//
// Alertmanager gets every alert the rule evaluator hands over (firing ones
// again every resend delay, resolved ones for a while), and does grouping,
// silencing and repetition itself; while it is unreachable, only the newest
// state of each alert is kept, and all of them are sent when it is back.
// Webhooks, email and PagerDuty are told about changes instead: an alert
// that starts firing, one that resolves (only if it was notified firing),
// and, with repeat_interval, alerts still firing.
package notify

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"
	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/model/labels"
)

// Alert is one alert as channels see it.
type Alert struct {
	Tenant       string
	Labels       labels.Labels
	Annotations  labels.Labels
	StartsAt     time.Time
	EndsAt       time.Time // when resolved, or until when a firing alert is valid
	GeneratorURL string
	// Resolved is set for alerts that are no longer firing.
	Resolved bool
}

// Status is "firing" or "resolved".
func (a *Alert) Status() string {
	if a.Resolved {
		return "resolved"
	}
	return "firing"
}

// Fingerprint identifies the alert as Alertmanager does.
func (a *Alert) Fingerprint() model.Fingerprint {
	ls := make(model.LabelSet, a.Labels.Len())
	a.Labels.Range(func(l labels.Label) { ls[model.LabelName(l.Name)] = model.LabelValue(l.Value) })
	return ls.Fingerprint()
}

// Name is the alert's alertname label.
func (a *Alert) Name() string { return a.Labels.Get(labels.AlertName) }

// permanentError marks a delivery failure that retrying cannot fix.
type permanentError struct{ err error }

func (e permanentError) Error() string { return e.err.Error() }
func (e permanentError) Unwrap() error { return e.err }

// Permanent wraps err as a failure not worth retrying.
func Permanent(err error) error { return permanentError{err} }

// httpError classifies an HTTP answer: nil for 2xx, permanent for 4xx other
// than 408 and 429, retryable otherwise.
func httpError(resp *http.Response, body []byte) error {
	if resp.StatusCode/100 == 2 {
		return nil
	}
	err := fmt.Errorf("HTTP %s: %s", resp.Status, strings.TrimSpace(string(body)))
	if resp.StatusCode/100 == 4 && resp.StatusCode != http.StatusTooManyRequests && resp.StatusCode != http.StatusRequestTimeout {
		return Permanent(err)
	}
	return err
}

// Dispatcher fans alerts out to every channel.
type Dispatcher struct {
	channels []*channel
	logger   *slog.Logger
}

// Options configure a Dispatcher.
type Options struct {
	Config       Config
	Alertmanager AlertmanagerConfig
	Client       *http.Client // default: a client with the configured timeouts
	Logger       *slog.Logger
	Registerer   prometheus.Registerer
	// Now is the clock; time.Now when nil.
	Now func() time.Time
	// MinBackoff is the first retry delay (default 1s).
	MinBackoff time.Duration
}

type metrics struct {
	sent, failed, dropped *prometheus.CounterVec
	queued                *prometheus.GaugeVec
}

// New builds the channels of o.
func New(o Options) (*Dispatcher, error) {
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.Registerer == nil {
		o.Registerer = prometheus.NewRegistry()
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.MinBackoff <= 0 {
		o.MinBackoff = time.Second
	}
	if o.Client == nil {
		o.Client = &http.Client{}
	}
	f := promauto.With(o.Registerer)
	m := &metrics{
		sent: f.NewCounterVec(prometheus.CounterOpts{
			Name: "strata_notifications_sent_total", Help: "Notifications delivered, by channel.",
		}, []string{"channel"}),
		failed: f.NewCounterVec(prometheus.CounterOpts{
			Name: "strata_notifications_failed_total", Help: "Failed delivery attempts, by channel (retried unless permanent).",
		}, []string{"channel"}),
		dropped: f.NewCounterVec(prometheus.CounterOpts{
			Name: "strata_notifications_dropped_total", Help: "Notifications given up, by channel and reason.",
		}, []string{"channel", "reason"}),
		queued: f.NewGaugeVec(prometheus.GaugeOpts{
			Name: "strata_notifications_queued", Help: "Notifications waiting for delivery, by channel.",
		}, []string{"channel"}),
	}
	c := o.Config
	timeout := durationOr(c.Timeout, 10*time.Second)
	base := func(kind, name string, i int, tenants []string, s sender) *channel {
		if name == "" {
			name = fmt.Sprintf("%s-%d", kind, i)
		}
		return &channel{
			name: name, sender: s, tenants: tenants, m: m,
			logger:   o.Logger.With("channel", name),
			capacity: max(c.QueueCapacity, 1), timeout: timeout,
			minBackoff: o.MinBackoff, maxBackoff: durationOr(c.MaxBackoff, time.Minute),
			repeat: time.Duration(c.RepeatInterval), now: o.Now,
			wake: make(chan struct{}, 1), notified: map[model.Fingerprint]time.Time{},
		}
	}
	d := &Dispatcher{logger: o.Logger}
	for i, u := range o.Alertmanager.URL {
		ch := base("alertmanager", "alertmanager-"+hostOf(u), i, nil, &alertmanagerSender{url: strings.TrimRight(u, "/"), client: o.Client})
		ch.coalesce = true
		ch.timeout = durationOr(o.Alertmanager.Timeout, timeout)
		d.channels = append(d.channels, ch)
	}
	for i, w := range c.Webhooks {
		d.channels = append(d.channels, base("webhook", w.Name, i, w.Tenants, &webhookSender{cfg: w, client: o.Client, receiver: nameOr(w.Name, "webhook", i)}))
	}
	for i, e := range c.Email {
		d.channels = append(d.channels, base("email", e.Name, i, e.Tenants, &emailSender{cfg: e}))
	}
	for i, p := range c.PagerDuty {
		if p.URL == "" {
			p.URL = DefaultPagerDutyURL
		}
		if p.Severity == "" {
			p.Severity = "error"
		}
		d.channels = append(d.channels, base("pagerduty", p.Name, i, p.Tenants, &pagerDutySender{cfg: p, client: o.Client}))
	}
	for _, ch := range d.channels {
		m.queued.WithLabelValues(ch.name).Set(0)
	}
	return d, nil
}

func nameOr(name, kind string, i int) string {
	if name != "" {
		return name
	}
	return fmt.Sprintf("%s-%d", kind, i)
}

func hostOf(u string) string {
	s := strings.TrimPrefix(strings.TrimPrefix(u, "http://"), "https://")
	if i := strings.IndexByte(s, '/'); i >= 0 {
		s = s[:i]
	}
	return s
}

// Channels names the configured channels.
func (d *Dispatcher) Channels() []string {
	var out []string
	for _, c := range d.channels {
		out = append(out, c.name)
	}
	return out
}

// Send queues alerts on every channel that takes them. It never blocks on
// delivery.
func (d *Dispatcher) Send(alerts ...*Alert) {
	for _, c := range d.channels {
		c.offer(alerts)
	}
}

// Run delivers until ctx is done.
func (d *Dispatcher) Run(ctx context.Context) {
	var wg sync.WaitGroup
	for _, c := range d.channels {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c.run(ctx)
		}()
	}
	wg.Wait()
}

// sender delivers one batch of alerts to one channel.
type sender interface {
	send(ctx context.Context, alerts []*Alert) error
}

// channel is one destination with its queue.
type channel struct {
	name     string
	sender   sender
	tenants  []string
	coalesce bool // Alertmanager: keep the newest state per alert, send all
	logger   *slog.Logger
	m        *metrics

	capacity               int
	timeout                time.Duration
	minBackoff, maxBackoff time.Duration
	repeat                 time.Duration
	now                    func() time.Time

	wake chan struct{}

	mu       sync.Mutex
	queue    [][]*Alert                      // notifications in order (not coalescing)
	latest   map[model.Fingerprint]*Alert    // newest state per alert (coalescing)
	notified map[model.Fingerprint]time.Time // firing alerts notified, and when
}

func (c *channel) takes(a *Alert) bool {
	return len(c.tenants) == 0 || slices.Contains(c.tenants, a.Tenant)
}

// offer queues what alerts mean for this channel.
func (c *channel) offer(alerts []*Alert) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.coalesce {
		if c.latest == nil {
			c.latest = map[model.Fingerprint]*Alert{}
		}
		for _, a := range alerts {
			if c.takes(a) {
				c.latest[a.Fingerprint()] = a
			}
		}
		c.m.queued.WithLabelValues(c.name).Set(float64(len(c.latest)))
		c.signal()
		return
	}
	now := c.now()
	var batch []*Alert
	for _, a := range alerts {
		if !c.takes(a) {
			continue
		}
		fp := a.Fingerprint()
		last, known := c.notified[fp]
		switch {
		case a.Resolved && known:
			delete(c.notified, fp)
			batch = append(batch, a)
		case a.Resolved:
			// Never notified as firing here (or notified before a restart):
			// nothing to resolve.
		case !known || (c.repeat > 0 && now.Sub(last) >= c.repeat):
			c.notified[fp] = now
			batch = append(batch, a)
		}
	}
	if len(batch) == 0 {
		return
	}
	if len(c.queue) >= c.capacity {
		c.queue = c.queue[1:]
		c.m.dropped.WithLabelValues(c.name, "queue_full").Inc()
		c.logger.Error("notification queue full; dropped the oldest notification", "capacity", c.capacity)
	}
	c.queue = append(c.queue, batch)
	c.m.queued.WithLabelValues(c.name).Set(float64(len(c.queue)))
	c.signal()
}

func (c *channel) signal() {
	select {
	case c.wake <- struct{}{}:
	default:
	}
}

// next returns the batch to deliver now, or nil.
func (c *channel) next() []*Alert {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.coalesce {
		if len(c.latest) == 0 {
			return nil
		}
		out := make([]*Alert, 0, len(c.latest))
		for _, a := range c.latest {
			out = append(out, a)
		}
		sort.Slice(out, func(i, j int) bool { return labels.Compare(out[i].Labels, out[j].Labels) < 0 })
		return out
	}
	if len(c.queue) == 0 {
		return nil
	}
	return c.queue[0]
}

// done removes a delivered (or given up) batch.
func (c *channel) done(batch []*Alert) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.coalesce {
		for _, a := range batch {
			fp := a.Fingerprint()
			if c.latest[fp] == a { // not replaced by a newer state meanwhile
				delete(c.latest, fp)
			}
		}
		c.m.queued.WithLabelValues(c.name).Set(float64(len(c.latest)))
		return
	}
	if len(c.queue) > 0 && sameBatch(c.queue[0], batch) {
		c.queue = c.queue[1:]
	}
	c.m.queued.WithLabelValues(c.name).Set(float64(len(c.queue)))
}

func sameBatch(a, b []*Alert) bool { return len(a) == len(b) && (len(a) == 0 || &a[0] == &b[0]) }

func (c *channel) run(ctx context.Context) {
	backoff := c.minBackoff
	failingSince := time.Time{}
	for {
		batch := c.next()
		if batch == nil {
			select {
			case <-ctx.Done():
				return
			case <-c.wake:
				continue
			}
		}
		sctx, cancel := context.WithTimeout(ctx, c.timeout)
		err := c.sender.send(sctx, batch)
		cancel()
		if err == nil {
			c.m.sent.WithLabelValues(c.name).Inc()
			if !failingSince.IsZero() {
				c.logger.Info("channel delivers again", "down_for", time.Since(failingSince).Round(time.Second))
			}
			c.done(batch)
			backoff, failingSince = c.minBackoff, time.Time{}
			continue
		}
		if ctx.Err() != nil {
			return
		}
		c.m.failed.WithLabelValues(c.name).Inc()
		var perm permanentError
		if errors.As(err, &perm) {
			c.m.dropped.WithLabelValues(c.name, "refused").Inc()
			c.logger.Error("channel refused a notification; dropping it", "alerts", len(batch), "err", err)
			c.done(batch)
			continue
		}
		if failingSince.IsZero() {
			failingSince = time.Now()
		}
		c.logger.Warn("delivering notification failed; will retry", "alerts", len(batch), "retry_in", backoff, "err", err)
		// Jitter spreads the retries of many channels.
		wait := backoff/2 + time.Duration(rand.Int64N(int64(backoff/2)+1))
		select {
		case <-ctx.Done():
			return
		case <-time.After(wait):
		}
		backoff = min(2*backoff, c.maxBackoff)
	}
}
