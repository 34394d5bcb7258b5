package storetest

import (
	"context"
	"time"

	"google.golang.org/protobuf/proto"

	smsv1 "github.com/icpverify/icpverify/pkg/gen/icp/smsdispatch/v1"
	pb "github.com/icpverify/icpverify/pkg/gen/icp/verification/v1"
	"github.com/icpverify/icpverify/services/verification/internal/domain"
)

// report delivers a FAILED report on message m as sms-dispatch's outbox would, with request id id.
func (e *env) report(id, orderID, messageID string) *pb.ReportDeliveryResponse {
	e.t.Helper()
	req := &pb.ReportDeliveryRequest{RequestId: id, MessageId: messageID, OrderId: orderID,
		State: pb.DeliveryState_DELIVERY_STATE_FAILED, Reason: "rate limited"}
	resp, err := e.Store.ReportDelivery(context.Background(), req, domain.DeliveryReport{MessageID: messageID, OrderID: orderID,
		State: domain.DeliveryFailed, Reason: "rate limited"})
	if err != nil {
		e.t.Fatalf("report %s: %v", messageID, err)
	}
	return resp
}

func (e *env) reportFailed(m *smsv1.SendMessageRequest) *pb.ReportDeliveryResponse {
	e.t.Helper()
	return e.report("delivery:"+m.GetMessageId()+":FAILED", m.GetOrderId(), m.GetMessageId())
}

func (e *env) check(phone, code, tail string) (*pb.VerifyResponse, error) {
	return e.Store.Verify(context.Background(), domain.VerifyInput{Phone: phone, Code: code, Tail: tail})
}

// A FAILED report voids exactly the code of its message: that code never passes (a mismatch like any
// wrong code, counted as one), the other verifier's code still does, the status says so, and a
// resend's new code passes.
func testDeliveryFailedVoidsCode(e *env) {
	t, s := e.t, e.Store
	e.open(s, "o1", 1, T0.Add(24*time.Hour), vA(), vB())
	codeA, codeB := e.lastCode(phoneA), e.lastCode(phoneB)
	queued := e.pending()

	if r := e.reportFailed(e.sent(phoneA)[0]); !r.GetVoided() {
		t.Fatalf("the report did not void the code: %v", r)
	}
	if n := e.pending(); n != queued {
		t.Fatalf("a report owes nobody anything: %d outbox rows, had %d", n, queued)
	}
	st := e.status("o1")
	if v1, v2 := st.GetVerifiers()[0], st.GetVerifiers()[1]; !v1.GetCodeUndelivered() || v2.GetCodeUndelivered() ||
		v1.GetState() != pb.ChallengeState_CHALLENGE_STATE_PENDING {
		t.Fatalf("status after the report = %v", st)
	}
	if _, err := e.check(phoneA, codeA, tailA); !isNotMatched(err) {
		t.Fatalf("the voided code answered %v, want the uniform mismatch", err)
	}
	if v := e.status("o1").GetVerifiers()[0]; v.GetFailedAttempts() != 1 {
		t.Fatalf("a check with the voided code counts like a wrong one: %v", v)
	}
	if r, err := e.check(phoneB, codeB, tailB); err != nil || r.GetResult() != pb.VerifyResult_VERIFY_RESULT_PASSED_WAITING_FOR_OTHERS {
		t.Fatalf("the other verifier's code = %v, %v", r, err)
	}

	e.clk.Advance(time.Minute)
	if _, err := s.ResendVerifier(context.Background(), &pb.ResendVerifierCodeRequest{RequestId: "r1", OrderId: "o1", VerifierId: "v1"}); err != nil {
		t.Fatalf("resend after a failed delivery: %v", err)
	}
	if v := e.status("o1").GetVerifiers()[0]; v.GetCodeUndelivered() {
		t.Fatalf("the new code is not undelivered: %v", v)
	}
	if _, err := e.check(phoneA, codeA, tailA); !isNotMatched(err) {
		t.Fatalf("the voided code after the resend = %v", err)
	}
	if r, err := e.check(phoneA, e.lastCode(phoneA), tailA); err != nil || r.GetResult() != pb.VerifyResult_VERIFY_RESULT_ALL_PASSED {
		t.Fatalf("the resend's code = %v, %v", r, err)
	}
}

// The public resend (phone + ID tail) replaces a voided code too.
func testDeliveryFailedPublicResend(e *env) {
	t, s := e.t, e.Store
	e.open(s, "o1", 1, T0.Add(24*time.Hour), vA())
	first := e.lastCode(phoneA)
	e.reportFailed(e.sent(phoneA)[0])
	e.clk.Advance(time.Minute)
	if _, err := s.ResendByPhone(context.Background(), &pb.ResendCodeRequest{RequestId: "p1"}, phoneA, tailA); err != nil {
		t.Fatalf("public resend: %v", err)
	}
	if _, err := e.check(phoneA, first, tailA); !isNotMatched(err) {
		t.Fatalf("the voided code = %v", err)
	}
	if r, err := e.check(phoneA, e.lastCode(phoneA), tailA); err != nil || r.GetResult() != pb.VerifyResult_VERIFY_RESULT_ALL_PASSED {
		t.Fatalf("the new code = %v, %v", r, err)
	}
}

