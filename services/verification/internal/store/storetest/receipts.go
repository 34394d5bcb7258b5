package storetest

import (
	"context"
	"time"

	pb "github.com/icpverify/icpverify/pkg/gen/icp/verification/v1"
	"github.com/icpverify/icpverify/services/verification/internal/domain"
)

// reportState delivers a report in state on message messageID as sms-dispatch's outbox would.
func (e *env) reportState(orderID, messageID string, state pb.DeliveryState, ds domain.DeliveryState) *pb.ReportDeliveryResponse {
	e.t.Helper()
	req := &pb.ReportDeliveryRequest{RequestId: "delivery:" + messageID + ":" + string(ds), MessageId: messageID, OrderId: orderID,
		State: state, Reason: "DELIVRD"}
	resp, err := e.Store.ReportDelivery(context.Background(), req, domain.DeliveryReport{MessageID: messageID, OrderID: orderID,
		State: ds, Reason: "DELIVRD"})
	if err != nil {
		e.t.Fatalf("report %s: %v", messageID, err)
	}
	return resp
}

// The receipts' reports show in the status: AT_RISK, then DELIVERED (a later AT_RISK or UNDELIVERED
// changes nothing); on the other verifier UNDELIVERED voids the code like FAILED; a report of an
// older generation changes nothing; a resend's new code is pending again.
func testDeliveryReceiptsShowInStatus(e *env) {
	t, s := e.t, e.Store
	e.open(s, "o1", 1, T0.Add(24*time.Hour), vA(), vB())
	codeB := e.lastCode(phoneB)
	mA, mB := e.sent(phoneA)[0], e.sent(phoneB)[0]
	delivery := func(i int) pb.CodeDelivery { return e.status("o1").GetVerifiers()[i].GetDelivery() }
	if delivery(0) != pb.CodeDelivery_CODE_DELIVERY_PENDING || delivery(1) != pb.CodeDelivery_CODE_DELIVERY_PENDING {
		t.Fatalf("before any report: %v", e.status("o1"))
	}
	e.reportState("o1", mA.GetMessageId(), pb.DeliveryState_DELIVERY_STATE_AT_RISK, domain.DeliveryAtRisk)
	if delivery(0) != pb.CodeDelivery_CODE_DELIVERY_AT_RISK {
		t.Fatalf("after AT_RISK: %v", e.status("o1"))
	}
	e.reportState("o1", mA.GetMessageId(), pb.DeliveryState_DELIVERY_STATE_DELIVERED, domain.DeliveryDelivered)
	e.reportState("o1", mA.GetMessageId(), pb.DeliveryState_DELIVERY_STATE_AT_RISK, domain.DeliveryAtRisk)
	if r := e.reportState("o1", mA.GetMessageId(), pb.DeliveryState_DELIVERY_STATE_UNDELIVERED, domain.DeliveryUndelivered); r.GetVoided() {
		t.Fatalf("UNDELIVERED after DELIVERED voided the code")
	}
	if v := e.status("o1").GetVerifiers()[0]; v.GetDelivery() != pb.CodeDelivery_CODE_DELIVERY_DELIVERED || v.GetCodeUndelivered() {
		t.Fatalf("after DELIVERED: %v", v)
	}

	if r := e.reportState("o1", mB.GetMessageId(), pb.DeliveryState_DELIVERY_STATE_UNDELIVERED, domain.DeliveryUndelivered); !r.GetVoided() {
		t.Fatalf("UNDELIVERED did not void the code")
	}
	if v := e.status("o1").GetVerifiers()[1]; v.GetDelivery() != pb.CodeDelivery_CODE_DELIVERY_UNDELIVERED || !v.GetCodeUndelivered() {
		t.Fatalf("after UNDELIVERED: %v", v)
	}
	if _, err := e.check(phoneB, codeB, tailB); !isNotMatched(err) {
		t.Fatalf("the undelivered code answered %v, want the uniform mismatch", err)
	}
	e.clk.Advance(time.Minute)
	// The resend's answer says the replaced code's SMS never arrived (the page advises another number).
	if r, err := s.ResendVerifier(context.Background(), &pb.ResendVerifierCodeRequest{RequestId: "r1", OrderId: "o1", VerifierId: "v2"}); err != nil ||
		r.GetResend().GetPreviousDelivery() != pb.CodeDelivery_CODE_DELIVERY_UNDELIVERED {
		t.Fatalf("resend after an undelivered code: %v, %v", r, err)
	}
	if v := e.status("o1").GetVerifiers()[1]; v.GetDelivery() != pb.CodeDelivery_CODE_DELIVERY_PENDING || v.GetCodeUndelivered() {
		t.Fatalf("the new code: %v", v)
	}
	// The old generation's late DELIVERED changes nothing.
	e.reportState("o1", mB.GetMessageId(), pb.DeliveryState_DELIVERY_STATE_DELIVERED, domain.DeliveryDelivered)
	if v := e.status("o1").GetVerifiers()[1]; v.GetDelivery() != pb.CodeDelivery_CODE_DELIVERY_PENDING {
		t.Fatalf("an older generation's report changed the new code: %v", v)
	}
	if r, err := e.check(phoneB, e.lastCode(phoneB), tailB); err != nil || r.GetResult() != pb.VerifyResult_VERIFY_RESULT_PASSED_WAITING_FOR_OTHERS {
		t.Fatalf("the resend's code = %v, %v", r, err)
	}
}
