package storetest

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"google.golang.org/protobuf/proto"

	"github.com/icpverify/icpverify/pkg/clock"
	"github.com/icpverify/icpverify/pkg/errs"
	filingv1 "github.com/icpverify/icpverify/pkg/gen/icp/filing/v1"
	pb "github.com/icpverify/icpverify/pkg/gen/icp/verification/v1"
	"github.com/icpverify/icpverify/services/verification/internal/domain"
)

// testDeadlineRace runs the last Verify and CloseIfIncomplete at once around the deadline, each on its
// own replica with its own clock: whatever the interleaving, the order is either verified or returned,
// never both.
func testDeadlineRace(e *env) {
	t := e.t
	deadline := T0.Add(24 * time.Hour)
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
	deadline := T0.Add(time.Hour)
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
	deadline := T0.Add(24 * time.Hour)
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
