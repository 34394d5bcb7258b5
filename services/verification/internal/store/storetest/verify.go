package storetest

import (
	"context"
	"fmt"
	"sync"
	"time"

	filingv1 "github.com/icpverify/icpverify/pkg/gen/icp/filing/v1"
	pb "github.com/icpverify/icpverify/pkg/gen/icp/verification/v1"
	"github.com/icpverify/icpverify/services/verification/internal/convert"
	"github.com/icpverify/icpverify/services/verification/internal/domain"
)

func testVerifyPassesAllVerifiers(e *env) {
	t, s, clk := e.t, e.Store, e.clk
	e.open(s, "o1", 1, T0.Add(24*time.Hour), vA(), vB())
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
	if st.GetState() != pb.SessionState_SESSION_STATE_PASSED || !st.GetVerifiers()[1].GetPassedTime().AsTime().Equal(T0.Add(time.Hour)) {
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
	e.open(s, "o1", 1, T0.Add(24*time.Hour), vA(), vB())
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
		e.open(s, order, 1, T0.Add(24*time.Hour), a, b)
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
