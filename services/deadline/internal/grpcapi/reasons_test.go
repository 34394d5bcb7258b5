package grpcapi_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/icpverify/icpverify/pkg/errs"
	deadlinev1 "github.com/icpverify/icpverify/pkg/gen/icp/deadline/v1"
	"github.com/icpverify/icpverify/pkg/idempotency"
	"github.com/icpverify/icpverify/pkg/orderid"
	"github.com/icpverify/icpverify/pkg/rpc"
)

// TestEveryReasonIsDeclared drives every error a caller can cause through gRPC: each answer's
// reason is the declared ErrorReason value the case names, and every declared value is reached, so
// the contract's list is the service's whole vocabulary.
func TestEveryReasonIsDeclared(t *testing.T) {
	t.Parallel()
	c := startServer(t)
	ctx := context.Background()
	due := timestamppb.New(t0.Add(time.Hour))
	if _, err := c.ScheduleDeadline(ctx, &deadlinev1.ScheduleDeadlineRequest{RequestId: "r1", OrderId: "o1", Submission: 1, DueTime: due}); err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		want deadlinev1.ErrorReason
		call func() error
	}{
		{deadlinev1.ErrorReason_ERROR_REASON_DEADLINE_NOT_FOUND, func() error {
			_, err := c.GetDeadline(ctx, &deadlinev1.GetDeadlineRequest{OrderId: "nope"})
			return err
		}},
		{deadlinev1.ErrorReason_ERROR_REASON_DEADLINE_CONFLICT, func() error {
			_, err := c.ScheduleDeadline(ctx, &deadlinev1.ScheduleDeadlineRequest{OrderId: "o1", Submission: 1, DueTime: timestamppb.New(t0)})
			return err
		}},
		{deadlinev1.ErrorReason_ERROR_REASON_INVALID_DUE_TIME, func() error {
			_, err := c.ScheduleDeadline(ctx, &deadlinev1.ScheduleDeadlineRequest{OrderId: "o2", Submission: 1})
			return err
		}},
		{deadlinev1.ErrorReason_ERROR_REASON_INVALID_STATE, func() error {
			_, err := c.ListDeadlines(ctx, &deadlinev1.ListDeadlinesRequest{State: 42})
			return err
		}},
		{deadlinev1.ErrorReason_ERROR_REASON_MISSING_ORDER_ID, func() error {
			_, err := c.GetDeadline(ctx, &deadlinev1.GetDeadlineRequest{})
			return err
		}},
		{deadlinev1.ErrorReason_ERROR_REASON_INVALID_ORDER_ID, func() error {
			_, err := c.GetDeadline(ctx, &deadlinev1.GetDeadlineRequest{OrderId: strings.Repeat("o", orderid.MaxLength+1)})
			return err
		}},
		{deadlinev1.ErrorReason_ERROR_REASON_INVALID_SUBMISSION, func() error {
			_, err := c.CancelDeadline(ctx, &deadlinev1.CancelDeadlineRequest{OrderId: "o1"})
			return err
		}},
		{deadlinev1.ErrorReason_ERROR_REASON_INVALID_REQUEST_ID, func() error {
			_, err := c.CancelDeadline(ctx, &deadlinev1.CancelDeadlineRequest{RequestId: strings.Repeat("r", idempotency.MaxRequestIDLength+1),
				OrderId: "o1", Submission: 1})
			return err
		}},
		{deadlinev1.ErrorReason_ERROR_REASON_REQUEST_ID_REUSED, func() error {
			_, err := c.ScheduleDeadline(ctx, &deadlinev1.ScheduleDeadlineRequest{RequestId: "r1", OrderId: "o3", Submission: 1, DueTime: due})
			return err
		}},
		{deadlinev1.ErrorReason_ERROR_REASON_INVALID_PAGE_TOKEN, func() error {
			_, err := c.ListDeadlines(ctx, &deadlinev1.ListDeadlinesRequest{PageToken: "nope"})
			return err
		}},
		{deadlinev1.ErrorReason_ERROR_REASON_TOO_MANY_ITEMS, func() error {
			_, err := c.CancelDeadlines(ctx, &deadlinev1.CancelDeadlinesRequest{Requests: make([]*deadlinev1.CancelDeadlineRequest, errs.MaxBatchItems+1)})
			return err
		}},
		{deadlinev1.ErrorReason_ERROR_REASON_INVALID_PAGE_SIZE, func() error {
			_, err := c.ListDeadlines(ctx, &deadlinev1.ListDeadlinesRequest{PageSize: -1})
			return err
		}},
	}
	reached := map[deadlinev1.ErrorReason]bool{}
	for _, tc := range cases {
		err := tc.call()
		got := rpc.Reason(err)
		if _, declared := deadlinev1.ErrorReason_value["ERROR_REASON_"+got]; !declared || got == "" {
			t.Errorf("%s: reason %q of %v is not a declared ErrorReason", tc.want, got, err)
		}
		if !rpc.HasReason(err, tc.want) {
			t.Errorf("%s: got %v", tc.want, err)
		}
		reached[tc.want] = true
	}
	for v, name := range deadlinev1.ErrorReason_name {
		if r := deadlinev1.ErrorReason(v); r != deadlinev1.ErrorReason_ERROR_REASON_UNSPECIFIED && !reached[r] {
			t.Errorf("declared %s is never returned here: drop it from the contract or add its case", name)
		}
	}
}
