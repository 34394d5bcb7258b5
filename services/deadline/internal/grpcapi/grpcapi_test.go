package grpcapi_test

import (
	"context"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/icpverify/icpverify/pkg/clock"
	deadlinev1 "github.com/icpverify/icpverify/pkg/gen/icp/deadline/v1"
	"github.com/icpverify/icpverify/pkg/idempotency"
	"github.com/icpverify/icpverify/pkg/pagetoken"
	"github.com/icpverify/icpverify/pkg/pg/pgtest"
	"github.com/icpverify/icpverify/pkg/rpc"
	"github.com/icpverify/icpverify/pkg/rpc/rpctest"
	"github.com/icpverify/icpverify/services/deadline/internal/domain"
	"github.com/icpverify/icpverify/services/deadline/internal/grpcapi"
	"github.com/icpverify/icpverify/services/deadline/internal/store"
)

var t0 = time.Date(2026, 11, 27, 10, 0, 0, 0, time.UTC)

// startServer runs the real server stack (interceptor, error mapping) on a loopback port.
func startServer(t *testing.T) deadlinev1.DeadlineServiceClient {
	t.Helper()
	pool := pgtest.NewSchema(t, "deadline", store.Migrations, idempotency.Migrations)
	conn := rpctest.Serve(t, func(srv *rpc.Server) {
		deadlinev1.RegisterDeadlineServiceServer(srv.GRPC, grpcapi.New(store.New(pool, clock.NewFake(t0))))
	})
	return deadlinev1.NewDeadlineServiceClient(conn)
}

func TestInvalidArgumentNamesField(t *testing.T) {
	t.Parallel()
	c := startServer(t)
	ctx := context.Background()
	due := timestamppb.New(t0.Add(time.Hour))
	cases := []struct {
		name  string
		call  func() error
		field string
	}{
		{"schedule no order", func() error {
			_, err := c.ScheduleDeadline(ctx, &deadlinev1.ScheduleDeadlineRequest{Submission: 1, DueTime: due})
			return err
		}, "order_id"},
		{"schedule zero submission", func() error {
			_, err := c.ScheduleDeadline(ctx, &deadlinev1.ScheduleDeadlineRequest{OrderId: "o", DueTime: due})
			return err
		}, "submission"},
		{"schedule no due", func() error {
			_, err := c.ScheduleDeadline(ctx, &deadlinev1.ScheduleDeadlineRequest{OrderId: "o", Submission: 1})
			return err
		}, "due_time"},
		{"schedule bad due", func() error {
			_, err := c.ScheduleDeadline(ctx, &deadlinev1.ScheduleDeadlineRequest{OrderId: "o", Submission: 1,
				DueTime: &timestamppb.Timestamp{Seconds: 1, Nanos: -5}})
			return err
		}, "due_time"},
		{"cancel no submission", func() error {
			_, err := c.CancelDeadline(ctx, &deadlinev1.CancelDeadlineRequest{OrderId: "o"})
			return err
		}, "submission"},
		{"get no order", func() error {
			_, err := c.GetDeadline(ctx, &deadlinev1.GetDeadlineRequest{})
			return err
		}, "order_id"},
		{"list negative page", func() error {
			_, err := c.ListDeadlines(ctx, &deadlinev1.ListDeadlinesRequest{PageSize: -1})
			return err
		}, "page_size"},
		{"list bad token", func() error {
			_, err := c.ListDeadlines(ctx, &deadlinev1.ListDeadlinesRequest{PageToken: "nope"})
			return err
		}, "page_token"},
		{"list bad state", func() error {
			_, err := c.ListDeadlines(ctx, &deadlinev1.ListDeadlinesRequest{State: 42})
			return err
		}, "state"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.call()
			if status.Code(err) != codes.InvalidArgument || rpc.Field(err) != tc.field {
				t.Fatalf("got %v (field %q), want InvalidArgument on %s", err, rpc.Field(err), tc.field)
			}
		})
	}
}

func TestNotFound(t *testing.T) {
	t.Parallel()
	c := startServer(t)
	ctx := context.Background()
	_, err := c.GetDeadline(ctx, &deadlinev1.GetDeadlineRequest{OrderId: "nope"})
	if status.Code(err) != codes.NotFound || rpc.Reason(err) != domain.ReasonNotFound {
		t.Fatalf("get: %v", err)
	}
}

