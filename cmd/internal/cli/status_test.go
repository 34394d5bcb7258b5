package cli

import (
	"errors"
	"testing"

	"go.uber.org/zap"

	"github.com/icpverify/icpverify/pkg/errs"
	deadlinev1 "github.com/icpverify/icpverify/pkg/gen/icp/deadline/v1"
	verificationv1 "github.com/icpverify/icpverify/pkg/gen/icp/verification/v1"
	"github.com/icpverify/icpverify/pkg/rpc"
)

// status skips only "no session yet" and "no timer yet"; any other error, even a NotFound with
// another reason, reaches the user.
func TestIgnoreReason(t *testing.T) {
	statusOf := func(e error) error {
		return &callError{svc: "deadline", addr: "x", err: rpc.ToStatus(zap.NewNop(), "/m", e)}
	}
	noTimer := deadlinev1.ErrorReason_ERROR_REASON_DEADLINE_NOT_FOUND
	cases := []struct {
		name string
		err  error
		skip bool
	}{
		{"ok", nil, true},
		{"the reason", statusOf(errs.NotFound(rpc.ReasonName(noTimer), "none")), true},
		{"another NotFound", statusOf(errs.NotFound(rpc.ReasonName(verificationv1.ErrorReason_ERROR_REASON_SESSION_NOT_FOUND), "none")), false},
		{"NotFound without a reason", statusOf(errs.NotFound("", "none")), false},
		{"the reason with another code", statusOf(errs.FailedPrecondition(rpc.ReasonName(noTimer), "odd")), false},
		{"not a status", errors.New("boom"), false},
	}
	for _, c := range cases {
		if got := ignoreReason(c.err, noTimer); (got == nil) != c.skip || (got != nil && got != c.err) {
			t.Errorf("%s: ignoreReason = %v, want skipped %v", c.name, got, c.skip)
		}
	}
}
