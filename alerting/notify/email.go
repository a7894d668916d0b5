package notify

import (
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"mime/quotedprintable"
	"net"
	"net/smtp"
	"os"
	"sort"
	"strings"
	"time"

	"github.com/prometheus/prometheus/model/labels"
)

// emailSender sends one plain-text email per notification over SMTP, with
// STARTTLS when the server offers it (or always, with require_tls) and
// PLAIN authentication when a username is set.
type emailSender struct {
	cfg EmailConfig
}

func (s *emailSender) send(ctx context.Context, alerts []*Alert) error {
	host, _, err := net.SplitHostPort(s.cfg.Smarthost)
	if err != nil {
		return Permanent(fmt.Errorf("smarthost: %w", err))
	}
	var d net.Dialer
	conn, err := d.DialContext(ctx, "tcp", s.cfg.Smarthost)
	if err != nil {
		return fmt.Errorf("connect to SMTP server %s: %w", s.cfg.Smarthost, err)
	}
	if dl, ok := ctx.Deadline(); ok {
		_ = conn.SetDeadline(dl)
	}
	c, err := smtp.NewClient(conn, host)
	if err != nil {
		conn.Close()
		return fmt.Errorf("SMTP greeting from %s: %w", s.cfg.Smarthost, err)
	}
	defer c.Close()
	hostname, _ := os.Hostname()
	if hostname == "" {
		hostname = "localhost"
	}
	if err := c.Hello(hostname); err != nil {
		return fmt.Errorf("SMTP EHLO: %w", err)
	}
	if ok, _ := c.Extension("STARTTLS"); ok {
		if err := c.StartTLS(&tls.Config{ServerName: host, InsecureSkipVerify: s.cfg.InsecureSkipVerify}); err != nil {
			return fmt.Errorf("SMTP STARTTLS: %w", err)
		}
	} else if s.cfg.RequireTLS {
		return Permanent(errors.New("SMTP server does not offer STARTTLS and require_tls is set"))
	}
	if s.cfg.AuthUsername != "" {
		pass, err := readSecret(s.cfg.AuthPassword, s.cfg.AuthPasswordFile)
		if err != nil {
			return fmt.Errorf("SMTP password: %w", err)
		}
		if err := c.Auth(smtp.PlainAuth("", s.cfg.AuthUsername, pass, host)); err != nil {
			return smtpError("SMTP AUTH", err)
		}
	}
	if err := c.Mail(s.cfg.From); err != nil {
		return smtpError("SMTP MAIL FROM", err)
	}
	for _, to := range s.cfg.To {
		if err := c.Rcpt(to); err != nil {
			return smtpError("SMTP RCPT TO "+to, err)
		}
	}
	w, err := c.Data()
	if err != nil {
		return smtpError("SMTP DATA", err)
	}
	if _, err := w.Write(emailMessage(s.cfg, alerts, time.Now())); err != nil {
		return fmt.Errorf("SMTP DATA: %w", err)
	}
	if err := w.Close(); err != nil {
		return smtpError("SMTP DATA", err)
	}
	return c.Quit()
}

// smtpError makes 5xx replies permanent; 4xx replies and the rest are retried.
func smtpError(what string, err error) error {
	err = fmt.Errorf("%s: %w", what, err)
	var te interface{ Temporary() bool }
	if msg := err.Error(); strings.Contains(msg, ": 5") && !errors.As(err, &te) {
		for _, code := range []string{": 550", ": 551", ": 552", ": 553", ": 554", ": 530", ": 535"} {
			if strings.Contains(msg, code) {
				return Permanent(err)
			}
		}
	}
	return err
}

// EmailSubject is the subject of a notification about alerts.
func EmailSubject(alerts []*Alert) string {
	firing := 0
	names := map[string]bool{}
	tenants := map[string]bool{}
	for _, a := range alerts {
		if !a.Resolved {
			firing++
		}
		names[a.Name()] = true
		if a.Tenant != "" {
			tenants[a.Tenant] = true
		}
	}
	status := fmt.Sprintf("[FIRING:%d]", firing)
	if firing == 0 {
		status = fmt.Sprintf("[RESOLVED:%d]", len(alerts))
	}
	return fmt.Sprintf("%s %s%s", status, strings.Join(sortedKeys(names), ", "), tenantSuffix(tenants))
}

func tenantSuffix(t map[string]bool) string {
	if len(t) == 0 {
		return ""
	}
	return " (tenant " + strings.Join(sortedKeys(t), ", ") + ")"
}

func sortedKeys(m map[string]bool) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

func emailMessage(cfg EmailConfig, alerts []*Alert, now time.Time) []byte {
	var body bytes.Buffer
	for _, a := range alerts {
		fmt.Fprintf(&body, "[%s] %s\n", strings.ToUpper(a.Status()), a.Name())
		if s := a.Annotations.Get("summary"); s != "" {
			fmt.Fprintf(&body, "%s\n", s)
		}
		if s := a.Annotations.Get("description"); s != "" {
			fmt.Fprintf(&body, "%s\n", s)
		}
		fmt.Fprintf(&body, "Started: %s\n", a.StartsAt.UTC().Format(time.RFC3339))
		if a.Resolved {
			fmt.Fprintf(&body, "Resolved: %s\n", a.EndsAt.UTC().Format(time.RFC3339))
		}
		fmt.Fprintln(&body, "Labels:")
		a.Labels.Range(func(l labels.Label) { fmt.Fprintf(&body, "  %s = %s\n", l.Name, l.Value) })
		if a.Annotations.Len() > 0 {
			fmt.Fprintln(&body, "Annotations:")
			a.Annotations.Range(func(l labels.Label) { fmt.Fprintf(&body, "  %s = %s\n", l.Name, l.Value) })
		}
		if a.GeneratorURL != "" {
			fmt.Fprintf(&body, "Source: %s\n", a.GeneratorURL)
		}
		fmt.Fprintln(&body)
	}
	var msg bytes.Buffer
	header := func(k, v string) { fmt.Fprintf(&msg, "%s: %s\r\n", k, v) }
	header("From", cfg.From)
	header("To", strings.Join(cfg.To, ", "))
	header("Subject", EmailSubject(alerts))
	header("Date", now.Format(time.RFC1123Z))
	header("Message-Id", fmt.Sprintf("<%d.strata@%s>", now.UnixNano(), hostOf(cfg.Smarthost)))
	header("MIME-Version", "1.0")
	header("Content-Type", "text/plain; charset=UTF-8")
	header("Content-Transfer-Encoding", "quoted-printable")
	msg.WriteString("\r\n")
	qp := quotedprintable.NewWriter(&msg)
	_, _ = qp.Write(body.Bytes())
	_ = qp.Close()
	return msg.Bytes()
}
