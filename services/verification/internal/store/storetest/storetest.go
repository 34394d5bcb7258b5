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
	"github.com/icpverify/icpverify/services/verification/internal/convert"
	"github.com/icpverify/icpverify/services/verification/internal/domain"
	"github.com/icpverify/icpverify/services/verification/internal/grpcapi"
)

// Store is what the suite drives: the handlers' interface plus SetRand, so codes are known and distinct.
type Store interface {
	grpcapi.Store
	SetRand(io.Reader)
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

// Start is the fake clock's first instant in every test.
var Start = time.Date(2026, 11, 26, 10, 0, 0, 0, time.UTC)

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
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			clk := clock.NewFake(Start)
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

func testOpenSessionIdempotentAndSuperseded(e *env) {
	t, s, clk := e.t, e.Store, e.clk
	deadline := Start.Add(24 * time.Hour)

	st := e.open(s, "o1", 1, deadline, vA(), vB())
	if st.GetState() != pb.SessionState_SESSION_STATE_OPEN || len(st.GetVerifiers()) != 2 ||
		st.GetVerifiers()[0].GetVerifierId() != "v1" || st.GetVerifiers()[1].GetVerifierId() != "v2" ||
		st.GetVerifiers()[0].GetPhoneMasked() != "138****5678" {
		t.Fatalf("status = %v", st)
	}
	msgs := e.sent(phoneA)
	if len(msgs) != 1 || !domain.ValidCodeShape(msgs[0].GetParams()["code"]) ||
		msgs[0].GetParams()["deadline"] != deadline.Format(time.RFC3339) || !msgs[0].GetExpireTime().AsTime().Equal(deadline) ||
		msgs[0].GetLocale() != "zh-CN" || msgs[0].GetTemplate() != smsv1.Template_TEMPLATE_VERIFICATION_CODE ||
		!strings.HasPrefix(msgs[0].GetMessageId(), "vc-") || !strings.HasSuffix(msgs[0].GetMessageId(), "-v1-1") {
		t.Fatalf("sms = %v", msgs)
	}
	// The same request again (same request id), and the same business key with another request id:
	// the same session, no new code.
	clk.Advance(time.Minute)
	again := e.open(s, "o1", 1, deadline, vA(), vB())
	req, spec := openReq("o1", 1, deadline, vA(), vB())
	req.RequestId = "another"
	other, err := s.OpenSession(context.Background(), req, spec)
	if err != nil {
		t.Fatal(err)
	}
	if !proto.Equal(again, st) || other.GetStatus().GetVerifiers()[0].GetLastSentTime().AsTime() != Start {
		t.Fatalf("repeat answered differently: %v / %v", again, other)
	}
	if n := len(e.payloads(convert.TargetSendMessage)); n != 2 {
		t.Fatalf("%d SMS queued, want 2", n)
	}
	// The same request id with another request is refused.
	req, spec = openReq("o1", 1, deadline, vA())
	if _, err := s.OpenSession(context.Background(), req, spec); !errors.Is(err, errs.RequestIDReused) {
		t.Fatalf("request id reused = %v", err)
	}

	// A newer submission cancels the open one; the older one is then refused as stale.
	e.open(s, "o1", 2, deadline.Add(time.Hour), vA())
	if old := e.status("o1"); old.GetSubmission() != 2 {
		t.Fatalf("status = %v", old)
	}
	cr, err := s.CancelSession(context.Background(), &pb.CancelSessionRequest{OrderId: "o1", Submission: 1})
	if err != nil || cr.GetStatus().GetState() != pb.SessionState_SESSION_STATE_CANCELLED {
		t.Fatalf("superseded session = %v, %v", cr, err)
	}
	e.open(s, "o9", 3, deadline, vA())
	req, spec = openReq("o9", 2, deadline, vA())
	req.RequestId = "stale"
	if _, err := s.OpenSession(context.Background(), req, spec); errs.Reason(err) != domain.ReasonStaleSubmission {
		t.Fatalf("stale submission: %v", err)
	}
	// The verifier's old-session code does not pass: the session was cancelled.
	if _, err := s.Verify(context.Background(), domain.VerifyInput{Phone: phoneB, Code: e.lastCode(phoneB), Tail: tailB}); !isNotMatched(err) {
		t.Fatalf("verify on a cancelled session: %v", err)
	}
}

// testOpenSessionAfterDeadline: an OpenSession that arrives at or after its deadline (a long outage
// between filing and here) is accepted as an already timed-out session, sends nothing and returns the
// order at once, so the order is not left waiting; the deadline sweeper's close then answers closed.
func testOpenSessionAfterDeadline(e *env) {
	t, s, ctx := e.t, e.Store, context.Background()
	deadline := Start
	st := e.open(s, "late", 1, deadline, vA(), vB())
	if st.GetState() != pb.SessionState_SESSION_STATE_TIMED_OUT || !st.GetDeadlineAt().AsTime().Equal(deadline) {
		t.Fatalf("late open = %v", st)
	}
	if n := len(e.payloads(convert.TargetSendMessage)); n != 0 {
		t.Fatalf("%d codes sent for an expired session", n)
	}
	rets := e.returns("late")
	if len(rets) != 1 || rets[0].GetReason() != filingv1.ReturnReason_RETURN_REASON_VERIFICATION_TIMEOUT ||
		rets[0].GetRequestId() != "verification:return:late:1" || rets[0].GetSubmission() != 1 {
		t.Fatalf("returns = %v", rets)
	}
	// A redelivery answers the same and queues nothing more.
	if again := e.open(s, "late", 1, deadline, vA(), vB()); !proto.Equal(again, st) || e.pending() != 1 {
		t.Fatalf("redelivery = %v, %d rows", again, e.pending())
	}
	cr, err := s.CloseIfIncomplete(ctx, &pb.CloseIfIncompleteRequest{RequestId: "deadline:close:late:1", OrderId: "late", Submission: 1})
	if err != nil || !cr.GetClosed() || cr.GetStatus().GetState() != pb.SessionState_SESSION_STATE_TIMED_OUT || len(e.returns("late")) != 1 {
		t.Fatalf("close = %v, %v", cr, err)
	}
	if _, err := s.Verify(ctx, domain.VerifyInput{Phone: phoneA, Code: "000000", Tail: tailA}); !isNotMatched(err) {
		t.Fatalf("verify = %v", err)
	}
	// 1ns before the deadline a session still opens normally.
	e.clk.Set(Start.Add(-time.Hour))
	if st := e.open(s, "ontime", 1, Start.Add(-time.Hour+time.Nanosecond), vA()); st.GetState() != pb.SessionState_SESSION_STATE_OPEN {
		t.Fatalf("on-time open = %v", st)
	}
}

// testConcurrentOpen: redeliveries of one OpenSession racing (different request ids, one business key)
// make one session and draw one code per verifier.
func testConcurrentOpen(e *env) {
	t := e.t
	deadline := Start.Add(24 * time.Hour)
	var wg sync.WaitGroup
	statuses := make([]*pb.VerificationStatus, 10)
	errsOut := make([]error, 10)
	for i := range statuses {
		wg.Go(func() {
			req, spec := openReq("o1", 1, deadline, vA(), vB())
			req.RequestId = fmt.Sprintf("r%d", i%3) // some twins, some distinct
			resp, err := e.Store.OpenSession(context.Background(), req, spec)
			statuses[i], errsOut[i] = resp.GetStatus(), err
		})
	}
	wg.Wait()
	for i := range statuses {
		if errsOut[i] != nil || !proto.Equal(statuses[i], statuses[0]) {
			t.Fatalf("open #%d = %v, %v (first %v)", i, statuses[i], errsOut[i], statuses[0])
		}
	}
	if n := len(e.payloads(convert.TargetSendMessage)); n != 2 {
		t.Fatalf("%d codes sent, want 2", n)
	}
}

func testVerifyPassesAllVerifiers(e *env) {
	t, s, clk := e.t, e.Store, e.clk
	e.open(s, "o1", 1, Start.Add(24*time.Hour), vA(), vB())
	ctx := context.Background()

	r, err := s.Verify(ctx, domain.VerifyInput{Phone: phoneA, Code: e.lastCode(phoneA), Tail: tailA})
	if err != nil || r.GetResult() != pb.VerifyResult_VERIFY_RESULT_PASSED_WAITING_FOR_OTHERS || r.GetOrderId() != "o1" ||
		r.GetMessageZh() != domain.MessageWaitingZH {
		t.Fatalf("first verify = %v, %v", r, err)
	}
	// Passed is final: the same entry again gets the uniform answer.
	if _, err := s.Verify(ctx, domain.VerifyInput{Phone: phoneA, Code: e.lastCode(phoneA), Tail: tailA}); !isNotMatched(err) {
		t.Fatalf("repeat verify = %v", err)
	}
	clk.Advance(time.Hour)
	// The second of phone B's two ID tails works too.
	r, err = s.Verify(ctx, domain.VerifyInput{Phone: phoneB, Code: e.lastCode(phoneB), Tail: "ABCDEF"})
	if err != nil || r.GetResult() != pb.VerifyResult_VERIFY_RESULT_ALL_PASSED || r.GetMessageEn() != domain.MessageAllEN {
		t.Fatalf("second verify = %v, %v", r, err)
	}
	if e.marked("o1") != 1 || len(e.payloads(convert.TargetCancelDeadline)) != 1 || len(e.payloads(convert.TargetReturnOrder)) != 0 {
		t.Fatal("ALL_PASSED must queue one MarkVerified and one CancelDeadline")
	}
	st := e.status("o1")
	if st.GetState() != pb.SessionState_SESSION_STATE_PASSED || !st.GetVerifiers()[1].GetPassedTime().AsTime().Equal(Start.Add(time.Hour)) {
		t.Fatalf("status = %v", st)
	}
	// A passed session cannot time out.
	clk.Advance(24 * time.Hour)
	cr, err := s.CloseIfIncomplete(ctx, &pb.CloseIfIncompleteRequest{RequestId: "d1", OrderId: "o1", Submission: 1})
	if err != nil || cr.GetClosed() || cr.GetStatus().GetState() != pb.SessionState_SESSION_STATE_PASSED {
		t.Fatalf("close after pass = %v, %v", cr, err)
	}
}

func testConcurrentWrongVerifies(e *env) {
	t, s := e.t, e.Store
	e.open(s, "o1", 1, Start.Add(24*time.Hour), vA(), vB())
	bad := domain.VerifyInput{Phone: phoneA, Code: wrongCode(e.lastCode(phoneA)), Tail: tailA}

	const n = 20
	errsCh := make(chan error, n)
	var wg sync.WaitGroup
	for range n {
		wg.Go(func() {
			_, err := s.Verify(context.Background(), bad)
			errsCh <- err
		})
	}
	wg.Wait()
	close(errsCh)
	for err := range errsCh {
		if !isNotMatched(err) {
			t.Fatalf("answer = %v, want the uniform NotFound", err)
		}
	}
	st := e.status("o1")
	if v := st.GetVerifiers()[0]; int(v.GetFailedAttempts()) != domain.DefaultLimits.MaxFailedAttempts ||
		v.GetState() != pb.ChallengeState_CHALLENGE_STATE_LOCKED || st.GetState() != pb.SessionState_SESSION_STATE_FAILED {
		t.Fatalf("status = %v", st)
	}
	rets := e.returns("o1")
	if len(rets) != 1 || rets[0].GetReason() != filingv1.ReturnReason_RETURN_REASON_TOO_MANY_FAILED_ATTEMPTS ||
		rets[0].GetRequestId() != "verification:return:o1:1" {
		t.Fatalf("returns = %v", rets)
	}
	if len(e.payloads(convert.TargetCancelDeadline)) != 1 {
		t.Fatal("want one CancelDeadline")
	}
	// The locked verifier's right code no longer passes, and phone B's session is failed too.
	if _, err := s.Verify(context.Background(), domain.VerifyInput{Phone: phoneA, Code: e.lastCode(phoneA), Tail: tailA}); !isNotMatched(err) {
		t.Fatalf("verify after lock = %v", err)
	}
	if _, err := s.Verify(context.Background(), domain.VerifyInput{Phone: phoneB, Code: e.lastCode(phoneB), Tail: tailB}); !isNotMatched(err) {
		t.Fatalf("verify other verifier of a failed session = %v", err)
	}
}

// testConcurrentChecksOfOneSession checks both verifiers of many sessions at once, each right twice (a
// double submit) and wrong twice (below the limit), so that checks of one session meet in one batch or
// race across batches: every session passes once — one ALL_PASSED, one PASSED_WAITING_FOR_OTHERS, the
// repeats NotFound, one MarkVerified.
func testConcurrentChecksOfOneSession(e *env) {
	t, s := e.t, e.Store
	const sessions = 12
	type check struct {
		order string
		in    domain.VerifyInput
		right bool
	}
	var checks []check
	for i := range sessions {
		order := fmt.Sprintf("o%d", i)
		a := domain.VerifierSpec{Phone: fmt.Sprintf("+8613600000%03d", 2*i), Roles: []string{"PRINCIPAL"}, Tails: []string{tailA}}
		b := domain.VerifierSpec{Phone: fmt.Sprintf("+8613600000%03d", 2*i+1), Roles: []string{"WEBSITE"}, Tails: []string{tailB}}
		e.open(s, order, 1, Start.Add(24*time.Hour), a, b)
		for _, v := range []domain.VerifierSpec{a, b} {
			code := e.lastCode(v.Phone)
			for range 2 {
				checks = append(checks, check{order, domain.VerifyInput{Phone: v.Phone, Code: code, Tail: v.Tails[0]}, true})
				checks = append(checks, check{order, domain.VerifyInput{Phone: v.Phone, Code: wrongCode(code), Tail: v.Tails[0]}, false})
			}
		}
	}
	var (
		mu      sync.Mutex
		all     = map[string]int{}
		waiting = map[string]int{}
		repeats = map[string]int{}
		wg      sync.WaitGroup
	)
	for _, c := range checks {
		wg.Go(func() {
			r, err := s.Verify(context.Background(), c.in)
			mu.Lock()
			defer mu.Unlock()
			switch {
			case !c.right && !isNotMatched(err):
				t.Errorf("%s wrong check = %v, %v; want the uniform NotFound", c.order, r, err)
			case c.right && isNotMatched(err):
				repeats[c.order]++
			case c.right && err != nil:
				t.Errorf("%s right check: %v", c.order, err)
			case c.right && r.GetResult() == pb.VerifyResult_VERIFY_RESULT_ALL_PASSED:
				all[c.order]++
			case c.right:
				waiting[c.order]++
			}
		})
	}
	wg.Wait()
	for i := range sessions {
		order := fmt.Sprintf("o%d", i)
		if all[order] != 1 || waiting[order] != 1 || repeats[order] != 2 {
			t.Errorf("%s: %d ALL_PASSED, %d PASSED_WAITING_FOR_OTHERS, %d NotFound repeats; want 1, 1, 2", order,
				all[order], waiting[order], repeats[order])
		}
		if st := e.status(order); st.GetState() != pb.SessionState_SESSION_STATE_PASSED {
			t.Errorf("%s: session %v, want PASSED", order, st.GetState())
		}
		if n := e.marked(order); n != 1 {
			t.Errorf("%s: %d MarkVerified queued, want 1", order, n)
		}
	}
	if n := len(e.payloads(convert.TargetReturnOrder)); n != 0 {
		t.Errorf("%d ReturnOrder queued, want none", n)
	}
}

// testDeadlineRace runs the last Verify and CloseIfIncomplete at once around the deadline, each on its
// own replica with its own clock: whatever the interleaving, the order is either verified or returned,
// never both.
func testDeadlineRace(e *env) {
	t := e.t
	deadline := Start.Add(24 * time.Hour)
	cases := []struct {
		name            string
		verifyAt        time.Time
		closeAt         time.Time
		wantMark, wantR int // -1: either, as long as exactly one
	}{
		{"verify 1ns before, close at the deadline", deadline.Add(-time.Nanosecond), deadline, -1, -1},
		{"both at the deadline", deadline, deadline, 0, 1},
		{"both 1ns before", deadline.Add(-time.Nanosecond), deadline.Add(-time.Nanosecond), 1, 0},
	}
	for ci, tc := range cases {
		for i := range 15 {
			order := fmt.Sprintf("race-%d-%d", ci, i)
			// Each order's verifier has a distinct phone so the codes do not mix.
			ph := fmt.Sprintf("+86139%08d", ci*100+i)
			e.open(e.Store, order, 1, deadline, domain.VerifierSpec{Phone: ph, Tails: []string{tailA}})
			code := e.lastCode(ph)
			v := e.replica(clock.NewFake(tc.verifyAt), Hasher(t))
			c := e.replica(clock.NewFake(tc.closeAt), Hasher(t))
			var wg sync.WaitGroup
			var verr, cerr error
			var cresp *pb.CloseIfIncompleteResponse
			wg.Go(func() {
				_, verr = v.Verify(context.Background(), domain.VerifyInput{Phone: ph, Code: code, Tail: tailA})
			})
			wg.Go(func() {
				cresp, cerr = c.CloseIfIncomplete(context.Background(), &pb.CloseIfIncompleteRequest{
					RequestId: "deadline:close:" + order + ":1", OrderId: order, Submission: 1})
			})
			wg.Wait()
			mark, ret := e.marked(order), len(e.returns(order))
			if mark+ret != 1 {
				t.Fatalf("%s #%d: MarkVerified=%d ReturnOrder=%d (verify err %v, close %v/%v)", tc.name, i, mark, ret, verr, cresp, cerr)
			}
			if tc.wantMark >= 0 && (mark != tc.wantMark || ret != tc.wantR) {
				t.Fatalf("%s #%d: MarkVerified=%d ReturnOrder=%d, want %d/%d", tc.name, i, mark, ret, tc.wantMark, tc.wantR)
			}
			if mark == 1 && (verr != nil || (cerr == nil && cresp.GetClosed())) {
				t.Fatalf("%s #%d: verified but verify=%v close=%v", tc.name, i, verr, cresp)
			}
			if ret == 1 && (!isNotMatched(verr) || !cresp.GetClosed()) {
				t.Fatalf("%s #%d: returned but verify=%v close=%v/%v", tc.name, i, verr, cresp, cerr)
			}
			if tc.closeAt.Before(deadline) && errs.Reason(cerr) != domain.ReasonDeadlineNotReached {
				t.Fatalf("%s #%d: early close answered %v", tc.name, i, cerr)
			}
		}
	}
}

// testConcurrentCloses fires a burst of closes, as the sweeper does when many windows end in the same
// second (the PostgreSQL engine serves them in batches): repeats with the same and with other request
// ids, an unknown session and one whose window is still open among them. Each order is returned
// exactly once, every answer says closed with the same status, and the odd ones get their own errors
// without holding up the others.
func testConcurrentCloses(e *env) {
	t, s, clk := e.t, e.Store, e.clk
	const n = 30
	deadline := Start.Add(time.Hour)
	for i := range n {
		e.open(s, fmt.Sprintf("c%02d", i), 1, deadline,
			domain.VerifierSpec{Phone: fmt.Sprintf("+86137000000%02d", i), Roles: []string{"PRINCIPAL"}, Tails: []string{tailA}})
	}
	e.open(s, "later", 1, deadline.Add(time.Hour), vA())
	clk.Set(deadline)

	type call struct {
		req  *pb.CloseIfIncompleteRequest
		resp *pb.CloseIfIncompleteResponse
		err  error
	}
	var calls []*call
	for i := range n {
		id := fmt.Sprintf("c%02d", i)
		for _, rid := range []string{"deadline:close:" + id, "deadline:close:" + id, "again:" + id} {
			calls = append(calls, &call{req: &pb.CloseIfIncompleteRequest{RequestId: rid, OrderId: id, Submission: 1}})
		}
	}
	calls = append(calls,
		&call{req: &pb.CloseIfIncompleteRequest{RequestId: "deadline:close:nope", OrderId: "nope", Submission: 1}},
		&call{req: &pb.CloseIfIncompleteRequest{RequestId: "deadline:close:later", OrderId: "later", Submission: 1}})
	var wg sync.WaitGroup
	for _, c := range calls {
		wg.Go(func() { c.resp, c.err = s.CloseIfIncomplete(context.Background(), c.req) })
	}
	wg.Wait()
	for _, c := range calls {
		switch c.req.GetOrderId() {
		case "nope":
			if errs.Reason(c.err) != domain.ReasonSessionNotFound {
				t.Errorf("unknown session: %v", c.err)
			}
		case "later":
			if errs.Reason(c.err) != domain.ReasonDeadlineNotReached {
				t.Errorf("open window: %v", c.err)
			}
		default:
			if c.err != nil || !c.resp.GetClosed() || c.resp.GetStatus().GetState() != pb.SessionState_SESSION_STATE_TIMED_OUT ||
				c.resp.GetStatus().GetOrderId() != c.req.GetOrderId() || len(c.resp.GetStatus().GetVerifiers()) != 1 {
				t.Errorf("close %s (%s) = %v, %v", c.req.GetOrderId(), c.req.GetRequestId(), c.resp, c.err)
			}
		}
	}
	for i := range n {
		id := fmt.Sprintf("c%02d", i)
		if rets := e.returns(id); len(rets) != 1 || rets[0].GetReason() != filingv1.ReturnReason_RETURN_REASON_VERIFICATION_TIMEOUT {
			t.Errorf("%s: returns = %v, want exactly one VERIFICATION_TIMEOUT", id, rets)
		}
		if st := e.status(id); st.GetState() != pb.SessionState_SESSION_STATE_TIMED_OUT {
			t.Errorf("%s: %v", id, st.GetState())
		}
	}
	if st := e.status("later"); st.GetState() != pb.SessionState_SESSION_STATE_OPEN || len(e.returns("later")) != 0 {
		t.Errorf("the session whose window is open: %v", st.GetState())
	}
	// A request id answered in the burst, reused for another order, is refused.
	if _, err := s.CloseIfIncomplete(context.Background(), &pb.CloseIfIncompleteRequest{RequestId: "deadline:close:c00", OrderId: "c01", Submission: 1}); !errors.Is(err, errs.RequestIDReused) {
		t.Errorf("reused request id: %v", err)
	}
}

func testCloseIfIncomplete(e *env) {
	t, s, clk := e.t, e.Store, e.clk
	deadline := Start.Add(24 * time.Hour)
	e.open(s, "o1", 1, deadline, vA())
	ctx := context.Background()
	req := &pb.CloseIfIncompleteRequest{RequestId: "deadline:close:o1:1", OrderId: "o1", Submission: 1}

	clk.Set(deadline.Add(-time.Nanosecond))
	if _, err := s.CloseIfIncomplete(ctx, req); errs.Reason(err) != domain.ReasonDeadlineNotReached {
		t.Fatalf("early close = %v", err)
	}
	clk.Set(deadline)
	r, err := s.CloseIfIncomplete(ctx, req)
	if err != nil || !r.GetClosed() || r.GetStatus().GetState() != pb.SessionState_SESSION_STATE_TIMED_OUT {
		t.Fatalf("close = %v, %v", r, err)
	}
	// Again, with the same and with another request id: closed, no second return.
	if r, err := s.CloseIfIncomplete(ctx, req); err != nil || !r.GetClosed() {
		t.Fatalf("repeat = %v, %v", r, err)
	}
	req2 := proto.Clone(req).(*pb.CloseIfIncompleteRequest)
	req2.RequestId = "other"
	if r, err := s.CloseIfIncomplete(ctx, req2); err != nil || !r.GetClosed() {
		t.Fatalf("repeat = %v, %v", r, err)
	}
	rets := e.returns("o1")
	if len(rets) != 1 || rets[0].GetReason() != filingv1.ReturnReason_RETURN_REASON_VERIFICATION_TIMEOUT || rets[0].GetSubmission() != 1 {
		t.Fatalf("returns = %v", rets)
	}
	if _, err := s.CloseIfIncomplete(ctx, &pb.CloseIfIncompleteRequest{OrderId: "nope", Submission: 1}); errs.Reason(err) != domain.ReasonSessionNotFound {
		t.Fatalf("unknown = %v", err)
	}
	// The right code after the deadline fails uniformly.
	if _, err := s.Verify(ctx, domain.VerifyInput{Phone: phoneA, Code: e.lastCode(phoneA), Tail: tailA}); !isNotMatched(err) {
		t.Fatalf("late verify = %v", err)
	}
}

func testResend(e *env) {
	t, s, clk := e.t, e.Store, e.clk
	deadline := Start.Add(24 * time.Hour)
	e.open(s, "o1", 1, deadline, vA(), vB())
	ctx := context.Background()
	first := e.lastCode(phoneA)

	// One wrong entry before the resend.
	if _, err := s.Verify(ctx, domain.VerifyInput{Phone: phoneA, Code: wrongCode(first), Tail: tailA}); !isNotMatched(err) {
		t.Fatal(err)
	}
	resend := func(id string) (*pb.Resend, error) {
		r, err := s.ResendVerifier(ctx, &pb.ResendVerifierCodeRequest{RequestId: id, OrderId: "o1", VerifierId: "v1"})
		return r.GetResend(), err
	}
	_, err := resend("r0")
	var de *errs.Error
	if !errors.As(err, &de) || de.Reason != domain.ReasonResendTooSoon || de.RetryAfter != time.Minute {
		t.Fatalf("immediate resend = %v", err)
	}
	clk.Advance(time.Minute)
	r, err := resend("r1")
	if err != nil || r.GetResendsLeft() != 1 || r.GetVerifierId() != "v1" || !r.GetDeadlineAt().AsTime().Equal(deadline) ||
		!r.GetNextResendTime().AsTime().Equal(clk.Now().Add(time.Minute)) {
		t.Fatalf("resend = %v, %v", r, err)
	}
	// A retry of the same request id answers the same and sends nothing more.
	if again, err := resend("r1"); err != nil || !proto.Equal(again, r) {
		t.Fatalf("retry = %v, %v", again, err)
	}
	msgs := e.sent(phoneA)
	// The sequence lets sms-dispatch drop the first code if its delivery comes in after the resend's.
	if len(msgs) != 2 || !strings.HasSuffix(msgs[1].GetMessageId(), "-v1-2") || msgs[0].GetSequence() != 1 || msgs[1].GetSequence() != 2 {
		t.Fatalf("messages = %v", msgs)
	}
	if second := msgs[1].GetParams()["code"]; second == first {
		t.Fatalf("the deterministic source drew the same code twice: %s", second)
	}
	// The old code fails from the resend on, and counts as a failure (2 now).
	if _, err := s.Verify(ctx, domain.VerifyInput{Phone: phoneA, Code: first, Tail: tailA}); !isNotMatched(err) {
		t.Fatalf("old code = %v", err)
	}
	st := e.status("o1")
	if v := st.GetVerifiers()[0]; v.GetFailedAttempts() != 2 || v.GetResendsUsed() != 1 || !st.GetDeadlineAt().AsTime().Equal(deadline) {
		t.Fatalf("verifier = %v", v)
	}
	// Second resend allowed, third refused.
	clk.Advance(time.Minute)
	if r, err := resend("r2"); err != nil || r.GetResendsLeft() != 0 || r.GetNextResendTime() != nil {
		t.Fatalf("second resend = %v, %v", r, err)
	}
	clk.Advance(time.Hour)
	if _, err := resend("r3"); !errors.As(err, &de) || de.Reason != domain.ReasonResendLimit || de.RetryAfter != 0 {
		t.Fatalf("third resend = %v", err)
	}
	newest := e.lastCode(phoneA)
	if r, err := s.Verify(ctx, domain.VerifyInput{Phone: phoneA, Code: newest, Tail: tailA}); err != nil ||
		r.GetResult() != pb.VerifyResult_VERIFY_RESULT_PASSED_WAITING_FOR_OTHERS {
		t.Fatalf("new code = %v, %v", r, err)
	}
	// A passed verifier cannot get a new code; unknown verifiers are NotFound.
	if _, err := s.ResendVerifier(ctx, &pb.ResendVerifierCodeRequest{OrderId: "o1", VerifierId: "v1"}); errs.Reason(err) != domain.ReasonVerifierNotPending {
		t.Fatalf("resend passed = %v", err)
	}
	for _, q := range []*pb.ResendVerifierCodeRequest{{OrderId: "o1", VerifierId: "v9"}, {OrderId: "nope", VerifierId: "v1"}} {
		if _, err := s.ResendVerifier(ctx, q); errs.Reason(err) != domain.ReasonVerifierNotFound {
			t.Fatalf("resend %v = %v", q, err)
		}
	}
	// Public resend by phone + ID tail: a wrong tail is the uniform answer; the right one sends.
	if _, err := s.ResendByPhone(ctx, &pb.ResendCodeRequest{RequestId: "p1"}, phoneB, "000000"); !isNotMatched(err) {
		t.Fatalf("wrong tail = %v", err)
	}
	if _, err := s.ResendByPhone(ctx, &pb.ResendCodeRequest{RequestId: "p2"}, "+8613700000000", tailB); !isNotMatched(err) {
		t.Fatalf("unknown phone = %v", err)
	}
	pr, err := s.ResendByPhone(ctx, &pb.ResendCodeRequest{RequestId: "p3"}, phoneB, tailB)
	if err != nil || pr.GetResend().GetVerifierId() != "v2" || pr.GetResend().GetOrderId() != "o1" {
		t.Fatalf("resend by phone = %v, %v", pr, err)
	}
	if again, err := s.ResendByPhone(ctx, &pb.ResendCodeRequest{RequestId: "p3"}, phoneB, tailB); err != nil || !proto.Equal(again, pr) {
		t.Fatalf("retry of a resend by phone = %v, %v", again, err)
	}
	if n := len(e.sent(phoneB)); n != 2 {
		t.Fatalf("%d codes to phone B, want 2", n)
	}
	// Past the deadline the verifier is no longer pending.
	clk.Set(deadline)
	if _, err := s.ResendVerifier(ctx, &pb.ResendVerifierCodeRequest{OrderId: "o1", VerifierId: "v2"}); errs.Reason(err) != domain.ReasonVerifierNotPending {
		t.Fatalf("resend after deadline = %v", err)
	}
}

// testResendMismatchCounts: a public resend with a wrong ID tail counts as a failed check, so the
// resend answers cannot be used to guess the tail; the 5th failure locks and returns the order. A
// matching phone + tail still learns "too soon".
func testResendMismatchCounts(e *env) {
	t, s, ctx := e.t, e.Store, context.Background()
	e.open(s, "o1", 1, Start.Add(24*time.Hour), vA(), vB())
	e.open(s, "o2", 1, Start.Add(24*time.Hour), vA())

	_, err := s.ResendByPhone(ctx, &pb.ResendCodeRequest{RequestId: "ok"}, phoneA, tailA)
	if errs.Reason(err) != domain.ReasonResendTooSoon {
		t.Fatalf("matching resend = %v, want RESEND_TOO_SOON", err)
	}
	for i := range domain.DefaultLimits.MaxFailedAttempts - 1 {
		if _, err := s.ResendByPhone(ctx, &pb.ResendCodeRequest{RequestId: fmt.Sprintf("g%d", i)}, phoneA, fmt.Sprintf("00000%d", i)); !isNotMatched(err) {
			t.Fatalf("guess %d = %v", i, err)
		}
	}
	// Both orders waiting on phone A counted each guess; nothing is locked yet.
	for _, order := range []string{"o1", "o2"} {
		if v := e.status(order).GetVerifiers()[0]; v.GetFailedAttempts() != 4 || v.GetState() != pb.ChallengeState_CHALLENGE_STATE_PENDING {
			t.Fatalf("%s verifier = %v", order, v)
		}
	}
	// A wrong Verify and a wrong resend share one counter: the 5th failure locks and returns both orders.
	if _, err := s.ResendByPhone(ctx, &pb.ResendCodeRequest{}, phoneA, "ZZZZZZ"); !isNotMatched(err) {
		t.Fatalf("5th guess = %v", err)
	}
	for _, order := range []string{"o1", "o2"} {
		st := e.status(order)
		rets := e.returns(order)
		if st.GetState() != pb.SessionState_SESSION_STATE_FAILED || st.GetVerifiers()[0].GetState() != pb.ChallengeState_CHALLENGE_STATE_LOCKED ||
			len(rets) != 1 || rets[0].GetReason() != filingv1.ReturnReason_RETURN_REASON_TOO_MANY_FAILED_ATTEMPTS {
			t.Fatalf("%s after 5 failures: %v, returns %v", order, st, rets)
		}
	}
	// The right tail now gets the uniform answer too: nothing is pending.
	if _, err := s.ResendByPhone(ctx, &pb.ResendCodeRequest{RequestId: "late"}, phoneA, tailA); !isNotMatched(err) {
		t.Fatalf("resend after lock = %v", err)
	}
	// Phone B (other verifier of o1, whose session failed) and an unknown phone count nothing.
	if _, err := s.ResendByPhone(ctx, &pb.ResendCodeRequest{}, "+8613700000000", tailA); !isNotMatched(err) {
		t.Fatalf("unknown phone = %v", err)
	}
	if v := e.status("o1").GetVerifiers()[1]; v.GetFailedAttempts() != 0 {
		t.Fatalf("phone B = %v", v)
	}
}

// testConcurrentResendMismatches: racing wrong-tail resends count exactly, lock once, return once.
func testConcurrentResendMismatches(e *env) {
	t, s := e.t, e.Store
	e.open(s, "o1", 1, Start.Add(24*time.Hour), vA())
	var wg sync.WaitGroup
	const n = 12
	errsOut := make([]error, n)
	for i := range n {
		wg.Go(func() {
			_, errsOut[i] = s.ResendByPhone(context.Background(), &pb.ResendCodeRequest{RequestId: fmt.Sprintf("g%d", i)}, phoneA, "000000")
		})
	}
	wg.Wait()
	for i, err := range errsOut {
		if !isNotMatched(err) {
			t.Fatalf("guess %d = %v", i, err)
		}
	}
	if v := e.status("o1").GetVerifiers()[0]; int(v.GetFailedAttempts()) != domain.DefaultLimits.MaxFailedAttempts ||
		v.GetState() != pb.ChallengeState_CHALLENGE_STATE_LOCKED {
		t.Fatalf("verifier = %v", v)
	}
	if len(e.returns("o1")) != 1 || len(e.payloads(convert.TargetCancelDeadline)) != 1 {
		t.Fatalf("returns %v", e.returns("o1"))
	}
}

func testCancelSession(e *env) {
	t, s := e.t, e.Store
	deadline := Start.Add(24 * time.Hour)
	ctx := context.Background()
	e.open(s, "o1", 1, deadline, vA())
	before := e.pending()

	r, err := s.CancelSession(ctx, &pb.CancelSessionRequest{RequestId: "c1", OrderId: "o1", Submission: 1})
	if err != nil || r.GetStatus().GetState() != pb.SessionState_SESSION_STATE_CANCELLED {
		t.Fatalf("cancel = %v, %v", r, err)
	}
	if r, err := s.CancelSession(ctx, &pb.CancelSessionRequest{RequestId: "c2", OrderId: "o1", Submission: 1}); err != nil ||
		r.GetStatus().GetState() != pb.SessionState_SESSION_STATE_CANCELLED {
		t.Fatalf("repeat cancel = %v, %v", r, err)
	}
	if n := e.pending(); n != before {
		t.Fatalf("cancel wrote outbox rows: %d -> %d", before, n)
	}
	// A cancel that overtakes OpenSession leaves a tombstone: the late open sends nothing.
	if _, err := s.CancelSession(ctx, &pb.CancelSessionRequest{OrderId: "o2", Submission: 1}); err != nil {
		t.Fatal(err)
	}
	st := e.open(s, "o2", 1, deadline, vB())
	if st.GetState() != pb.SessionState_SESSION_STATE_CANCELLED || len(e.sent(phoneB)) != 0 {
		t.Fatalf("open after cancel = %v", st)
	}
	// A passed session stays passed.
	e.open(s, "o3", 1, deadline, vB())
	if _, err := s.Verify(ctx, domain.VerifyInput{Phone: phoneB, Code: e.lastCode(phoneB), Tail: tailB}); err != nil {
		t.Fatal(err)
	}
	if r, err := s.CancelSession(ctx, &pb.CancelSessionRequest{OrderId: "o3", Submission: 1}); err != nil ||
		r.GetStatus().GetState() != pb.SessionState_SESSION_STATE_PASSED {
		t.Fatalf("cancel passed = %v, %v", r, err)
	}
	if _, err := s.Status(ctx, "nope"); errs.Reason(err) != domain.ReasonSessionNotFound {
		t.Fatalf("status unknown = %v", err)
	}
}

// testKeyRotation: codes hashed under an old key still verify after a new key becomes active.
func testKeyRotation(e *env) {
	t := e.t
	oldSpec := "old:" + strings.Repeat("cd", 32)
	old := e.replica(e.clk, hasherFor(t, oldSpec))
	e.open(old, "o1", 1, Start.Add(time.Hour), vA())
	rotated := e.replica(e.clk, hasherFor(t, "new:"+strings.Repeat("ef", 32)+","+oldSpec))
	if r, err := rotated.Verify(context.Background(), domain.VerifyInput{Phone: phoneA, Code: e.lastCode(phoneA), Tail: tailA}); err != nil ||
		r.GetResult() != pb.VerifyResult_VERIFY_RESULT_ALL_PASSED {
		t.Fatalf("verify after rotation = %v, %v", r, err)
	}
}
