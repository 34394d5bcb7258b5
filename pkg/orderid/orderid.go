// Package orderid checks the order ids and submission numbers every service takes, so the same bad
// input gets the same answer (field, reason, message) from all of them.
package orderid

import (
	"strings"

	"github.com/icpverify/icpverify/pkg/errs"
)

// MaxLength bounds an order id. filing issues ids of 36 characters ("ord_" and 32 hex digits).
const MaxLength = 64

// The reasons of a bad order id or submission.
const (
	ReasonMissing           = "MISSING_ORDER_ID"
	ReasonInvalid           = "INVALID_ORDER_ID"
	ReasonInvalidSubmission = "INVALID_SUBMISSION"
)

// Check validates a required order id given in field.
func Check(field, id string) error {
	if strings.TrimSpace(id) == "" {
		return errs.Invalid(field, ReasonMissing, "%s is required", field)
	}
	return CheckOptional(field, id)
}

// CheckOptional validates an order id given in field that may be empty.
func CheckOptional(field, id string) error {
	if len(id) > MaxLength {
		return errs.Invalid(field, ReasonInvalid, "%s is longer than %d characters", field, MaxLength)
	}
	return nil
}

// CheckSubmission validates an (order_id, submission) pair: the key of a session, a deadline or a
// verification outcome.
func CheckSubmission(id string, submission int32) error {
	if err := Check("order_id", id); err != nil {
		return err
	}
	if submission <= 0 {
		return errs.Invalid("submission", ReasonInvalidSubmission, "submission must be positive")
	}
	return nil
}
