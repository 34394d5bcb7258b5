// Package provider delivers SMS texts to a gateway. Every provider sits behind one interface so the
// dispatcher neither knows nor cares which is configured. A Send error means "not accepted"; its
// Class (ClassOf: an *Error's, else Transient) tells the dispatcher what to do: retry (how often is
// its decision), retry later, or fail the message at once. A provider whose gateway takes many messages in one call also
// implements BatchProvider, and the dispatcher then sends a worker's batch in one call.
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
	"regexp"
	"strings"
	"sync"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/icpverify/icpverify/pkg/pii"
)

// Message is what a provider delivers. Phone is E.164. ID is the message id, which gateways use as
// the idempotency key: a resend after a crash carries the same id.
type Message struct {
	ID     string
	Phone  string
	Text   string
	Sender string
	// Values are what a provider that renders its own template (aliyun, tencent) fills in, by our
	// name: "code", and "deadline" as Text shows it (domain.TemplateValues). The text gateways
	// (webhook, console) send Text instead.
	Values map[string]string
}

// Accepted is what a gateway answered when it took a message: its own ids of the message, by which
// its delivery receipts name it (aliyun's BizId, tencent's SerialNo, one per segment for CMPP). A
// gateway that gives none (console, a webhook that answers no provider_id) leaves it empty; its
// receipts, if any, must then name our message id.
type Accepted struct {
	ProviderIDs []string
}

// Outcome is one message's result of a batch call: Err nil once the gateway accepted it.
type Outcome struct {
	Accepted
	Err error
}

// Provider sends one SMS. Send returns a nil error once the gateway accepted the message.
type Provider interface {
	Name() string
	Send(ctx context.Context, m Message) (Accepted, error)
}

// BatchProvider is a Provider whose gateway also takes several messages in one call (the list APIs
// of the big SMS providers: many phones, each with its own text).
type BatchProvider interface {
	Provider
	// MaxBatch is how many messages one SendBatch call takes at most.
	MaxBatch() int
	// SendBatch sends msgs (at most MaxBatch, distinct ids) in one call and returns one outcome per
	// message, in the order of msgs: Err nil once the gateway accepted that message, else "not
	// accepted, retry" as for Send. The message id stays each message's idempotency key.
	SendBatch(ctx context.Context, msgs []Message) []Outcome
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
func (c *Console) Send(_ context.Context, m Message) (Accepted, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	_, err := fmt.Fprintf(c.Out, "DEV SMS to %s [%s]: %s\n", pii.MaskPhone(m.Phone), m.ID, m.Text)
	return Accepted{}, err
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
func (w *Webhook) Send(ctx context.Context, m Message) (Accepted, error) {
	payload, err := json.Marshal(webhookBody{MessageID: m.ID, Phone: m.Phone, Text: m.Text, Sender: m.Sender})
	if err != nil {
		return Accepted{}, fmt.Errorf("webhook: encode: %w", err)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, w.URL, bytes.NewReader(payload))
	if err != nil {
		return Accepted{}, fmt.Errorf("webhook: build request: %w", err)
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Idempotency-Key", m.ID)
	if w.Token != "" {
		req.Header.Set("Authorization", "Bearer "+w.Token)
	}
	resp, err := w.Client.Do(req)
	if err != nil {
		// *url.Error repeats the URL, which may carry a secret in its query; keep only the cause.
		return Accepted{}, fmt.Errorf("webhook: request failed: %w", unwrapURLError(err))
	}
	defer resp.Body.Close()
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10)) // lets the connection be reused
		return Accepted{}, fmt.Errorf("webhook: gateway answered HTTP %d", resp.StatusCode)
	}
	// An answer may carry {"provider_id": "..."}: the gateway's id its receipts will name. Any other
	// body (or none) is still acceptance.
	var ans struct {
		ProviderID string `json:"provider_id"`
	}
	_ = json.NewDecoder(io.LimitReader(resp.Body, 64<<10)).Decode(&ans)
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	return acceptedID(ans.ProviderID), nil
}

// maxProviderID bounds a gateway's id of a message as it is stored.
const maxProviderID = 128

// acceptedID is the acceptance naming the gateway's id id; none when it is empty or too long to be one.
func acceptedID(id string) Accepted {
	if id == "" || len(id) > maxProviderID {
		return Accepted{}
	}
	return Accepted{ProviderIDs: []string{id}}
}

// DefaultBatchMax is the default of WebhookBatch.Max.
const DefaultBatchMax = 100

// WebhookBatch is a Webhook whose gateway also has a batch endpoint: SendBatch posts many messages
// in one request to BatchURL (Send still posts one to URL).
type WebhookBatch struct {
	*Webhook
	BatchURL string
	Max      int // messages per request; DefaultBatchMax when <= 0
}

// WithBatch returns w with the batch endpoint batchURL taking up to perRequest messages per request.
func (w *Webhook) WithBatch(batchURL string, perRequest int) *WebhookBatch {
	return &WebhookBatch{Webhook: w, BatchURL: batchURL, Max: perRequest}
}

