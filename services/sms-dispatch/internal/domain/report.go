package domain

// Delivery reports: the sender of a message learns what became of it. Every message of an order (the
// ones verification sends; a message without one has nobody to tell) that ends FAILED owes
// verification one report, written to the outbox in the same transaction (or under the same lock) as
// the failure, so a crash loses neither: over the per-phone caps, expired, refused by the provider on
// every attempt, or queued without a text. A superseded message owes none: a newer message of its
// thread exists, so verification already replaced its code, and the report could only be ignored.
// The report names the message, never its phone or text, and a reason from ReportReason's fixed
// words, never the provider's own text (a gateway may echo the message, code and all).

// ReasonProviderRefused is the reported reason of a message the provider refused on every attempt.
const ReasonProviderRefused = "provider refused"

// FailureReported tells whether the failure of m with lastErr owes its sender a report.
func FailureReported(m Message, lastErr string) bool {
	return m.OrderID != "" && lastErr != ErrorSuperseded
}

// ReportReason is the word a report gives for a failure with lastErr.
func ReportReason(lastErr string) string {
	switch lastErr {
	case ErrorExpired, ErrorRateLimited, ErrorNothingToSend:
		return lastErr
	}
	return ReasonProviderRefused
}

// ReportRequestID is the request id of the report of message id's failure: one per message and
// outcome, so a redelivered report is one report.
func ReportRequestID(messageID string) string { return "delivery:" + messageID + ":FAILED" }

// DeliveryReported tells whether m, just made DELIVERED, UNDELIVERED or AT_RISK, owes its sender a
// report: every such message of an order does (one per message and state: DeliveryRequestID).
func DeliveryReported(m Message) bool {
	switch m.State {
	case StateDelivered, StateUndelivered, StateAtRisk:
		return m.OrderID != ""
	}
	return false
}

// DeliveryRequestID is the request id of the report of message id reaching state.
func DeliveryRequestID(messageID string, state State) string {
	return "delivery:" + messageID + ":" + string(state)
}
