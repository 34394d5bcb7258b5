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

// deliveryStates are the report states of the message states a receipt (or its absence) gives.
var deliveryStates = map[domain.State]verificationv1.DeliveryState{
	domain.StateDelivered:   verificationv1.DeliveryState_DELIVERY_STATE_DELIVERED,
	domain.StateUndelivered: verificationv1.DeliveryState_DELIVERY_STATE_UNDELIVERED,
	domain.StateAtRisk:      verificationv1.DeliveryState_DELIVERY_STATE_AT_RISK,
}

// DeliveryReport is the call m's new state (DELIVERED, UNDELIVERED, AT_RISK) owes verification
// (domain.DeliveryReported), or false when it owes none. The reason is the carrier's code (cut), never
// a phone or a text.
func DeliveryReport(m domain.Message) (outbox.Message, bool) {
	state, ok := deliveryStates[m.State]
	if !ok || !domain.DeliveryReported(m) {
		return outbox.Message{}, false
	}
	return outbox.Message{Target: TargetReportDelivery, Msg: &verificationv1.ReportDeliveryRequest{
		RequestId: domain.DeliveryRequestID(m.ID, m.State), MessageId: m.ID, OrderId: m.OrderID,
		State: state, Reason: m.DeliveryCode}}, true
}
