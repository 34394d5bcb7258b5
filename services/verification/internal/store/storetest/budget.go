package storetest

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/icpverify/icpverify/pkg/errs"
	filingv1 "github.com/icpverify/icpverify/pkg/gen/icp/filing/v1"
	pb "github.com/icpverify/icpverify/pkg/gen/icp/verification/v1"
	"github.com/icpverify/icpverify/services/verification/internal/domain"
)

// The per-phone failure budget (domain/budget.go) with the suite's DefaultLimits: 5 failures per
// verifier, 10 per phone in 24 h.

// wrongVerify makes one wrong check of phone A in ctx and wants the uniform mismatch.
func (e *env) wrongVerify(ctx context.Context) {
	e.t.Helper()
	if _, err := e.Store.Verify(ctx, domain.VerifyInput{Phone: phoneA, Code: "999999", Tail: tailA}); !isNotMatched(err) {
		e.t.Fatalf("wrong verify = %v, want the uniform mismatch", err)
	}
}

// wantPhoneLocked wants err to be PHONE_LOCKED until until.
func wantPhoneLocked(e *env, what string, err error, until time.Time) {
	e.t.Helper()
	var de *errs.Error
	if errs.Reason(err) != domain.ReasonPhoneLocked || !errors.As(err, &de) || de.Kind != errs.KindFailedPrecondition ||
		de.Metadata["locked_until"] != until.UTC().Format(time.RFC3339) {
		e.t.Fatalf("%s = %v, want PHONE_LOCKED until %s", what, err, until)
	}
}

// wantReturnedWithLock wants order's returns to end with one for submission sub carrying phone A's
// lock until until.
func (e *env) wantReturnedWithLock(order string, sub int32, until time.Time) {
	e.t.Helper()
	for _, r := range e.returns(order) {
		if r.GetSubmission() != sub {
			continue
		}
		locks := r.GetPhoneLocks()
		if r.GetReason() != filingv1.ReturnReason_RETURN_REASON_TOO_MANY_FAILED_ATTEMPTS || len(locks) != 1 ||
			locks[0].GetPhone() != phoneA || !locks[0].GetUntil().AsTime().Equal(until) {
			e.t.Fatalf("%s/%d returned %v, want TOO_MANY_FAILED_ATTEMPTS with phone A locked until %s", order, sub, r, until)
		}
		return
	}
	e.t.Fatalf("%s/%d was not returned: %v", order, sub, e.returns(order))
}

// testPhoneBudgetSpansOrdersAndResubmissions: failures of one phone count across orders, tenants and
// resubmissions; the 10th locks every pending challenge of the phone (another tenant's too), returns
// the orders with the lock, refuses checks, resends and new sessions for a window, then lets go.
func testPhoneBudgetSpansOrdersAndResubmissions(e *env) {
	t, s, clk := e.t, e.Store, e.clk
	ctx := context.Background()
	deadline := T0.Add(24 * time.Hour)
	e.open(s, "o1", 1, deadline, vA())
	e.open(s, "o2", 1, deadline, vA())
	for range 5 { // the 5th locks both verifiers (5 per verifier): 5 of the phone's 10
		e.wrongVerify(ctx)
		clk.Advance(time.Minute)
	}
	for _, o := range []string{"o1", "o2"} {
		if r := e.returns(o); len(r) != 1 || len(r[0].GetPhoneLocks()) != 0 {
			t.Fatalf("%s after 5 failures: returns %v, want one without a phone lock", o, r)
		}
	}
	// Resubmissions draw fresh codes and fresh per-verifier counters, but not a fresh phone budget.
	e.open(s, "o1", 2, deadline, vA())
	e.open(s, "o2", 2, deadline, vA())
	e.openFor("t2", "o3", 1, vA(), vB())
	for range 4 {
		e.wrongVerify(ctx)
		clk.Advance(time.Minute)
	}
	if st := e.status("o1"); st.GetState() != pb.SessionState_SESSION_STATE_OPEN || st.GetVerifiers()[0].GetFailedAttempts() != 4 {
		t.Fatalf("o1/2 after 9 of the phone's failures = %v", st)
	}
	e.wrongVerify(ctx) // the 10th
	until := clk.Now().Add(domain.DefaultLimits.PhoneFailureWindow)
	e.wantReturnedWithLock("o1", 2, until)
	e.wantReturnedWithLock("o2", 2, until)
	e.wantReturnedWithLock("o3", 1, until) // the other tenant's order, which the guesses never saw
	if st, err := s.Status(tenantCtx("t2"), "o3"); err != nil || st.GetState() != pb.SessionState_SESSION_STATE_FAILED ||
		st.GetVerifiers()[0].GetFailedAttempts() != 0 || st.GetVerifiers()[0].GetState() != pb.ChallengeState_CHALLENGE_STATE_LOCKED {
		t.Fatalf("o3 after the budget = %v, %v", st, err)
	}

	// Locked: the right code, a resend and a new session are refused until the window has passed.
	clk.Advance(time.Hour)
	_, err := s.Verify(ctx, domain.VerifyInput{Phone: phoneA, Code: e.lastCode(phoneA), Tail: tailA})
	wantPhoneLocked(e, "verify of a locked phone", err, until)
	_, err = s.ResendByPhone(ctx, &pb.ResendCodeRequest{RequestId: "r1"}, phoneA, tailA)
	wantPhoneLocked(e, "resend of a locked phone", err, until)
	if _, err := s.Verify(ctx, domain.VerifyInput{Phone: phoneB, Code: "999999", Tail: tailB}); !isNotMatched(err) {
		t.Fatalf("another phone = %v, want the uniform mismatch (its session failed with o3)", err)
	}
	st := e.open(s, "o4", 1, clk.Now().Add(24*time.Hour), vB(), vA())
	if st.GetState() != pb.SessionState_SESSION_STATE_FAILED || len(st.GetVerifiers()) != 0 || len(e.sent(phoneB)) != 1 {
		t.Fatalf("open with a locked phone = %v; phone B messages %d: want a failed session and no code", st, len(e.sent(phoneB)))
	}
	e.wantReturnedWithLock("o4", 1, until)

	// One window after the spending failure, the phone starts afresh.
	clk.Set(until)
	e.open(s, "o5", 1, clk.Now().Add(24*time.Hour), vA())
	r, err := s.Verify(ctx, domain.VerifyInput{Phone: phoneA, Code: e.lastCode(phoneA), Tail: tailA})
	if err != nil || r.GetResult() != pb.VerifyResult_VERIFY_RESULT_ALL_PASSED {
		t.Fatalf("verify after the lock = %v, %v", r, err)
	}
}

