// Package domain holds the rules of sms-dispatch with no I/O: what a valid message is, how its text
// is rendered, whether the per-phone caps let it go now, and how long to wait before a retry.
// Time is always a parameter, so every rule is tested with fixed instants.
package domain

import (
	"slices"
	"strings"
	"time"

	"github.com/icpverify/icpverify/pkg/errs"
	"github.com/icpverify/icpverify/pkg/orderid"
	"github.com/icpverify/icpverify/pkg/phone"
)

// Template names the text of a message; the values mirror icp.smsdispatch.v1.Template.
type Template int

// The templates.
const (
	TemplateUnspecified Template = iota
	TemplateVerificationCode
)

// String is the name stored in the database.
func (t Template) String() string {
	switch t {
	case TemplateVerificationCode:
		return "VERIFICATION_CODE"
	}
	return "UNSPECIFIED"
}

// ParseTemplate reads a stored template name.
func ParseTemplate(s string) Template {
	if s == "VERIFICATION_CODE" {
		return TemplateVerificationCode
	}
	return TemplateUnspecified
}

// State is where a message stands.
type State string

// The states. QUEUED -> SENT (provider accepted) | FAILED (gave up). SENT -> DELIVERED |
// UNDELIVERED by the carrier's receipt, or AT_RISK when none came in time (AtRisk); AT_RISK ->
// DELIVERED | UNDELIVERED by a late receipt. With redelivery, SENT -> QUEUED instead of UNDELIVERED
// or AT_RISK (redeliver.go). FAILED, DELIVERED and UNDELIVERED are final (receipt.go).
const (
	StateQueued      State = "QUEUED"
	StateSent        State = "SENT"
	StateFailed      State = "FAILED"
	StateDelivered   State = "DELIVERED"
	StateUndelivered State = "UNDELIVERED"
	StateAtRisk      State = "AT_RISK"
)

// Locales the templates are written in.
const (
	LocaleZhCN = "zh-CN"
	LocaleEn   = "en"
)

// Limits on caller-chosen input (security review M5).
const (
	MaxMessageIDLength = 128
	MaxParams          = 8  // template parameters of one message (the template uses two)
	MaxParamKeyLength  = 32 // bytes of a parameter name
	MaxLocaleLength    = 35 // a BCP 47 tag as used here (zh-CN, en-US, zh_Hans_CN)
)

// CheckMessageID checks a message id given in field (GetMessage; SendMessage checks it with the rest).
func CheckMessageID(field, id string) error {
	if id == "" || len(id) > MaxMessageIDLength {
		return errs.Invalid(field, ReasonInvalidMessageID, "%s is required, at most %d characters", field, MaxMessageIDLength)
	}
	return nil
}

// Error reasons (ErrorInfo) this service returns.
const (
	ReasonInvalidMessageID  = "INVALID_MESSAGE_ID"
	ReasonInvalidTemplate   = "INVALID_TEMPLATE"
	ReasonMissingParam      = "MISSING_PARAM"
	ReasonInvalidParam      = "INVALID_PARAM"
	ReasonUnsupportedLocale = "UNSUPPORTED_LOCALE"
	ReasonInvalidExpireTime = "INVALID_EXPIRE_TIME"
	ReasonMessageIDReused   = "MESSAGE_ID_REUSED"
	ReasonMessageNotFound   = "MESSAGE_NOT_FOUND"
	ReasonMessageTooLong    = "MESSAGE_TOO_LONG"
)

// last_error values of messages the dispatcher gave up on without a provider error.
const (
	ErrorExpired       = "expired"
	ErrorRateLimited   = "rate limited"
	ErrorNothingToSend = "no message text to send"
	ErrorSuperseded    = "superseded" // a newer message for the same order, phone and template was stored
)

// Template parameters.
const (
	ParamCode     = "code"
	ParamDeadline = "deadline"
	// ParamLink is the optional verification link (verification's --verify-link-base/<token>).
	ParamLink = "link"
	// MaxLinkLength is the longest link verification sends (its MaxLinkLength: a base of at most
	// 41 characters, "/" and a 22-character token); the start-up check (CheckSignature) makes sure
	// it fits behind --sms-signature. A longer one is refused when it overflows (MESSAGE_TOO_LONG).
	MaxLinkLength       = 64
	MaxParamValueLength = 256
)

// Message is one outgoing SMS as the service stores it. Phone is E.164; Body and Params are wiped
// (Redacted) once the provider accepted the message or it failed for good: the text holds a code.
type Message struct {
	ID          string
	OrderID     string
	Phone       string
	Template    Template
	Params      map[string]string
	Locale      string
	Body        string
	State       State
	Attempts    int
	NextAttempt time.Time
	ExpireAt    time.Time
	Provider    string
	LastError   string
	CreatedAt   time.Time
	SentAt      time.Time // zero until SENT
	Redacted    bool
	// Sequence orders the messages of one (order, phone, template); see Supersedes.
	Sequence int32
	// ProviderIDs are the gateway's ids of the message (provider.Accepted), set with SENT: its
	// receipts name it by them.
	ProviderIDs []string
	// DeliveryCode is the carrier's code of the receipt that made it DELIVERED or UNDELIVERED
	// (DELIVRD, MK:0001, …), ReceiptAt when that receipt arrived.
	DeliveryCode string
	ReceiptAt    time.Time
}

// SendInput is a SendMessage request before validation.
type SendInput struct {
	Sequence  int32
	MessageID string
	Phone     string
	Template  Template
	Params    map[string]string
	Locale    string
	ExpireAt  time.Time // zero when the caller set none
	OrderID   string
}

