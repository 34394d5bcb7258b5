package storetest

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/icpverify/icpverify/pkg/batch"
	"github.com/icpverify/icpverify/pkg/errs"
	deadlinev1 "github.com/icpverify/icpverify/pkg/gen/icp/deadline/v1"
	"github.com/icpverify/icpverify/pkg/idempotency"
	"github.com/icpverify/icpverify/services/deadline/internal/domain"
)

// testCancelBatch: one batch cancels a pending timer, leaves a fired one as it is, leaves the
// placeholder of a submission not scheduled yet, repeats an order under another request id, and
// carries a request id reused for another timer and an invalid one, each refused alone. The batch
// repeated answers the same and changes nothing; a cancel applied before replays.
func testCancelBatch(t *testing.T, e *env) {
	s := e.Store
	ctx := context.Background()
	mustSchedule(t, s, "o1", 1, T0)
	mustSchedule(t, s, "o2", 1, T0)
	mustSchedule(t, s, "o4", 1, T0.Add(time.Hour))
	claimed, err := s.Claim(ctx, T0, 10, time.Minute)
	if err != nil || len(claimed) != 2 {
		t.Fatalf("claim %v %v", claimed, err)
	}
	if ok, err := s.MarkFired(ctx, key("o2", 1), 1, T0, true); !ok || err != nil {
		t.Fatalf("fire %v %v", ok, err)
	}
	before, err := cancel(s, "c-o4", key("o4", 1))
	if err != nil {
		t.Fatal(err)
	}
	e.clock.Advance(time.Minute)
	reqs := []*deadlinev1.CancelDeadlineRequest{
		{RequestId: "c-o1", OrderId: "o1", Submission: 1},                                                // 0: pending, claimed: cancelled
		{RequestId: "c-o2", OrderId: "o2", Submission: 1},                                                // 1: fired: unchanged
		{RequestId: "c-o3", OrderId: "o3", Submission: 1},                                                // 2: not scheduled: a placeholder
		{RequestId: "c-o1-b", OrderId: "o1", Submission: 1},                                              // 3: the same timer again
		{RequestId: "c-o1", OrderId: "o5", Submission: 1},                                                // 4: request id of another request
		{RequestId: strings.Repeat("r", idempotency.MaxRequestIDLength+1), OrderId: "o6", Submission: 1}, // 5
		{RequestId: "c-o4", OrderId: "o4", Submission: 1},                                                // 6: applied before: its answer
	}
	check := func(round int, res []batch.Result[domain.Deadline]) {
		t.Helper()
		if len(res) != len(reqs) {
			t.Fatalf("round %d: %d results", round, len(res))
		}
		for _, i := range []int{0, 2, 3} {
			if res[i].Err != nil || res[i].Value.State != domain.Cancelled {
				t.Errorf("round %d item %d: %+v %v, want CANCELLED", round, i, res[i].Value, res[i].Err)
			}
		}
		if res[1].Err != nil || res[1].Value.State != domain.Fired || !res[1].Value.Closed {
			t.Errorf("round %d: fired timer %+v %v", round, res[1].Value, res[1].Err)
		}
		if errs.Reason(res[4].Err) != errs.RequestIDReused.Reason {
			t.Errorf("round %d: reused request id: %v", round, res[4].Err)
		}
		if errs.Reason(res[5].Err) != errs.Reason(idempotency.CheckRequestID(reqs[5].RequestId)) {
			t.Errorf("round %d: invalid request id: %v", round, res[5].Err)
		}
		if res[6].Err != nil || res[6].Value != before {
			t.Errorf("round %d: replay %+v %v, want %+v", round, res[6].Value, res[6].Err, before)
		}
	}
	first, err := s.CancelBatch(ctx, reqs)
	if err != nil {
		t.Fatal(err)
	}
	check(1, first)
	e.clock.Advance(time.Minute)
	again, err := s.CancelBatch(ctx, reqs)
	if err != nil {
		t.Fatal(err)
	}
	check(2, again)
	for i := range reqs {
		if first[i].Value != again[i].Value {
			t.Errorf("item %d repeated: %+v, want %+v", i, again[i].Value, first[i].Value)
		}
	}
	for _, k := range []domain.Key{key("o1", 1), key("o3", 1)} {
		if d := mustGet(t, s, k); d.State != domain.Cancelled {
			t.Errorf("%v = %+v, want CANCELLED", k, d)
		}
	}
	if _, err := s.GetKey(ctx, key("o5", 1)); err == nil {
		t.Errorf("the refused item left a timer for o5")
	}
	// A late schedule of the placeholder's submission gets the placeholder, not an armed timer.
	if d, err := schedule(s, "", "o3", 1, T0.Add(time.Hour)); err != nil || d.State != domain.Cancelled {
		t.Errorf("schedule after the batch's placeholder: %+v %v", d, err)
	}
}
