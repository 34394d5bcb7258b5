// Package app holds verification's single-order and single-phone use cases (open, cancel, the two
// resends, status), each written once over any storage engine: an engine (PostgreSQL in package
// store, memory in store/memstore) locks what the use case needs, reads the time after the locks,
// runs its function on a copy and writes what the function changed, the calls it owes other
// services and the idempotent answer in one transaction. The batched paths (Verify,
// CloseIfIncomplete) stay in each engine, deciding through the same domain functions.
package app

import (
	"context"
	"crypto/rand"
	"io"
	"time"

	"go.uber.org/zap"
	"google.golang.org/protobuf/proto"

	pb "github.com/icpverify/icpverify/pkg/gen/icp/verification/v1"
	"github.com/icpverify/icpverify/pkg/outbox"
	"github.com/icpverify/icpverify/services/verification/internal/domain"
)

// Engine is what the use cases need from storage. Both engines pass one suite (store/storetest).
type Engine interface {
	// UpdateOrder locks the verification of order orderID (all its sessions, and the order itself
	// while it has none), reads the time after the lock, runs fn on a copy of the order's sessions
	// and, when fn succeeds, writes the sessions fn added, the session states and challenges it
	// changed, its messages and its answer in one transaction; after the commit it wakes the outbox
	// relay if a message was written. A request id seen before gets its first answer.
	UpdateOrder(ctx context.Context, op Op, orderID string, fn OrderFunc) (proto.Message, error)
	// UpdatePhone is UpdateOrder for the pending challenges of a phone in open sessions (locked in
	// the same order as Verify locks them). A Change with Err set is written all the same (a
	// mismatch's failure counts must stay) and answered with Err; its answer is not kept.
	UpdatePhone(ctx context.Context, op Op, phone string, fn PhoneFunc) (proto.Message, error)
	// OrderSessions reads the sessions of an order (without ID-tail hashes).
	OrderSessions(ctx context.Context, orderID string) (domain.OrderSessions, error)

	// Link reads the challenge of a link hash with its session (Found false: none) and the time.
	Link(ctx context.Context, hash []byte) (domain.LinkRecord, time.Time, error)

	Verify(ctx context.Context, in domain.VerifyInput) (*pb.VerifyResponse, error)
	CloseIfIncomplete(ctx context.Context, req *pb.CloseIfIncompleteRequest) (*pb.CloseIfIncompleteResponse, error)
}

// Op is one mutating request as the engine keeps its answer: by method and request id, with the
// request's fingerprint (never a phone or an ID tail in the clear).
type Op struct {
	Method    string
	RequestID string
	Req       proto.Message
	// NewAnswer returns an empty answer for a replay to fill.
	NewAnswer func() proto.Message
	// Phones, for UpdateOrder, are the phones whose counted failures the use case reads
	// (OrderSessions.PhoneFailures), under the order's lock.
	Phones []string
}

// OrderFunc changes the sessions of one order at now.
type OrderFunc func(o *domain.OrderSessions, now time.Time) (Change, error)

// PhoneFunc changes the pending challenges of one phone at now.
type PhoneFunc func(p *domain.PhoneChallenges, now time.Time) (Change, error)

// Change is what a use case answers and owes besides the records it changed.
type Change struct {
	Answer   proto.Message
	Messages []outbox.Message
	// Err, for UpdatePhone, is the answer of a change that must be kept although the call fails.
	Err error
}

// App serves verification's use cases on an engine.
type App struct {
	engine Engine
	hasher *domain.Hasher
	limits domain.Limits
	log    *zap.Logger
	// rand is the code source: crypto/rand.Reader (SetRand replaces it in tests).
	rand io.Reader
	// OnLock, when set, is called after a verifier was locked by too many failed attempts (metrics).
	OnLock func()
	// LinkBase is --verify-link-base (checked by domain.CheckLinkBase): the SMS carry <LinkBase>/<token>;
	// "": no link in the text.
	LinkBase string
	// Mismatches, when set, throttles callers mismatching on many distinct phones (Verify, ResendCode).
	Mismatches *MismatchThrottle
	// noon is the noon resend rule (off until SetNoon).
	noon domain.NoonRule
}

// SetNoon sets the noon resend rule (server flags; the store suites). Call it before any use.
func (a *App) SetNoon(r domain.NoonRule) { a.noon = r }

// New returns the use cases on engine.
func New(engine Engine, hasher *domain.Hasher, limits domain.Limits, log *zap.Logger) *App {
	return &App{engine: engine, hasher: hasher, limits: limits, log: log, rand: rand.Reader}
}

// SetRand replaces the code source, so tests draw known, distinct codes. Call it before any use.
func (a *App) SetRand(r io.Reader) { a.rand = r }

// op is the Op of req answered with an R.
func op[R proto.Message](method, requestID string, req proto.Message) Op {
	return Op{Method: method, RequestID: requestID, Req: req,
		NewAnswer: func() proto.Message { var r R; return r.ProtoReflect().New().Interface() }}
}

// answer is the engine's answer as the request's response type.
func answer[R proto.Message](resp proto.Message, err error) (R, error) {
	var zero R
	if err != nil {
		return zero, err
	}
	return resp.(R), nil
}