// NewMessage validates in and returns the QUEUED message to store, due at once, its text rendered
// with signature. now is the creation instant.
func NewMessage(in SendInput, signature string, now time.Time) (Message, error) {
	if in.MessageID == "" || len(in.MessageID) > MaxMessageIDLength || strings.TrimSpace(in.MessageID) != in.MessageID {
		return Message{}, errs.Invalid("message_id", ReasonInvalidMessageID,
			"message_id is required, at most %d characters, without surrounding spaces", MaxMessageIDLength)
	}
	if err := orderid.CheckOptional("order_id", in.OrderID); err != nil {
		return Message{}, err
	}
	e164, err := phone.Normalize("phone", in.Phone)
	if err != nil {
		return Message{}, err
	}
	if in.Template != TemplateVerificationCode {
		return Message{}, errs.Invalid("template", ReasonInvalidTemplate, "unknown template")
	}
	locale, err := NormalizeLocale(in.Locale)
	if err != nil {
		return Message{}, err
	}
	if in.ExpireAt.IsZero() {
		// A code is useless after its deadline; a message without one could be sent days late.
		return Message{}, errs.Invalid("expire_time", ReasonInvalidExpireTime, "expire_time is required")
	}
	if len(in.Params) > MaxParams {
		return Message{}, errs.Invalid("params", ReasonInvalidParam, "a message has at most %d parameters", MaxParams)
	}
	params := make(map[string]string, len(in.Params))
	for k, v := range in.Params {
		if k == "" || len(k) > MaxParamKeyLength {
			return Message{}, errs.Invalid("params", ReasonInvalidParam, "a parameter name has 1 to %d characters", MaxParamKeyLength)
		}
		if len(v) > MaxParamValueLength {
			return Message{}, errs.Invalid("params."+k, ReasonInvalidParam, "parameter is longer than %d characters", MaxParamValueLength)
		}
		params[k] = v
	}
	m := Message{
		ID:          in.MessageID,
		OrderID:     in.OrderID,
		Sequence:    in.Sequence,
		Phone:       e164,
		Template:    in.Template,
		Params:      params,
		Locale:      locale,
		State:       StateQueued,
		NextAttempt: now,
		ExpireAt:    in.ExpireAt.UTC(),
		CreatedAt:   now,
	}
	body, err := Render(m.Template, m.Locale, signature, m.Params, m.ExpireAt)
	if err != nil {
		return Message{}, err
	}
	m.Body = body
	return m, nil
}

// NormalizeLocale maps a caller's locale to a template language: "" and zh* -> zh-CN, en* -> en.
func NormalizeLocale(locale string) (string, error) {
	if len(locale) > MaxLocaleLength {
		return "", errs.Invalid("locale", ReasonUnsupportedLocale, "locale must be zh-CN or en")
	}
	l := strings.ToLower(strings.TrimSpace(locale))
	switch {
	case l == "" || l == "zh" || strings.HasPrefix(l, "zh-") || strings.HasPrefix(l, "zh_"):
		return LocaleZhCN, nil
	case l == "en" || strings.HasPrefix(l, "en-") || strings.HasPrefix(l, "en_"):
		return LocaleEn, nil
	}
	return "", errs.Invalid("locale", ReasonUnsupportedLocale, "locale must be zh-CN or en")
}

// SameRequest tells whether a repeated SendMessage names the same message as the stored one. Only
// phone and template are compared: the params of a sent message are redacted and cannot be.
func SameRequest(stored, repeat Message) bool {
	return stored.Phone == repeat.Phone && stored.Template == repeat.Template
}

// MarkSent records the provider's acceptance at now. The text with the code is wiped (redacted) unless
// keepText: only development mode (console provider) keeps it, so the CLI and tests can read codes.
func (m *Message) MarkSent(provider string, now time.Time, keepText bool) {
	m.State, m.Provider, m.SentAt, m.LastError = StateSent, provider, now, ""
	m.ProviderIDs = slices.Clone(m.ProviderIDs)
	if !keepText {
		m.redact()
	}
}

// MarkFailed ends the message with lastErr and wipes its text: it will never be sent, so the code is
// not needed, in any mode.
func (m *Message) MarkFailed(lastErr string) {
	m.State, m.LastError = StateFailed, lastErr
	m.redact()
}

func (m *Message) redact() {
	m.Body = ""
	m.Params = map[string]string{}
	m.Redacted = true
}

// Supersedes tells whether storing newer makes older pointless: a message still QUEUED for the same
// order, phone and template carries a code the resend replaced, and sending it would spend a cap slot
// and delay the new code. Messages without an order are never superseded (nothing ties them).
// Only a higher sequence supersedes: deliveries may arrive out of order, and a late older code must
// never replace the newer one.
func Supersedes(newer, older Message) bool {
	return older.State == StateQueued && SameThread(newer, older) && older.Sequence < newer.Sequence
}

// SameThread tells whether two distinct messages belong to one (order, phone, template).
func SameThread(a, b Message) bool {
	return a.OrderID != "" && a.ID != b.ID && a.OrderID == b.OrderID && a.Phone == b.Phone && a.Template == b.Template
}

// ArrivedLate tells whether stored, already in the thread, makes the new message m pointless on arrival.
func ArrivedLate(m, stored Message) bool {
	return SameThread(m, stored) && stored.Sequence > m.Sequence
}

// ClaimCurrent tells whether a worker's claim (the attempts it read when claiming) still holds the
// stored message at now with enough lease left for one provider call: otherwise another worker may
// reclaim it mid-send, or already has, and this worker must not call the provider.
func ClaimCurrent(stored Message, attempts int, now time.Time, sendTimeout time.Duration) bool {
	return stored.State == StateQueued && stored.Attempts == attempts && !stored.NextAttempt.Before(now.Add(sendTimeout))
}