// A report on an older generation (its code already replaced by a resend) leaves the current code valid.
func testDeliveryReportOfOldGeneration(e *env) {
	t, s := e.t, e.Store
	e.open(s, "o1", 1, T0.Add(24*time.Hour), vA())
	e.clk.Advance(time.Minute)
	if _, err := s.ResendVerifier(context.Background(), &pb.ResendVerifierCodeRequest{RequestId: "r1", OrderId: "o1", VerifierId: "v1"}); err != nil {
		t.Fatal(err)
	}
	msgs := e.sent(phoneA)
	if r := e.reportFailed(msgs[0]); r.GetVoided() {
		t.Fatalf("a report on generation 1 voided generation 2: %v", r)
	}
	if v := e.status("o1").GetVerifiers()[0]; v.GetCodeUndelivered() {
		t.Fatalf("status = %v", v)
	}
	if r, err := e.check(phoneA, msgs[1].GetParams()["code"], tailA); err != nil || r.GetResult() != pb.VerifyResult_VERIFY_RESULT_ALL_PASSED {
		t.Fatalf("the current code = %v, %v", r, err)
	}
}

// The same report twice changes nothing twice: a repeated request id gets its first answer, and a new
// one finds the code already void. After a resend, neither touches the new code.
func testDeliveryReportTwiceIsOnce(e *env) {
	t, s := e.t, e.Store
	e.open(s, "o1", 1, T0.Add(24*time.Hour), vA())
	m := e.sent(phoneA)[0]
	first := e.reportFailed(m)
	if again := e.reportFailed(m); !first.GetVoided() || !proto.Equal(again, first) {
		t.Fatalf("a repeated report = %v, first %v", again, first)
	}
	if other := e.report("another-id", "o1", m.GetMessageId()); other.GetVoided() {
		t.Fatalf("a second report voided the void code again: %v", other)
	}
	e.clk.Advance(time.Minute)
	if _, err := s.ResendVerifier(context.Background(), &pb.ResendVerifierCodeRequest{RequestId: "r1", OrderId: "o1", VerifierId: "v1"}); err != nil {
		t.Fatal(err)
	}
	if again := e.reportFailed(m); !proto.Equal(again, first) {
		t.Fatalf("the repeat after the resend = %v", again)
	}
	e.report("late-id", "o1", m.GetMessageId())
	if r, err := e.check(phoneA, e.lastCode(phoneA), tailA); err != nil || r.GetResult() != pb.VerifyResult_VERIFY_RESULT_ALL_PASSED {
		t.Fatalf("the resend's code after repeated reports = %v, %v", r, err)
	}
}

// Reports that find nothing to void are answered OK, so sms-dispatch's outbox neither retries nor parks
// them: an unknown order, a message id verification does not make, another order's message, a
// passed verifier, a closed session.
func testDeliveryReportFindsNothing(e *env) {
	t, s := e.t, e.Store
	e.open(s, "o1", 1, T0.Add(24*time.Hour), vA(), vB())
	e.open(s, "o2", 1, T0.Add(24*time.Hour), domain.VerifierSpec{Phone: "+8613712345678", Tails: []string{tailA}})
	mA, mB := e.sent(phoneA)[0], e.sent(phoneB)[0]
	for _, r := range []struct{ what, order, message string }{
		{"unknown order", "o-gone", mA.GetMessageId()},
		{"not a code message", "o1", "hello"},
		{"another order's message", "o2", mA.GetMessageId()},
	} {
		if resp := e.report(r.what, r.order, r.message); resp.GetVoided() {
			t.Errorf("%s: voided", r.what)
		}
	}
	if _, err := e.check(phoneB, e.lastCode(phoneB), tailB); err != nil {
		t.Fatal(err)
	}
	if resp := e.reportFailed(mB); resp.GetVoided() {
		t.Errorf("a passed verifier's code was voided")
	}
	if _, err := s.CancelSession(context.Background(), &pb.CancelSessionRequest{RequestId: "c", OrderId: "o1", Submission: 1}); err != nil {
		t.Fatal(err)
	}
	if resp := e.reportFailed(mA); resp.GetVoided() {
		t.Errorf("a closed session's code was voided")
	}
	for _, v := range e.status("o1").GetVerifiers() {
		if v.GetCodeUndelivered() {
			t.Errorf("verifier %s shows an undelivered code", v.GetVerifierId())
		}
	}
}
