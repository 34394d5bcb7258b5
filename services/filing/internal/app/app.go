// Package app holds filing's use cases, each written once over any storage engine: an engine
// (PostgreSQL in package store, memory in store/memstore) locks and loads an order, runs the use
// case's function on it, and writes what the function changed, the calls it owes other services
// and the idempotent answer in one transaction. The rules the functions apply live in domain; the
// protobuf forms and the outbox messages in convert.
package app

import (
	"context"
	"time"

	"go.uber.org/zap"
	"google.golang.org/protobuf/proto"

	"github.com/icpverify/icpverify/pkg/batch"
	"github.com/icpverify/icpverify/pkg/errs"

	filingv1 "github.com/icpverify/icpverify/pkg/gen/icp/filing/v1"
	"github.com/icpverify/icpverify/pkg/outbox"
	"github.com/icpverify/icpverify/services/filing/internal/convert"
	"github.com/icpverify/icpverify/services/filing/internal/domain"
)

// Engine is what the use cases need from storage. Both engines pass one suite (store/storetest).
type Engine interface {
	// CreateOrder runs fn at now (read by the engine) and stores the order it returns, with its
	// history, and the answer op.Answer makes of it.
	CreateOrder(ctx context.Context, op Op, fn CreateFunc) (proto.Message, error)
	// UpdateOrder locks order id, reads the time after the lock, runs fn on a copy of the order and,
	// when fn succeeds, writes the copy's changes (fields, the verifiers of a new submission, the
	// history entries fn added), the record and the messages fn returns, and op.Answer of the copy,
	// in one transaction; after the commit it wakes the outbox relay if a message was written. An
	// error from fn leaves everything as it was. A request id seen before gets its first answer.
	UpdateOrder(ctx context.Context, op Op, id string, fn UpdateFunc) (proto.Message, error)
	GetOrder(ctx context.Context, id string) (domain.Order, error)
	// ListOrders reads up to limit orders newest first, of tenant unless it is "" (every tenant), in
	// state unless it is StateUnspecified, strictly after the position after (nil: from the newest).
	ListOrders(ctx context.Context, tenant string, state domain.State, after *domain.Position, limit int) ([]domain.Order, error)

	// VerificationOutcomes applies reqs (each a *MarkVerifiedRequest or *ReturnOrderRequest) in one
	// transaction, deciding through domain.VerificationOutcome one after the other in order, and
	// returns one result per request: the order as the request left it, or the request's own error
	// (a refused request changes and stores nothing, the others still apply). Each request is
	// idempotent by (order_id, submission) and by its request id under its single method's name, so
	// a batch repeated, or holding requests applied before, changes nothing twice. The error is the
	// batch's as a whole (nothing applied). A batch of one is the single call: the PostgreSQL engine
	// commits concurrent ones together (group commit).
	VerificationOutcomes(ctx context.Context, reqs []proto.Message) ([]batch.Result[*filingv1.Order], error)

	// The record-mismatch budget of each tenant (records.go): each comparison of an order with a record
	// its tenant does not hold takes one before it runs, in its own transaction, so the count survives
	// the failed submission's rollback. Under a lock per tenant, ReserveMismatch reads the tenant's
	// reservations newer than b.Since(now), refuses through b.Check, else records one at now and returns
	// its id; it may forget the tenant's reservations that left the window.
	ReserveMismatch(ctx context.Context, tenant, orderID, subjectID string, b domain.MismatchBudget) (string, error)
	// CheckMismatchBudget refuses (b.Check) when tenant's budget is spent, and records nothing.
	CheckMismatchBudget(ctx context.Context, tenant string, b domain.MismatchBudget) error
	// ReleaseMismatch gives back reservation id: its comparison found no mismatch, or never ran.
	ReleaseMismatch(ctx context.Context, id string) error
}

// Op is one mutating request as the engine keeps its answer: by method and request id, with the
// request's fingerprint.
type Op struct {
	Method    string
	RequestID string
	Req       proto.Message
	// NewAnswer returns an empty answer for a replay to fill; Answer renders the answer of the order
	// as the change left it.
	NewAnswer func() proto.Message
	Answer    func(domain.Order) proto.Message
}

// CreateFunc builds a new order at now; record reads a subject's live approved record.
type CreateFunc func(now time.Time, record domain.RecordLookup) (domain.Order, error)

