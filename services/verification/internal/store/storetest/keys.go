package storetest

import (
	"context"
	"strings"
	"time"

	pb "github.com/icpverify/icpverify/pkg/gen/icp/verification/v1"
	"github.com/icpverify/icpverify/services/verification/internal/domain"
)

// testKeyRotation: codes hashed under an old key still verify after a new key becomes active.
func testKeyRotation(e *env) {
	t := e.t
	oldSpec := "old:" + strings.Repeat("cd", 32)
	old := e.replica(e.clk, hasherFor(t, oldSpec))
	e.open(old, "o1", 1, T0.Add(time.Hour), vA())
	rotated := e.replica(e.clk, hasherFor(t, "new:"+strings.Repeat("ef", 32)+","+oldSpec))
	if r, err := rotated.Verify(context.Background(), domain.VerifyInput{Phone: phoneA, Code: e.lastCode(phoneA), Tail: tailA}); err != nil ||
		r.GetResult() != pb.VerifyResult_VERIFY_RESULT_ALL_PASSED {
		t.Fatalf("verify after rotation = %v, %v", r, err)
	}
}
