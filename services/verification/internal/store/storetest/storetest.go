// Package storetest is the behaviour suite every verification storage engine passes: the PostgreSQL
// store (package store) and the in-memory one (package memstore) run the same tests through the
// interface the handlers use, observing the calls owed to other services through the outbox queue.
package storetest

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"strings"
	"sync"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/icpverify/icpverify/pkg/clock"
	"github.com/icpverify/icpverify/pkg/errs"
	filingv1 "github.com/icpverify/icpverify/pkg/gen/icp/filing/v1"
	smsv1 "github.com/icpverify/icpverify/pkg/gen/icp/smsdispatch/v1"
	pb "github.com/icpverify/icpverify/pkg/gen/icp/verification/v1"
	"github.com/icpverify/icpverify/pkg/outbox"
	"github.com/icpverify/icpverify/pkg/seal"
	"github.com/icpverify/icpverify/services/verification/internal/convert"
	"github.com/icpverify/icpverify/services/verification/internal/domain"
	"github.com/icpverify/icpverify/services/verification/internal/grpcapi"
)

// Store is what the suite drives: the handlers' interface plus SetRand, so codes are known and distinct.
type Store interface {
	grpcapi.Store
	SetRand(io.Reader)
	SetNoon(domain.NoonRule)
}

// Engine is one storage engine under test.
type Engine struct {
	// Store runs on the clock given to the engine constructor, with the Hasher(t) key.
	Store Store
	// Outbox is the queue the engine writes its outbox rows to.
	Outbox outbox.Queue
	// Replica returns another store on the same data with its own clock and hasher, like a second replica.
	Replica func(clk clock.Clock, h *domain.Hasher) Store
}

// T0 is the fake clock's first instant in every test.
var T0 = time.Date(2026, 11, 26, 10, 0, 0, 0, time.UTC)

// SealKeys is the keyring every engine seals its sensitive outbox payloads with (the queue opens them).
func SealKeys() *seal.Keyring { return sealKeys }

var sealKeys = func() *seal.Keyring {
	k, err := seal.Parse("s1:" + strings.Repeat("cd", seal.KeyBytes))
	if err != nil {
		panic(err)
	}
	return k
}()

// Hasher is the key every engine's Store uses.
func Hasher(t testing.TB) *domain.Hasher { return hasherFor(t, "k1:"+strings.Repeat("ab", 32)) }

func hasherFor(t testing.TB, spec string) *domain.Hasher {
	keys, err := domain.ParseKeys(spec)
	if err != nil {
		t.Fatal(err)
	}
	h, err := domain.NewHasher(keys)
	if err != nil {
		t.Fatal(err)
	}
	return h
}

// SeqRand is a deterministic code source: every draw is a new code (1, 2, 3, ... times a prime), so a
// resend never draws the code it replaces.
type SeqRand struct {
	mu sync.Mutex
	n  uint32
}

// Read fills p with big-endian words of the sequence.
func (r *SeqRand) Read(p []byte) (int, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for i := 0; i < len(p); i += 4 {
		r.n++
		var w [4]byte
		binary.BigEndian.PutUint32(w[:], r.n*7919%1_000_000)
		copy(p[i:], w[:])
	}
	return len(p), nil
}

const (
	phoneA = "+8613812345678"
	phoneB = "+8613912345678"
	tailA  = "12345X"
	tailB  = "654321"
)

type env struct {
	Engine
	t   *testing.T
	clk *clock.Fake
}

func (e *env) replica(clk clock.Clock, h *domain.Hasher) Store {
	s := e.Replica(clk, h)
	s.SetRand(&SeqRand{})
	return s
}

// Run runs the suite; newEngine returns a fresh, empty engine whose Store runs on clk.
func Run(t *testing.T, newEngine func(t *testing.T, clk *clock.Fake) Engine) {
	tests := []struct {
		name string
		fn   func(*env)
	}{
		{"OpenSessionIdempotentAndSuperseded", testOpenSessionIdempotentAndSuperseded},
		{"OpenSessionAfterDeadlineReturnsOrder", testOpenSessionAfterDeadline},
		{"ConcurrentOpenSessionDrawsOnce", testConcurrentOpen},
		{"VerifyPassesAllVerifiers", testVerifyPassesAllVerifiers},
		{"ConcurrentWrongVerifiesLockExactlyOnce", testConcurrentWrongVerifies},
		{"ConcurrentChecksOfOneSessionPassItOnce", testConcurrentChecksOfOneSession},
		{"DeadlineRace", testDeadlineRace},
		{"CloseIfIncomplete", testCloseIfIncomplete},
		{"ConcurrentClosesReturnEachOrderOnce", testConcurrentCloses},
		{"ResendReplacesCodeKeepsFailuresAndLimits", testResend},
		{"PublicResendMismatchCountsAsFailure", testResendMismatchCounts},
		{"ConcurrentResendMismatchesCountExactly", testConcurrentResendMismatches},
		{"CancelSession", testCancelSession},
		{"KeyRotation", testKeyRotation},
		{"TenantsSeeOnlyTheirChallenges", testTenantsSeeOnlyTheirChallenges},
		{"CrossTenantVerify", testCrossTenantVerify},
		{"ResendRequestIDIsNoOracle", testResendRequestIDIsNoOracle},
		{"PhoneBudgetSpansOrdersAndResubmissions", testPhoneBudgetSpansOrdersAndResubmissions},
		{"PhoneBudgetCountsResendMismatches", testPhoneBudgetCountsResendMismatches},
		{"ConcurrentMismatchesSpendTheBudgetOnce", testConcurrentMismatchesSpendTheBudgetOnce},
		{"DeliveryFailedVoidsCode", testDeliveryFailedVoidsCode},
		{"DeliveryFailedPublicResend", testDeliveryFailedPublicResend},
		{"DeliveryReceiptsShowInStatus", testDeliveryReceiptsShowInStatus},
		{"DeliveryReportOfOldGeneration", testDeliveryReportOfOldGeneration},
		{"DeliveryReportTwiceIsOnce", testDeliveryReportTwiceIsOnce},
		{"DeliveryReportFindsNothing", testDeliveryReportFindsNothing},
		{"Links", testLinks},
		{"LinkOfAnotherChallenge", testLinkOfAnotherChallenge},
		{"LinkDies", testLinkDies},
		{"AutoResendOnceForPendingVerifiers", testAutoResend},
		{"AutoResendSkipsDecidedSessions", testAutoResendSkips},
		{"ConcurrentAutoResendsSendOnce", testConcurrentAutoResends},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			clk := clock.NewFake(T0)
			e := &env{Engine: newEngine(t, clk), t: t, clk: clk}
			e.Store.SetRand(&SeqRand{})
			tc.fn(e)
		})
	}
}