// A CancelDeadline that overtakes its ScheduleDeadline answers OK (the caller's outbox must not park
// it), and the late schedule then answers the CANCELLED timer instead of arming one.
func TestCancelBeforeSchedule(t *testing.T) {
	t.Parallel()
	c := startServer(t)
	ctx := context.Background()
	cr, err := c.CancelDeadline(ctx, &deadlinev1.CancelDeadlineRequest{RequestId: "verification:cancel-deadline:o1:1", OrderId: "o1", Submission: 1})
	if err != nil || cr.GetDeadline().GetState() != deadlinev1.DeadlineState_DEADLINE_STATE_CANCELLED {
		t.Fatalf("cancel: %v %v", cr, err)
	}
	sr, err := c.ScheduleDeadline(ctx, &deadlinev1.ScheduleDeadlineRequest{RequestId: "filing:schedule-deadline:o1:1", OrderId: "o1",
		Submission: 1, DueTime: timestamppb.New(t0.Add(24 * time.Hour))})
	if err != nil || sr.GetDeadline().GetState() != deadlinev1.DeadlineState_DEADLINE_STATE_CANCELLED {
		t.Fatalf("late schedule: %v %v", sr, err)
	}
	g, err := c.GetDeadline(ctx, &deadlinev1.GetDeadlineRequest{OrderId: "o1"})
	if err != nil || g.GetDeadline().GetState() != deadlinev1.DeadlineState_DEADLINE_STATE_CANCELLED {
		t.Fatalf("get: %v %v", g, err)
	}
}

func TestScheduleCancelGetList(t *testing.T) {
	t.Parallel()
	c := startServer(t)
	ctx := context.Background()
	due := timestamppb.New(t0.Add(24 * time.Hour))
	req := &deadlinev1.ScheduleDeadlineRequest{RequestId: "filing:schedule-deadline:o1:1", OrderId: "o1", Submission: 1, DueTime: due}
	r1, err := c.ScheduleDeadline(ctx, req)
	if err != nil {
		t.Fatal(err)
	}
	d := r1.GetDeadline()
	if d.GetState() != deadlinev1.DeadlineState_DEADLINE_STATE_PENDING || !d.GetDueTime().AsTime().Equal(due.AsTime()) || d.GetFireTime() != nil {
		t.Fatalf("scheduled %v", d)
	}
	if r2, err := c.ScheduleDeadline(ctx, req); err != nil || r2.GetDeadline().GetState() != d.GetState() {
		t.Fatalf("retry: %v %v", r2, err)
	}
	_, err = c.ScheduleDeadline(ctx, &deadlinev1.ScheduleDeadlineRequest{RequestId: "other", OrderId: "o1", Submission: 1,
		DueTime: timestamppb.New(t0.Add(time.Hour))})
	if status.Code(err) != codes.AlreadyExists || rpc.Reason(err) != domain.ReasonConflict {
		t.Fatalf("conflict: %v", err)
	}
	// Submission 2 cancels submission 1; GetDeadline shows the latest.
	if _, err := c.ScheduleDeadline(ctx, &deadlinev1.ScheduleDeadlineRequest{RequestId: "s2", OrderId: "o1", Submission: 2, DueTime: due}); err != nil {
		t.Fatal(err)
	}
	g, err := c.GetDeadline(ctx, &deadlinev1.GetDeadlineRequest{OrderId: "o1"})
	if err != nil || g.GetDeadline().GetSubmission() != 2 {
		t.Fatalf("get: %v %v", g, err)
	}
	cr, err := c.CancelDeadline(ctx, &deadlinev1.CancelDeadlineRequest{RequestId: "verification:cancel-deadline:o1:2", OrderId: "o1", Submission: 2})
	if err != nil || cr.GetDeadline().GetState() != deadlinev1.DeadlineState_DEADLINE_STATE_CANCELLED {
		t.Fatalf("cancel: %v %v", cr, err)
	}
	if _, err := c.CancelDeadline(ctx, &deadlinev1.CancelDeadlineRequest{RequestId: "again", OrderId: "o1", Submission: 2}); err != nil {
		t.Fatalf("cancel again: %v", err)
	}
	l, err := c.ListDeadlines(ctx, &deadlinev1.ListDeadlinesRequest{State: deadlinev1.DeadlineState_DEADLINE_STATE_CANCELLED, PageSize: 1})
	if err != nil || len(l.GetDeadlines()) != 1 || l.GetNextPageToken() == "" {
		t.Fatalf("list page 1: %v %v", l, err)
	}
	// A token resumes only the listing it was issued for.
	_, err = c.ListDeadlines(ctx, &deadlinev1.ListDeadlinesRequest{State: deadlinev1.DeadlineState_DEADLINE_STATE_PENDING, PageToken: l.GetNextPageToken()})
	if status.Code(err) != codes.InvalidArgument || rpc.Reason(err) != pagetoken.ReasonInvalidPageToken {
		t.Fatalf("token of another filter: %v", err)
	}
	l2, err := c.ListDeadlines(ctx, &deadlinev1.ListDeadlinesRequest{State: deadlinev1.DeadlineState_DEADLINE_STATE_CANCELLED, PageSize: 1,
		PageToken: l.GetNextPageToken()})
	if err != nil || len(l2.GetDeadlines()) != 1 || l2.GetNextPageToken() != "" {
		t.Fatalf("list page 2: %v %v", l2, err)
	}
	if p, err := c.ListDeadlines(ctx, &deadlinev1.ListDeadlinesRequest{State: deadlinev1.DeadlineState_DEADLINE_STATE_PENDING}); err != nil || len(p.GetDeadlines()) != 0 {
		t.Fatalf("pending: %v %v", p, err)
	}
}
