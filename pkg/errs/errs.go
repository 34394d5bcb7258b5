// Package errs holds the domain errors every service returns. They carry a kind, a stable reason
// (the ErrorInfo reason clients switch on) and, for bad input, the field; package rpc turns them into
// gRPC statuses in one place.
package errs

import (
	"errors"
	"fmt"
	"time"
)

// Kind is the class of a domain error; it decides the gRPC code.
type Kind int

// The kinds, each mapped to one gRPC code by package rpc.
const (
	KindInvalidArgument    Kind = iota + 1 // InvalidArgument
	KindNotFound                           // NotFound
	KindFailedPrecondition                 // FailedPrecondition
	KindAlreadyExists                      // AlreadyExists
	KindResourceExhausted                  // ResourceExhausted
	KindUnavailable                        // Unavailable
	KindAborted                            // Aborted
	KindUnauthenticated                    // Unauthenticated
	KindPermissionDenied                   // PermissionDenied
)

// Error is a domain error safe to show to the caller: Message must never hold a code, a full phone
// number or an ID number.
type Error struct {
	Kind    Kind
	Reason  string // stable, UPPER_SNAKE_CASE, e.g. ORDER_NOT_FOUND
	Field   string // for KindInvalidArgument: the request field, e.g. spec.principal.phone
	Message string
	// RetryAfter, when set, tells the caller how long to wait (ResourceExhausted, Unavailable).
	RetryAfter time.Duration
	// Metadata goes into the ErrorInfo; it must hold no personal data.
	Metadata map[string]string
}

func (e *Error) Error() string {
	if e.Field != "" {
		return fmt.Sprintf("%s: %s (%s)", e.Reason, e.Message, e.Field)
	}
	return fmt.Sprintf("%s: %s", e.Reason, e.Message)
}

// Is makes errors.Is match two domain errors with the same reason.
func (e *Error) Is(target error) bool {
	var t *Error
	return errors.As(target, &t) && t.Reason == e.Reason
}

// Invalid reports bad input in one field.
func Invalid(field, reason, format string, args ...any) *Error {
	return &Error{Kind: KindInvalidArgument, Reason: reason, Field: field, Message: fmt.Sprintf(format, args...)}
}

// NotFound reports an unknown id.
func NotFound(reason, format string, args ...any) *Error {
	return &Error{Kind: KindNotFound, Reason: reason, Message: fmt.Sprintf(format, args...)}
}

// FailedPrecondition reports an operation the current state does not allow.
func FailedPrecondition(reason, format string, args ...any) *Error {
	return &Error{Kind: KindFailedPrecondition, Reason: reason, Message: fmt.Sprintf(format, args...)}
}

// AlreadyExists reports a conflicting create.
func AlreadyExists(reason, format string, args ...any) *Error {
	return &Error{Kind: KindAlreadyExists, Reason: reason, Message: fmt.Sprintf(format, args...)}
}

// Exhausted reports a limit; the caller may retry after retryAfter (zero: not by waiting).
func Exhausted(reason string, retryAfter time.Duration, format string, args ...any) *Error {
	return &Error{Kind: KindResourceExhausted, Reason: reason, RetryAfter: retryAfter, Message: fmt.Sprintf(format, args...)}
}

// Reason returns the reason of a domain error in err's chain, or "".
func Reason(err error) string {
	var e *Error
	if errors.As(err, &e) {
		return e.Reason
	}
	return ""
}

// RequestIDReused is returned when a request_id comes back with a different request.
var RequestIDReused = &Error{Kind: KindAlreadyExists, Reason: "REQUEST_ID_REUSED", Field: "request_id",
	Message: "this request_id was already used for a different request"}

// Unauthenticated reports a missing or invalid credential.
func Unauthenticated(reason, format string, args ...any) *Error {
	return &Error{Kind: KindUnauthenticated, Reason: reason, Message: fmt.Sprintf(format, args...)}
}

// PermissionDenied reports a known caller that may not do this.
func PermissionDenied(reason, format string, args ...any) *Error {
	return &Error{Kind: KindPermissionDenied, Reason: reason, Message: fmt.Sprintf(format, args...)}
}

// MaxBatchItems bounds the requests of one batch call (MarkVerifiedBatch, CancelDeadlines...): a
// relay sends far fewer, and a bound keeps one transaction's statements and locks in reach.
const MaxBatchItems = 500

// ReasonTooManyItems is the reason of a batch call with more than MaxBatchItems requests.
const ReasonTooManyItems = "TOO_MANY_ITEMS"

// CheckBatchSize refuses a batch of more than MaxBatchItems requests.
func CheckBatchSize(n int) error {
	if n > MaxBatchItems {
		return Invalid("requests", ReasonTooManyItems, "a batch carries at most %d requests, not %d", MaxBatchItems, n)
	}
	return nil
}