func openReq(order string, sub int32, deadline time.Time, verifiers ...domain.VerifierSpec) (*pb.OpenSessionRequest, domain.OpenSpec) {
	req := &pb.OpenSessionRequest{RequestId: fmt.Sprintf("filing:open-session:%s:%d", order, sub), OrderId: order,
		Submission: sub, DeadlineAt: timestamppb.New(deadline)}
	for _, v := range verifiers {
		req.Verifiers = append(req.Verifiers, &pb.VerifierSpec{Phone: v.Phone, Roles: v.Roles, IdTails: v.Tails})
	}
	spec, err := domain.NormalizeOpen(domain.OpenSpec{OrderID: order, Submission: sub, DeadlineAt: deadline, Verifiers: verifiers})
	if err != nil {
		panic(err)
	}
	return req, spec
}

func vA() domain.VerifierSpec {
	return domain.VerifierSpec{Phone: phoneA, Roles: []string{"PRINCIPAL"}, Tails: []string{tailA}}
}

func vB() domain.VerifierSpec {
	return domain.VerifierSpec{Phone: phoneB, Roles: []string{"WEBSITE"}, Tails: []string{tailB, "ABCDEF"}}
}

func (e *env) open(s Store, order string, sub int32, deadline time.Time, vs ...domain.VerifierSpec) *pb.VerificationStatus {
	e.t.Helper()
	req, spec := openReq(order, sub, deadline, vs...)
	resp, err := s.OpenSession(context.Background(), req, spec)
	if err != nil {
		e.t.Fatalf("open session: %v", err)
	}
	return resp.GetStatus()
}

// payloads returns the queued payloads for target, oldest first.
func (e *env) payloads(target string) [][]byte {
	e.t.Helper()
	rows, err := e.Outbox.Pending(context.Background(), 1_000_000)
	if err != nil {
		e.t.Fatal(err)
	}
	var out [][]byte
	for _, r := range rows {
		if r.Target == target {
			out = append(out, r.Payload)
		}
	}
	return out
}

func (e *env) pending() int {
	e.t.Helper()
	rows, err := e.Outbox.Pending(context.Background(), 1_000_000)
	if err != nil {
		e.t.Fatal(err)
	}
	return len(rows)
}

// sent returns the SMS requests queued for a phone, oldest first.
func (e *env) sent(phone string) []*smsv1.SendMessageRequest {
	e.t.Helper()
	var out []*smsv1.SendMessageRequest
	for _, p := range e.payloads(convert.TargetSendMessage) {
		m := &smsv1.SendMessageRequest{}
		if err := proto.Unmarshal(p, m); err != nil {
			e.t.Fatal(err)
		}
		if m.GetPhone() == phone {
			out = append(out, m)
		}
	}
	return out
}

func (e *env) lastCode(phone string) string {
	e.t.Helper()
	msgs := e.sent(phone)
	if len(msgs) == 0 {
		e.t.Fatalf("no code sent to %s", phone)
	}
	return msgs[len(msgs)-1].GetParams()["code"]
}

func (e *env) returns(order string) []*filingv1.ReturnOrderRequest {
	e.t.Helper()
	var out []*filingv1.ReturnOrderRequest
	for _, p := range e.payloads(convert.TargetReturnOrder) {
		m := &filingv1.ReturnOrderRequest{}
		if err := proto.Unmarshal(p, m); err != nil {
			e.t.Fatal(err)
		}
		if m.GetOrderId() == order {
			out = append(out, m)
		}
	}
	return out
}

func (e *env) marked(order string) int {
	e.t.Helper()
	n := 0
	for _, p := range e.payloads(convert.TargetMarkVerified) {
		m := &filingv1.MarkVerifiedRequest{}
		if err := proto.Unmarshal(p, m); err != nil {
			e.t.Fatal(err)
		}
		if m.GetOrderId() == order {
			n++
		}
	}
	return n
}

func (e *env) status(order string) *pb.VerificationStatus {
	e.t.Helper()
	st, err := e.Store.Status(context.Background(), order)
	if err != nil {
		e.t.Fatalf("status %s: %v", order, err)
	}
	return st
}

func wrongCode(code string) string {
	if code == "000000" {
		return "000001"
	}
	return "000000"
}

func isNotMatched(err error) bool {
	var de *errs.Error
	return errors.As(err, &de) && de.Kind == errs.KindNotFound && de.Reason == domain.ReasonNotMatched && de.Message == domain.NotMatchedMessage
}
