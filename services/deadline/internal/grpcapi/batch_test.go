package grpcapi_test

import (
	"context"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/timestamppb"

	deadlinev1 "github.com/icpverify/icpverify/pkg/gen/icp/deadline/v1"
	"github.com/icpverify/icpverify/pkg/orderid"
	"github.com/icpverify/icpverify/pkg/rpc"
)

// CancelDeadlines answers each item as CancelDeadline would, with its error's code and ErrorInfo
// reason, and cancels the good items beside the bad ones.
func TestCancelDeadlinesItemsCarryTheirErrors(t *testing.T) {
	t.Parallel()
	c := startServer(t)
	ctx := context.Background()
	if _, err := c.ScheduleDeadline(ctx, &deadlinev1.ScheduleDeadlineRequest{RequestId: "s1", OrderId: "o1", Submission: 1,
		DueTime: timestamppb.New(t0.Add(time.Hour))}); err != nil {
		t.Fatal(err)
	}
	resp, err := c.CancelDeadlines(ctx, &deadlinev1.CancelDeadlinesRequest{Requests: []*deadlinev1.CancelDeadlineRequest{
		{RequestId: "c1", OrderId: "o1", Submission: 1},
		{RequestId: "c2", OrderId: "o2"},
		{RequestId: "c3", Submission: 1},
		{RequestId: "s1", OrderId: "o3", Submission: 1}, // a request id of CancelDeadline's own scope: new
		{RequestId: "c1", OrderId: "o4", Submission: 1}, // c1 again, for another timer
	}})
	if err != nil || len(resp.GetResults()) != 5 {
		t.Fatalf("CancelDeadlines: %v, %v", resp, err)
	}
	r := resp.GetResults()
	for _, i := range []int{0, 3} {
		if r[i].GetError() != nil || r[i].GetResponse().GetDeadline().GetState() != deadlinev1.DeadlineState_DEADLINE_STATE_CANCELLED {
			t.Errorf("item %d: %v", i, r[i])
		}
	}
	for i, want := range []struct {
		code   codes.Code
		reason string
	}{{codes.InvalidArgument, orderid.ReasonInvalidSubmission}, {codes.InvalidArgument, orderid.ReasonMissing},
		{codes.AlreadyExists, "REQUEST_ID_REUSED"}} {
		item := r[[]int{1, 2, 4}[i]]
		e := item.GetError()
		err := rpc.ItemErr(e)
		if item.GetResponse() != nil || status.Code(err) != want.code || rpc.Reason(err) != want.reason || e.GetMessage() == "" {
			t.Errorf("item %d: %v (reason %q), want %s %s", i, err, rpc.Reason(err), want.code, want.reason)
		}
	}
	got, err := c.GetDeadline(ctx, &deadlinev1.GetDeadlineRequest{OrderId: "o1"})
	if err != nil || got.GetDeadline().GetState() != deadlinev1.DeadlineState_DEADLINE_STATE_CANCELLED {
		t.Errorf("o1 after the batch: %v %v", got, err)
	}
}
