package domain

// Every ErrorInfo reason filing answers is a constant: of this package, next to the rule that gives
// it, or of the shared packages (orderid, idempotency, pagetoken, phone, iddoc). The contract's enum
// ErrorReason (proto/icp/filing/v1) lists exactly these; convert's test holds the two together.

// The reasons of the requests' own shape, which the handlers (grpcapi) check before any use case.
const (
	ReasonMissingSpec         = "MISSING_SPEC"          // CreateOrder or UpdateOrder without a spec
	ReasonInvalidState        = "INVALID_STATE"         // ListOrders: a state outside OrderState
	ReasonInvalidReturnReason = "INVALID_RETURN_REASON" // ReturnOrder: neither VERIFICATION_TIMEOUT nor TOO_MANY_FAILED_ATTEMPTS
	ReasonTooManyPhoneLocks   = "TOO_MANY_PHONE_LOCKS"  // ReturnOrder: more locks than an order may have verifiers
	ReasonInvalidPhoneLock    = "INVALID_PHONE_LOCK"    // ReturnOrder: a lock without an E.164 phone and a valid until
	ReasonInvalidOutcome      = "INVALID_OUTCOME"       // RecordReviewOutcome: neither APPROVED nor REJECTED
)
