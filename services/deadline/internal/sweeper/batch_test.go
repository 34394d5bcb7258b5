package sweeper_test

import (
	"fmt"
	"testing"

	"github.com/icpverify/icpverify/services/deadline/internal/domain"
)

// A claimed batch of due deadlines reaches verification as one CloseIfIncompleteBatch call, each
// timer once, and every one fires.
func TestCloseTimersGoInOneBatchCall(t *testing.T) {
	t.Parallel()
	st, _, fake, sw := setup(t)
	for i := range 20 {
		schedule(t, st, fake, fmt.Sprintf("o%d", i), 1, t0)
	}
	if n := runOnce(t, sw); n != 20 {
		t.Fatalf("claimed %d", n)
	}
	if fake.batches != 1 {
		t.Fatalf("%d batch calls for one claimed batch, want 1", fake.batches)
	}
	for i := range 20 {
		o := fmt.Sprintf("o%d", i)
		if fake.count(o+":1") != 1 || get(t, st, o, 1).State != domain.Fired {
			t.Fatalf("%s: %d calls, %+v", o, fake.count(o+":1"), get(t, st, o, 1))
		}
	}
}

// A verification without the batch method (an older replica during a rolling upgrade) still gets
// every deadline, one call each, and is not asked for the batch method again.
func TestCloseTimersFallBackToSingleCalls(t *testing.T) {
	t.Parallel()
	st, clk, fake, sw := setup(t)
	fake.noBatch = true
	for i := range 5 {
		schedule(t, st, fake, fmt.Sprintf("o%d", i), 1, t0)
	}
	runOnce(t, sw)
	schedule(t, st, fake, "later", 1, t0)
	clk.Advance(0)
	runOnce(t, sw)
	if fake.batches != 1 {
		t.Fatalf("%d batch attempts, want 1 (then single calls)", fake.batches)
	}
	for _, o := range []string{"o0", "o1", "o2", "o3", "o4", "later"} {
		if fake.count(o+":1") != 1 || get(t, st, o, 1).State != domain.Fired {
			t.Fatalf("%s: %d calls, %+v", o, fake.count(o+":1"), get(t, st, o, 1))
		}
	}
}
