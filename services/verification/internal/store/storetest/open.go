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
	smsv1 "github.com/icpverify/icpverify/pkg/gen/icp/smsdispatch/v1"
	pb "github.com/icpverify/icpverify/pkg/gen/icp/verification/v1"
	"github.com/icpverify/icpverify/services/verification/internal/convert"
	"github.com/icpverify/icpverify/services/verification/internal/domain"
)

func testOpenSessionIdempotentAndSuperseded(e *env) {
	t, s, clk := e.t, e.Store, e.clk
	deadline := T0.Add(24 * time.Hour)

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
	if !proto.Equal(again, st) || other.GetStatus().GetVerifiers()[0].GetLastSentTime().AsTime() != T0 {
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
	deadline := T0
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
	e.clk.Set(T0.Add(-time.Hour))
	if st := e.open(s, "ontime", 1, T0.Add(-time.Hour+time.Nanosecond), vA()); st.GetState() != pb.SessionState_SESSION_STATE_OPEN {
		t.Fatalf("on-time open = %v", st)
	}
}

// testConcurrentOpen: redeliveries of one OpenSession racing (different request ids, one business key)
// make one session and draw one code per verifier.
func testConcurrentOpen(e *env) {
	t := e.t
	deadline := T0.Add(24 * time.Hour)
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
