// Package provider delivers SMS texts to a gateway. Every provider sits behind one interface so the
// dispatcher neither knows nor cares which is configured. A Send error means "not accepted, retry":
// the dispatcher decides how often.
package provider

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"sync"
	"time"

	"github.com/icpverify/icpverify/pkg/pii"
)

// Message is what a provider delivers. Phone is E.164. ID is the message id, which gateways use as
// the idempotency key: a resend after a crash carries the same id.
type Message struct {
	ID     string
	Phone  string
	Text   string
	Sender string
}

// Provider sends one SMS. Send returns nil once the gateway accepted the message.
type Provider interface {
	Name() string
	Send(ctx context.Context, m Message) error
}

// Console is the development provider: it prints the text (with the code) instead of sending it.
type Console struct {
	mu  sync.Mutex
	Out io.Writer
}

// NewConsole returns a console provider writing to out.
func NewConsole(out io.Writer) *Console { return &Console{Out: out} }

// Name is "console".
func (*Console) Name() string { return "console" }

// Send writes "DEV SMS to <masked phone> [<message_id>]: <text>".
func (c *Console) Send(_ context.Context, m Message) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	_, err := fmt.Fprintf(c.Out, "DEV SMS to %s [%s]: %s\n", pii.MaskPhone(m.Phone), m.ID, m.Text)
	return err
}

// Webhook posts each message as JSON to an HTTP gateway.
type Webhook struct {
	URL    string
	Token  string // optional; sent as "Authorization: Bearer <token>"
	Client *http.Client
}

// NewWebhookConns returns a webhook provider with the given per-request timeout whose transport keeps
// up to conns idle keep-alive connections to the gateway: at least the number of concurrent sends,
// or every send beyond them opens (and leaves in TIME_WAIT) a new TCP connection.
func NewWebhookConns(url, token string, timeout time.Duration, conns int) *Webhook {
	conns = max(conns, 2)
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.MaxIdleConns = max(tr.MaxIdleConns, conns)
	tr.MaxIdleConnsPerHost = conns
	tr.IdleConnTimeout = 90 * time.Second
	tr.DisableKeepAlives = false
	return &Webhook{URL: url, Token: token, Client: &http.Client{Timeout: timeout, Transport: tr}}
}

// Name is "webhook".
func (*Webhook) Name() string { return "webhook" }

type webhookBody struct {
	MessageID string `json:"message_id"`
	Phone     string `json:"phone"`
	Text      string `json:"text"`
	Sender    string `json:"sender"`
}

// Send posts {"message_id","phone","text","sender"} with an Idempotency-Key header equal to the
// message id. Any non-2xx answer, timeout or transport error is retryable; the error names the status
// but never the response body, the phone or the text.
func (w *Webhook) Send(ctx context.Context, m Message) error {
	payload, err := json.Marshal(webhookBody{MessageID: m.ID, Phone: m.Phone, Text: m.Text, Sender: m.Sender})
	if err != nil {
		return fmt.Errorf("webhook: encode: %w", err)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, w.URL, bytes.NewReader(payload))
	if err != nil {
		return fmt.Errorf("webhook: build request: %w", err)
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Idempotency-Key", m.ID)
	if w.Token != "" {
		req.Header.Set("Authorization", "Bearer "+w.Token)
	}
	resp, err := w.Client.Do(req)
	if err != nil {
		// *url.Error repeats the URL, which may carry a secret in its query; keep only the cause.
		return fmt.Errorf("webhook: request failed: %w", unwrapURLError(err))
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10)) // lets the connection be reused
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		return fmt.Errorf("webhook: gateway answered HTTP %d", resp.StatusCode)
	}
	return nil
}

func unwrapURLError(err error) error {
	var ue *url.Error
	if errors.As(err, &ue) {
		return ue.Err
	}
	return err
}
