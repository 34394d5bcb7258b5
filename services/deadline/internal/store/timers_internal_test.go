package store

import (
	"context"
	"testing"
	"time"

	"github.com/icpverify/icpverify/pkg/clock"
	"github.com/icpverify/icpverify/pkg/errs"
	deadlinev1 "github.com/icpverify/icpverify/pkg/gen/icp/deadline/v1"
	"github.com/icpverify/icpverify/pkg/idempotency"
	"github.com/icpverify/icpverify/pkg/pg/pgtest"
	"github.com/icpverify/icpverify/services/deadline/internal/domain"
)

// A call of a batch refused by the rules (a schedule with another due time) leaves the calls after
// it alone: each gets its own answer.
func TestTimerBatchRefusalStaysWithItsCall(t *testing.T) {
	t.Parallel()
	t0 := time.Date(2026, 11, 26, 2, 0, 0, 0, time.UTC)
	s := New(pgtest.NewSchema(t, "deadline", Migrations, idempotency.Migrations), clock.NewFake(t0))
	ctx := context.Background()
	o1, o2 := domain.Key{OrderID: "o1", Submission: 1}, domain.Key{OrderID: "o2", Submission: 1}
	for _, k := range []domain.Key{o1, o2} {
		if _, err := s.Schedule(ctx, "", &deadlinev1.ScheduleDeadlineRequest{OrderId: k.OrderID, Submission: 1}, k, t0.Add(time.Hour)); err != nil {
			t.Fatal(err)
		}
	}
	res, err := s.timerAll(ctx, []timerCall{
		{method: methodSchedule, req: &deadlinev1.ScheduleDeadlineRequest{OrderId: "o1", Submission: 1}, key: o1, due: t0.Add(2 * time.Hour)},
		{method: methodCancel, req: &deadlinev1.CancelDeadlineRequest{OrderId: "o2", Submission: 1}, key: o2},
	})
	if err != nil {
		t.Fatal(err)
	}
	if errs.Reason(res[0].Err) != domain.ReasonConflict {
		t.Fatalf("schedule with another due time: %v, want a conflict", res[0].Err)
	}
	if res[1].Err != nil || res[1].Value.State != domain.Cancelled {
		t.Fatalf("cancel after it: %+v, %v; want CANCELLED", res[1].Value, res[1].Err)
	}
}