// UpdateFunc changes the locked order o at now; record reads a subject's live approved record and
// keeps it locked to the end of the change.
type UpdateFunc func(o *domain.Order, now time.Time, record domain.RecordLookup) (Effects, error)

// Effects is what a change writes besides the order.
type Effects struct {
	Messages []outbox.Message
	// Record, when set, is a subject's approved record to create or replace.
	Record *domain.Subject
	// Slots, when it names phones, are the pending challenges a submission takes: the engine locks
	// each phone, counts the other orders awaiting verification of it and refuses through
	// PhoneSlots.CheckSlots before writing anything.
	Slots domain.PhoneSlots
	// Holder, when set, adds a holder to the record of a subject or removes one (written after Record).
	Holder *domain.HolderChange
}

// Config holds the settings the use cases depend on.
type Config struct {
	Rules              domain.Rules
	VerificationWindow time.Duration // how long the verifiers have after SubmitOrder (0: 24h)
	Locale             string        // SMS locale passed to verification.OpenSession ("": zh-CN)
	// MaxOpenChallengesPerPhone: orders awaiting verification naming one phone, across tenants (0: the
	// default, negative: no limit).
	MaxOpenChallengesPerPhone int
	// Submits bound how often one order is submitted (zero fields: the defaults, negative: none).
	Submits domain.SubmitLimits
	// Mismatches bound, per tenant, the mismatches of its orders with records it does not hold (zero
	// fields: the defaults, negative Max: none).
	Mismatches domain.MismatchBudget
	// Log gets the audit line of each such mismatch (nil: none).
	Log *zap.Logger
}

// WithDefaults fills the unset settings.
func (c Config) WithDefaults() Config {
	if c.VerificationWindow <= 0 {
		c.VerificationWindow = 24 * time.Hour
	}
	if c.Locale == "" {
		c.Locale = "zh-CN"
	}
	if c.MaxOpenChallengesPerPhone == 0 {
		c.MaxOpenChallengesPerPhone = domain.DefaultMaxOpenChallengesPerPhone
	}
	if c.Submits.ResubmitCooldown == 0 {
		c.Submits.ResubmitCooldown = domain.DefaultResubmitCooldown
	}
	if c.Submits.MaxPerDay == 0 {
		c.Submits.MaxPerDay = domain.DefaultMaxSubmissionsPerDay
	}
	if c.Mismatches.Max == 0 {
		c.Mismatches.Max = domain.DefaultRecordMismatchBudget
	}
	if c.Mismatches.Window <= 0 {
		c.Mismatches.Window = domain.DefaultRecordMismatchWindow
	}
	if c.Log == nil {
		c.Log = zap.NewNop()
	}
	return c
}

// App serves filing's use cases on an engine.
type App struct {
	engine Engine
	cfg    Config
}

// New returns the use cases on engine.
func New(engine Engine, cfg Config) *App { return &App{engine: engine, cfg: cfg.WithDefaults()} }

// request is what every mutating request carries.
type request interface {
	proto.Message
	GetRequestId() string
}

// op is the Op of req answered with R made by wrap from the rendered order.
func op[R proto.Message](method string, req request, wrap func(*filingv1.Order) R) Op {
	return Op{Method: method, RequestID: req.GetRequestId(), Req: req,
		NewAnswer: func() proto.Message { var r R; return r.ProtoReflect().New().Interface() },
		Answer:    func(o domain.Order) proto.Message { return wrap(convert.Order(o)) }}
}

// scoped is the idempotency method of a public request: request ids are the tenant's own, so one
// tenant's id never replays (nor reveals) another tenant's answer.
func scoped(method string, actor domain.Actor) string { return method + "@" + actor.Tenant }

// checkActor refuses a public call without a tenant (the edge gives every public caller one).
func checkActor(a domain.Actor) error {
	if a.Tenant == "" && !a.CrossTenant {
		return errs.PermissionDenied(domain.ReasonNoTenant, "the caller belongs to no tenant")
	}
	return nil
}

// answer is the engine's answer as the request's response type.
func answer[R proto.Message](resp proto.Message, err error) (R, error) {
	var zero R
	if err != nil {
		return zero, err
	}
	return resp.(R), nil
}
