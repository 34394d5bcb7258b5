package grpcapi_test

import (
	"context"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	pb "github.com/icpverify/icpverify/pkg/gen/icp/verification/v1"
	"github.com/icpverify/icpverify/pkg/rpc"
	"github.com/icpverify/icpverify/services/verification/internal/domain"
)

// CloseIfIncompleteBatch answers each item as CloseIfIncomplete would: a malformed item, an unknown
// session and a deadline not yet reached fail alone, with their own code and reason, beside a close
// that happens; repeated, the batch closes nothing twice.
func TestCloseIfIncompleteBatch(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.open(t)
	ctx := context.Background()
	req := &pb.CloseIfIncompleteBatchRequest{Requests: []*pb.CloseIfIncompleteRequest{
		{RequestId: "deadline:close:o1:1", OrderId: "o1", Submission: 1},
		{RequestId: "deadline:close:bad:0", OrderId: "bad", Submission: 0},
		{RequestId: "deadline:close:nope:1", OrderId: "nope", Submission: 1},
	}}
	r, err := e.internal.CloseIfIncompleteBatch(ctx, req)
	if err != nil || len(r.GetResults()) != 3 {
		t.Fatalf("early batch = %v, %v", r, err)
	}
	if e := r.GetResults()[0].GetError(); codes.Code(e.GetCode()) != codes.FailedPrecondition || e.GetReason() != domain.ReasonDeadlineNotReached {
		t.Fatalf("before the deadline: %v", r.GetResults()[0])
	}
	if e := r.GetResults()[1].GetError(); codes.Code(e.GetCode()) != codes.InvalidArgument {
		t.Fatalf("submission 0: %v", r.GetResults()[1])
	}
	if e := r.GetResults()[2].GetError(); codes.Code(e.GetCode()) != codes.NotFound || e.GetReason() != domain.ReasonSessionNotFound {
		t.Fatalf("unknown session: %v", r.GetResults()[2])
	}
	e.clk.Set(start.Add(24 * time.Hour))
	for i := range 2 {
		r, err = e.internal.CloseIfIncompleteBatch(ctx, req)
		if err != nil || !r.GetResults()[0].GetResponse().GetClosed() ||
			r.GetResults()[0].GetResponse().GetStatus().GetState() != pb.SessionState_SESSION_STATE_TIMED_OUT {
			t.Fatalf("batch %d at the deadline = %v, %v", i+1, r, err)
		}
		if r.GetResults()[1].GetError() == nil || r.GetResults()[2].GetError() == nil {
			t.Fatalf("batch %d: the bad items passed: %v", i+1, r)
		}
	}
	// The ReturnOrder is owed once.
	var n int
	if err := e.pool.QueryRow(ctx, `SELECT count(*) FROM outbox WHERE target = 'filing.ReturnOrder'`).Scan(&n); err != nil || n != 1 {
		t.Fatalf("%d ReturnOrder rows queued, want 1 (%v)", n, err)
	}
	big := &pb.CloseIfIncompleteBatchRequest{Requests: make([]*pb.CloseIfIncompleteRequest, 501)}
	for i := range big.Requests {
		big.Requests[i] = req.Requests[0]
	}
	if _, err := e.internal.CloseIfIncompleteBatch(ctx, big); status.Code(err) != codes.InvalidArgument || rpc.Reason(err) != "TOO_MANY_ITEMS" {
		t.Fatalf("501 items = %v", err)
	}
}
