package convert

import (
	verificationv1 "github.com/icpverify/icpverify/pkg/gen/icp/verification/v1"
	"github.com/icpverify/icpverify/pkg/outbox"
	"github.com/icpverify/icpverify/services/sms-dispatch/internal/domain"
)

// TargetReportDelivery is the outbox target of verification.ReportDelivery; server.Run maps it to
// verification's client.
const TargetReportDelivery = "verification.ReportDelivery"

// FailedReport is the call the failure of m with lastErr owes verification (domain.FailureReported),
// or false when it owes none. It carries the message and order ids only: no phone, no text.
func FailedReport(m domain.Message, lastErr string) (outbox.Message, bool) {
	if !domain.FailureReported(m, lastErr) {
		return outbox.Message{}, false
	}
	return outbox.Message{Target: TargetReportDelivery, Msg: &verificationv1.ReportDeliveryRequest{
		RequestId: domain.ReportRequestID(m.ID), MessageId: m.ID, OrderId: m.OrderID,
		State: verificationv1.DeliveryState_DELIVERY_STATE_FAILED, Reason: domain.ReportReason(lastErr)}}, true
}
