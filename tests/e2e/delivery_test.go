package e2e

import (
	"fmt"
	"testing"
	"time"

	filingv1 "github.com/icpverify/icpverify/pkg/gen/icp/filing/v1"
	smsv1 "github.com/icpverify/icpverify/pkg/gen/icp/smsdispatch/v1"
	verificationv1 "github.com/icpverify/icpverify/pkg/gen/icp/verification/v1"
)

// A code whose SMS no provider accepted never passes (issue 12): the gateway refuses the message,
// sms-dispatch gives up on it and reports the failure through its outbox, and verification voids the
// code, which the owner's status shows. Once the gateway takes messages again, the operator's resend
// delivers a new code, and that one passes.
func TestUndeliveredCodeNeverPasses(t *testing.T) {
	s := startSuite(t, options{smsMaxAttempts: 1})
	s.gateway.setRefuse(true)
	principal := person("周九", "13812345678")
	order := s.submit(firstFiling(principal, &filingv1.Website{Domain: "void.cn", Person: principal}))
	refused := s.waitCodes(1, phoneA) // the gateway saw the text before it refused it

	var verifier *verificationv1.VerifierStatus
	eventually(t, 20*time.Second, "the refused code to be voided", func() (bool, string) {
		st, err := s.Verification.GetVerificationStatus(ctx(t), &verificationv1.GetVerificationStatusRequest{OrderId: order.OrderId})
		if err != nil {
			return false, err.Error()
		}
		verifier = st.GetStatus().GetVerifiers()[0]
		return verifier.GetCodeUndelivered(), fmt.Sprint(verifier)
	})
	msgs, err := s.SMS.ListMessages(ctx(t), &smsv1.ListMessagesRequest{OrderId: order.OrderId})
	if err != nil || len(msgs.GetMessages()) != 1 || msgs.GetMessages()[0].GetState() != smsv1.MessageState_MESSAGE_STATE_FAILED {
		t.Fatalf("sms-dispatch's messages = %v, %v, want the one FAILED", msgs, err)
	}
	_, err = s.verify(phoneA, refused[phoneA], tailOf(principal))
	requireMismatch(t, err)

	s.gateway.setRefuse(false)
	if _, err := s.VerifyInternal.ResendVerifierCode(ctx(t), &verificationv1.ResendVerifierCodeRequest{
		RequestId: "resend-after-failure", OrderId: order.OrderId, VerifierId: verifier.GetVerifierId()}); err != nil {
		t.Fatalf("resend: %v", err)
	}
	fresh := s.waitCodes(2, phoneA)
	if fresh[phoneA] != refused[phoneA] { // a new draw may repeat the old code by chance (1 in a million)
		_, err = s.verify(phoneA, refused[phoneA], tailOf(principal))
		requireMismatch(t, err)
	}
	resp, err := s.verify(phoneA, fresh[phoneA], tailOf(principal))
	if err != nil || resp.GetResult() != verificationv1.VerifyResult_VERIFY_RESULT_ALL_PASSED {
		t.Fatalf("the resend's code: %v, %v", resp, err)
	}
	s.waitState(order.OrderId, filingv1.OrderState_ORDER_STATE_UNDER_REVIEW, 15*time.Second)
}