// testPhoneBudgetCountsResendMismatches: a public resend with a wrong ID tail spends the budget like a
// wrong Verify.
func testPhoneBudgetCountsResendMismatches(e *env) {
	t, s, clk := e.t, e.Store, e.clk
	ctx := context.Background()
	for sub := int32(1); sub <= 2; sub++ {
		e.open(s, "o1", sub, T0.Add(48*time.Hour), vA())
		for i := range 5 {
			_, err := s.ResendByPhone(ctx, &pb.ResendCodeRequest{RequestId: fmt.Sprintf("g%d-%d", sub, i)}, phoneA, "00000"+fmt.Sprint(i))
			if !isNotMatched(err) {
				t.Fatalf("wrong tail %d/%d = %v", sub, i, err)
			}
			clk.Advance(time.Minute)
		}
	}
	e.wantReturnedWithLock("o1", 2, clk.Now().Add(-time.Minute).Add(domain.DefaultLimits.PhoneFailureWindow))
}

// testConcurrentMismatchesSpendTheBudgetOnce: with 8 of 10 counted, mismatches racing on two replicas
// (separate transactions) count exactly: the phone locks, each order is returned once.
func testConcurrentMismatchesSpendTheBudgetOnce(e *env) {
	t, s, clk := e.t, e.Store, e.clk
	ctx := context.Background()
	e.open(s, "o1", 1, T0.Add(48*time.Hour), vA())
	for range 4 {
		e.wrongVerify(ctx)
	}
	e.open(s, "o2", 1, T0.Add(48*time.Hour), vA())
	// o1 is one failure from its verifier limit; o2 fresh. Race 2 mismatches: the phone is at 4.
	// Then race two more pairs: 4+2+2 = 8, and a last pair takes it to exactly 10.
	replicas := []Store{s, e.replica(clk, Hasher(t))}
	race := func() {
		var wg sync.WaitGroup
		errsCh := make(chan error, len(replicas))
		for _, r := range replicas {
			wg.Go(func() {
				_, err := r.Verify(ctx, domain.VerifyInput{Phone: phoneA, Code: "999999", Tail: tailA})
				errsCh <- err
			})
		}
		wg.Wait()
		close(errsCh)
		for err := range errsCh {
			if !isNotMatched(err) && errs.Reason(err) != domain.ReasonPhoneLocked {
				t.Fatalf("racing mismatch = %v", err)
			}
		}
	}
	e.open(s, "o3", 1, T0.Add(48*time.Hour), vA())
	race() // 6: o1 locks at its 5th; o2, o3 at 2
	e.open(s, "o1", 2, T0.Add(48*time.Hour), vA())
	race() // 8
	if st := e.status("o3"); st.GetState() != pb.SessionState_SESSION_STATE_OPEN || st.GetVerifiers()[0].GetFailedAttempts() != 4 {
		t.Fatalf("o3 at 8 of the phone's failures = %v", st)
	}
	race() // 10: spent exactly once
	for _, k := range []struct {
		order string
		sub   int32
	}{{"o1", 2}, {"o2", 1}, {"o3", 1}} {
		n := 0
		for _, r := range e.returns(k.order) {
			if r.GetSubmission() == k.sub {
				n++
			}
		}
		if n != 1 {
			t.Fatalf("%s/%d returned %d times", k.order, k.sub, n)
		}
		if st := e.status(k.order); st.GetState() != pb.SessionState_SESSION_STATE_FAILED {
			t.Fatalf("%s after the budget = %v", k.order, st)
		}
	}
	_, err := s.Verify(ctx, domain.VerifyInput{Phone: phoneA, Code: e.lastCode(phoneA), Tail: tailA})
	if errs.Reason(err) != domain.ReasonPhoneLocked {
		t.Fatalf("after exactly 10 = %v, want PHONE_LOCKED", err)
	}
}
