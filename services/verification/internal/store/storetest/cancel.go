package storetest

import (
	"context"
	"time"

	"github.com/icpverify/icpverify/pkg/errs"
	pb "github.com/icpverify/icpverify/pkg/gen/icp/verification/v1"
	"github.com/icpverify/icpverify/services/verification/internal/domain"
)

func testCancelSession(e *env) {
	t, s := e.t, e.Store
	deadline := T0.Add(24 * time.Hour)
	ctx := context.Background()
	e.open(s, "o1", 1, deadline, vA())
	before := e.pending()

	r, err := s.CancelSession(ctx, &pb.CancelSessionRequest{RequestId: "c1", OrderId: "o1", Submission: 1})
	if err != nil || r.GetStatus().GetState() != pb.SessionState_SESSION_STATE_CANCELLED {
		t.Fatalf("cancel = %v, %v", r, err)
	}
	if r, err := s.CancelSession(ctx, &pb.CancelSessionRequest{RequestId: "c2", OrderId: "o1", Submission: 1}); err != nil ||
		r.GetStatus().GetState() != pb.SessionState_SESSION_STATE_CANCELLED {
		t.Fatalf("repeat cancel = %v, %v", r, err)
	}
	if n := e.pending(); n != before {
		t.Fatalf("cancel wrote outbox rows: %d -> %d", before, n)
	}
	// A cancel that overtakes OpenSession leaves a tombstone: the late open sends nothing.
	if _, err := s.CancelSession(ctx, &pb.CancelSessionRequest{OrderId: "o2", Submission: 1}); err != nil {
		t.Fatal(err)
	}
	st := e.open(s, "o2", 1, deadline, vB())
	if st.GetState() != pb.SessionState_SESSION_STATE_CANCELLED || len(e.sent(phoneB)) != 0 {
		t.Fatalf("open after cancel = %v", st)
	}
	// A passed session stays passed.
	e.open(s, "o3", 1, deadline, vB())
	if _, err := s.Verify(ctx, domain.VerifyInput{Phone: phoneB, Code: e.lastCode(phoneB), Tail: tailB}); err != nil {
		t.Fatal(err)
	}
	if r, err := s.CancelSession(ctx, &pb.CancelSessionRequest{OrderId: "o3", Submission: 1}); err != nil ||
		r.GetStatus().GetState() != pb.SessionState_SESSION_STATE_PASSED {
		t.Fatalf("cancel passed = %v, %v", r, err)
	}
	if _, err := s.Status(ctx, "nope"); errs.Reason(err) != domain.ReasonSessionNotFound {
		t.Fatalf("status unknown = %v", err)
	}
}
