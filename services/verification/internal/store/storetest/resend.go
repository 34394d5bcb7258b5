package storetest

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	"google.golang.org/protobuf/proto"

	"github.com/icpverify/icpverify/pkg/errs"
	filingv1 "github.com/icpverify/icpverify/pkg/gen/icp/filing/v1"
	pb "github.com/icpverify/icpverify/pkg/gen/icp/verification/v1"
	"github.com/icpverify/icpverify/services/verification/internal/convert"
	"github.com/icpverify/icpverify/services/verification/internal/domain"
)

func testResend(e *env) {
	t, s, clk := e.t, e.Store, e.clk
	deadline := T0.Add(24 * time.Hour)
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
	e.open(s, "o1", 1, T0.Add(24*time.Hour), vA(), vB())
	e.open(s, "o2", 1, T0.Add(24*time.Hour), vA())

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
	e.open(s, "o1", 1, T0.Add(24*time.Hour), vA())
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