// MaxBatch is Max, or DefaultBatchMax when unset.
func (w *WebhookBatch) MaxBatch() int {
	if w.Max <= 0 {
		return DefaultBatchMax
	}
	return w.Max
}

type batchRequest struct {
	Messages []webhookBody `json:"messages"`
}

type batchResult struct {
	MessageID  string `json:"message_id"`
	Accepted   bool   `json:"accepted"`
	Error      string `json:"error,omitempty"`
	ProviderID string `json:"provider_id,omitempty"`
}

type batchResponse struct {
	Results []batchResult `json:"results"`
}

// maxBatchResponse bounds how much of a batch answer is read; a longer one does not parse.
const maxBatchResponse = 1 << 20

// SendBatch posts {"messages":[{"message_id","phone","text","sender"},...]} to BatchURL and reads
// {"results":[{"message_id","accepted","error","provider_id"},...]} from a 2xx answer (provider_id
// optional: the gateway's id its receipts will name). Each message's
// message_id is its idempotency key (the request has no Idempotency-Key header: a retried batch
// may hold other messages). A message is accepted only when its result says accepted:true; a
// message the answer does not list, a non-2xx answer, a timeout, a transport error or an answer that
// does not parse leave the messages not accepted (retry). Errors name the HTTP status or the cause,
// never the phone, the text or the response body; a gateway's own error string for one message is
// kept, shortened and with every run of 4 or more digits masked.
func (w *WebhookBatch) SendBatch(ctx context.Context, msgs []Message) []Outcome {
	errs := make([]Outcome, len(msgs))
	if len(msgs) == 0 {
		return errs
	}
	all := func(err error) []Outcome {
		for i := range errs {
			errs[i].Err = err
		}
		return errs
	}
	body := batchRequest{Messages: make([]webhookBody, len(msgs))}
	for i, m := range msgs {
		body.Messages[i] = webhookBody{MessageID: m.ID, Phone: m.Phone, Text: m.Text, Sender: m.Sender}
	}
	payload, err := json.Marshal(body)
	if err != nil {
		return all(fmt.Errorf("webhook batch: encode: %w", err))
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, w.BatchURL, bytes.NewReader(payload))
	if err != nil {
		return all(fmt.Errorf("webhook batch: build request: %w", unwrapURLError(err)))
	}
	req.Header.Set("Content-Type", "application/json")
	if w.Token != "" {
		req.Header.Set("Authorization", "Bearer "+w.Token)
	}
	resp, err := w.Client.Do(req)
	if err != nil {
		return all(fmt.Errorf("webhook batch: request failed: %w", unwrapURLError(err)))
	}
	defer resp.Body.Close()
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10)) // lets the connection be reused
		return all(fmt.Errorf("webhook batch: gateway answered HTTP %d", resp.StatusCode))
	}
	var ans batchResponse
	// The decoder's error may quote the body: it is not kept.
	if err := json.NewDecoder(io.LimitReader(resp.Body, maxBatchResponse)).Decode(&ans); err != nil {
		_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
		return all(fmt.Errorf("webhook batch: gateway answered HTTP %d with a body that is not a batch result", resp.StatusCode))
	}
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	// A message listed twice counts as accepted only if no entry refuses it.
	results := make(map[string]batchResult, len(ans.Results))
	for _, r := range ans.Results {
		if old, ok := results[r.MessageID]; ok && !old.Accepted {
			continue
		}
		results[r.MessageID] = r
	}
	for i, m := range msgs {
		r, ok := results[m.ID]
		switch {
		case !ok:
			errs[i].Err = fmt.Errorf("webhook batch: gateway answered HTTP %d without a result for this message", resp.StatusCode)
		case !r.Accepted && r.Error != "":
			errs[i].Err = fmt.Errorf("webhook batch: gateway refused the message: %s", gatewayError(r.Error))
		case !r.Accepted:
			errs[i].Err = errors.New("webhook batch: gateway refused the message")
		default:
			errs[i].Accepted = acceptedID(r.ProviderID)
		}
	}
	return errs
}

// maxGatewayError bounds the gateway's error string kept in an error (bytes, cut at a rune).
const maxGatewayError = 120

// digitRun is a run of 4 or more digits (any script): a phone number or a code a gateway may quote.
var digitRun = regexp.MustCompile(`\p{Nd}{4,}`)

// gatewayError makes a gateway's error string fit to store and log: invalid UTF-8 and control
// characters are replaced, every run of 4 or more digits becomes "#", and it is cut to
// maxGatewayError bytes.
func gatewayError(s string) string {
	if len(s) > 4*maxGatewayError {
		s = s[:4*maxGatewayError]
	}
	s = strings.ToValidUTF8(s, "?")
	s = strings.Map(func(r rune) rune {
		if unicode.IsControl(r) {
			return ' '
		}
		return r
	}, s)
	s = digitRun.ReplaceAllString(s, "#")
	if len(s) > maxGatewayError {
		cut := maxGatewayError
		for cut > 0 && !utf8.RuneStart(s[cut]) {
			cut--
		}
		s = s[:cut] + "…"
	}
	return s
}

func unwrapURLError(err error) error {
	var ue *url.Error
	if errors.As(err, &ue) {
		return ue.Err
	}
	return err
}
