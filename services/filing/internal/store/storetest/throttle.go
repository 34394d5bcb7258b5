package storetest

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/icpverify/icpverify/pkg/errs"
	filingv1 "github.com/icpverify/icpverify/pkg/gen/icp/filing/v1"
	"github.com/icpverify/icpverify/services/filing/internal/app"
	"github.com/icpverify/icpverify/services/filing/internal/domain"
)

// noSubmitLimits: the suites resubmit returned orders at once.
var noSubmitLimits = domain.SubmitLimits{ResubmitCooldown: -1, MaxPerDay: -1}

// testSubmitLimits: with the defaults, an order returned for too many failed checks waits an hour
// before its next submission (FailedPrecondition with the time), and an order is submitted at most 3
// times in 24 hours (ResourceExhausted); both free up with time.
func testSubmitLimits(t *testing.T, e *env) {
	ctx := context.Background()
	limited := app.New(e.engine, app.Config{MaxOpenChallengesPerPhone: -1})
	id := e.create(t, firstFiling())
	submit := func() error {
		_, err := limited.SubmitOrder(ctx, PortalA, &filingv1.SubmitOrderRequest{RequestId: domain.NewID("r"), OrderId: id})
		return err
	}
	giveBack := func(sub int32, reason filingv1.ReturnReason) {
		t.Helper()
		if _, err := limited.ReturnOrder(ctx, &filingv1.ReturnOrderRequest{RequestId: domain.NewID("ret"), OrderId: id,
			Submission: sub, Reason: reason}); err != nil {
			t.Fatal(err)
		}
	}
	if err := submit(); err != nil {
		t.Fatal(err)
	}
	giveBack(1, filingv1.ReturnReason_RETURN_REASON_TOO_MANY_FAILED_ATTEMPTS)
	returnedAt := e.clock.Now()
	e.clock.Advance(59 * time.Minute)
	err := submit()
	if errs.Reason(err) != domain.ReasonResubmitCooldown || !strings.Contains(err.Error(), returnedAt.Add(time.Hour).UTC().Format(time.RFC3339)) {
		t.Fatalf("resubmit within the cool-down: %v, want %s with the time", err, domain.ReasonResubmitCooldown)
	}
	e.clock.Advance(time.Minute)
	if err := submit(); err != nil {
		t.Fatalf("after the cool-down: %v", err)
	}
	giveBack(2, filingv1.ReturnReason_RETURN_REASON_VERIFICATION_TIMEOUT) // no cool-down after a timeout
	if err := submit(); err != nil {
		t.Fatalf("third submission: %v", err)
	}
	giveBack(3, filingv1.ReturnReason_RETURN_REASON_VERIFICATION_TIMEOUT)
	err = submit()
	var de *errs.Error
	if !errors.As(err, &de) || de.Reason != domain.ReasonSubmissionsExceeded || de.Kind != errs.KindResourceExhausted || de.RetryAfter <= 0 {
		t.Fatalf("fourth submission in 24 h: %v, want ResourceExhausted %s with a retry time", err, domain.ReasonSubmissionsExceeded)
	}
	e.clock.Advance(24 * time.Hour)
	if err := submit(); err != nil {
		t.Fatalf("a day later: %v", err)
	}
}
