package store

import (
	"fmt"
	"strings"
	"time"

	"github.com/google/uuid"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/icpverify/icpverify/pkg/clock"
	deadlinev1 "github.com/icpverify/icpverify/pkg/gen/icp/deadline/v1"
	verificationv1 "github.com/icpverify/icpverify/pkg/gen/icp/verification/v1"
	"github.com/icpverify/icpverify/services/filing/internal/domain"
)

// This file holds what both engines (this PostgreSQL store and memstore) share besides the domain
// rules: settings, ids, clock precision and the calls owed to other services, so the two differ only
// in storage.

// Outbox targets this service writes; the relay in server.Run has a handler for each.
const (
	TargetOpenSession      = "verification.OpenSession"
	TargetCancelSession    = "verification.CancelSession"
	TargetScheduleDeadline = "deadline.ScheduleDeadline"
	TargetCancelDeadline   = "deadline.CancelDeadline"
)

// ReasonOrderNotFound is the reason of an unknown order id.
const ReasonOrderNotFound = "ORDER_NOT_FOUND"

// Config holds the settings the store's rules depend on.
type Config struct {
	Rules              domain.Rules
	VerificationWindow time.Duration // how long the verifiers have after SubmitOrder (0: 24h)
	Locale             string        // SMS locale passed to verification.OpenSession ("": zh-CN)
}

// WithDefaults fills the unset settings.
func (c Config) WithDefaults() Config {
	if c.VerificationWindow <= 0 {
		c.VerificationWindow = 24 * time.Hour
	}
	if c.Locale == "" {
		c.Locale = "zh-CN"
	}
	return c
}

// Now is clk's time truncated to PostgreSQL's microsecond precision, so the first answer (kept by
// idempotency), later reads and page tokens show the same times on both engines.
func Now(clk clock.Clock) time.Time { return clk.Now().UTC().Truncate(time.Microsecond) }

// NewID returns an id with prefix: a UUIDv7 (time-ordered, so indexes stay compact) without dashes.
func NewID(prefix string) string {
	u, err := uuid.NewV7()
	if err != nil {
		u = uuid.New()
	}
	return prefix + strings.ReplaceAll(u.String(), "-", "")
}

// Message is one call a change owes another service; the engine queues it in the same transaction
// (or under the same lock) as the change.
type Message struct {
	Target string
	Msg    proto.Message
	// Sensitive payloads (phones, ID tails) are wiped if the row is ever parked.
	Sensitive bool
}

// SubmitMessages are the calls of a submission that opened a verification window: the session with
// every verifier's phone and ID tails (which live nowhere else in this service), and its deadline.
func SubmitMessages(orderID string, p domain.Submission, locale string) []Message {
	if len(p.Verifiers) == 0 {
		return nil
	}
	specs := make([]*verificationv1.VerifierSpec, len(p.Verifiers))
	for i, v := range p.Verifiers {
		specs[i] = &verificationv1.VerifierSpec{Phone: v.Phone, Roles: v.Roles, IdTails: v.IDTails}
	}
	return []Message{
		{Target: TargetOpenSession, Sensitive: true, Msg: &verificationv1.OpenSessionRequest{
			RequestId: fmt.Sprintf("filing:open-session:%s:%d", orderID, p.Number), OrderId: orderID, Submission: p.Number,
			DeadlineAt: timestamppb.New(p.DeadlineAt), Verifiers: specs, Locale: locale}},
		{Target: TargetScheduleDeadline, Msg: &deadlinev1.ScheduleDeadlineRequest{
			RequestId: fmt.Sprintf("filing:schedule-deadline:%s:%d", orderID, p.Number), OrderId: orderID, Submission: p.Number,
			DueTime: timestamppb.New(p.DeadlineAt)}},
	}
}

// CancelMessages are the calls of a cancel of order o (in its state before the cancel): an order in
// verification closes its session and its deadline timer.
func CancelMessages(o domain.Order) []Message {
	if o.State != domain.StateAwaitingVerification {
		return nil
	}
	return []Message{
		{Target: TargetCancelSession, Msg: &verificationv1.CancelSessionRequest{
			RequestId: fmt.Sprintf("filing:cancel-session:%s:%d", o.ID, o.Submission), OrderId: o.ID, Submission: o.Submission}},
		{Target: TargetCancelDeadline, Msg: &deadlinev1.CancelDeadlineRequest{
			RequestId: fmt.Sprintf("filing:cancel-deadline:%s:%d", o.ID, o.Submission), OrderId: o.ID, Submission: o.Submission}},
	}
}

// ReviewEvent is the event of an administration's decision.
func ReviewEvent(approved bool) domain.Event {
	if approved {
		return domain.EventApprove
	}
	return domain.EventReject
}

// OutcomeText is the history reason of a verification outcome, and the return reason to store.
func OutcomeText(ev domain.Event, reason domain.ReturnReason) (string, domain.ReturnReason) {
	if ev == domain.EventReturn {
		return reason.String(), reason
	}
	return "all verifiers passed", domain.ReturnNone
}
