package accounts

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"net/smtp"
	"strings"
	"time"
)

// MailConfig configures outgoing mail (invites, password resets).
type MailConfig struct {
	// SMTPAddr is the SMTP server, host:port. Empty: no mail is sent; links
	// are logged and shown to admins instead.
	SMTPAddr string `json:"smtp_addr,omitempty" env:"MERIDIAN_SMTP_ADDR"`
	// From is the sender address. Default: meridian@localhost.
	From string `json:"smtp_from,omitempty" env:"MERIDIAN_SMTP_FROM"`
	// Username and Password authenticate with PLAIN (only over TLS or to
	// a loopback server, as net/smtp requires). Password is never logged.
	Username string `json:"smtp_username,omitempty" env:"MERIDIAN_SMTP_USERNAME"`
	Password string `json:"smtp_password,omitempty" env:"MERIDIAN_SMTP_PASSWORD"`
}

// Mailer sends one message.
type Mailer interface {
	Send(ctx context.Context, to, subject, body string) error
}

// NewMailer returns an SMTP mailer, or nil when no server is configured.
func NewMailer(c MailConfig) Mailer {
	if c.SMTPAddr == "" {
		return nil
	}
	if c.From == "" {
		c.From = "meridian@localhost"
	}
	return smtpMailer{c}
}

type smtpMailer struct{ c MailConfig }

func (m smtpMailer) Send(ctx context.Context, to, subject, body string) error {
	if strings.ContainsAny(to+subject, "\r\n") {
		return fmt.Errorf("mail: header injection refused")
	}
	host, _, err := net.SplitHostPort(m.c.SMTPAddr)
	if err != nil {
		return fmt.Errorf("mail: smtp_addr %q: %w", m.c.SMTPAddr, err)
	}
	var auth smtp.Auth
	if m.c.Username != "" {
		auth = smtp.PlainAuth("", m.c.Username, m.c.Password, host)
	}
	msg := "From: " + m.c.From + "\r\nTo: " + to + "\r\nSubject: " + subject +
		"\r\nDate: " + time.Now().UTC().Format(time.RFC1123Z) +
		"\r\nMIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n" +
		strings.ReplaceAll(body, "\n", "\r\n")
	done := make(chan error, 1)
	go func() { done <- smtp.SendMail(m.c.SMTPAddr, auth, m.c.From, []string{to}, []byte(msg)) }()
	select {
	case err := <-done:
		if err != nil {
			return fmt.Errorf("mail: sending to %s: %w", to, err)
		}
		return nil
	case <-ctx.Done():
		return fmt.Errorf("mail: sending to %s: %w", to, ctx.Err())
	}
}

// deliver sends a link by mail, or logs it when no mailer is configured.
// It reports whether the link was mailed.
func (a *API) deliver(ctx context.Context, to, subject, body, link string) bool {
	if a.mail == nil {
		a.log.Info("no SMTP server configured (MERIDIAN_SMTP_ADDR): the link is shown to admins and logged here", "to", to, "subject", subject, "link", link)
		return false
	}
	if err := a.mail.Send(ctx, to, subject, body); err != nil {
		a.log.Warn("sending mail failed; the link is shown to admins", "to", to, "err", err)
		return false
	}
	return true
}

var _ = slog.LevelInfo
