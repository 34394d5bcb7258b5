package storetest

import (
	"testing"
	"time"
)

// testHandOffsAreDurableAndFenced: a hand-off is recorded once per (message, provider) under a
// current claim; a second one to the same provider is refused unless it refused the message (second
// round) or it is idempotent; a per-number refusal forgets it; a stale claim records nothing.
func testHandOffsAreDurableAndFenced(t *testing.T, e *env) {
	e.create(t, "m-1", "+8613800000001", time.Hour)
	c := e.claimOne(t, time.Minute)
	now := e.clock.Now()
	hand := func(_ int, provider string, again, idempotent bool) (bool, bool) {
		t.Helper()
		cur, handed, err := e.Store.Hand(ctx, c, provider, now, again, idempotent)
		if err != nil {
			t.Fatal(err)
		}
		return cur, handed
	}
	if cur, handed := hand(0, "aliyun", false, false); !cur || !handed {
		t.Fatalf("first hand-off: current %v handed %v", cur, handed)
	}
	for _, again := range []bool{false, true} {
		if _, handed := hand(0, "aliyun", again, false); handed {
			t.Fatalf("aliyun handed the message twice (again=%v)", again)
		}
	}
	if _, handed := hand(0, "tencent", false, false); !handed {
		t.Fatal("tencent not handed the message")
	}
	// An idempotent provider may be handed it again while it did not refuse it.
	if _, handed := hand(0, "webhook", false, true); !handed {
		t.Fatal("webhook not handed")
	}
	if _, handed := hand(0, "webhook", false, true); !handed {
		t.Fatal("idempotent webhook not handed again")
	}
	// A refusal: not again in the first round, again in the second.
	if err := e.Store.Refused(ctx, c, "tencent", false); err != nil {
		t.Fatal(err)
	}
	if _, handed := hand(0, "tencent", false, false); handed {
		t.Fatal("a refused provider handed the message in the first round")
	}
	if _, handed := hand(0, "tencent", true, false); !handed {
		t.Fatal("a refused provider not handed the message in the second round")
	}
	// A per-number limit forgets the hand-off: the message stays with the provider, as if new.
	if err := e.Store.Refused(ctx, c, "aliyun", true); err != nil {
		t.Fatal(err)
	}
	if _, handed := hand(0, "aliyun", false, false); !handed {
		t.Fatal("after a per-number limit the provider does not get the message")
	}
	// A later claim sees the hand-offs; the earlier one is stale.
	e.clock.Advance(2 * time.Minute)
	stale := c
	c = e.claimOne(t, time.Minute)
	if cur, handed, err := e.Store.Hand(ctx, stale, "cmpp", now, false, false); err != nil || cur || handed {
		t.Fatalf("stale claim: current %v handed %v %v", cur, handed, err)
	}
	if _, handed := hand(0, "aliyun", false, false); handed {
		t.Fatal("a new claim handed aliyun the message again")
	}
	if _, handed := hand(0, "cmpp", false, false); !handed {
		t.Fatal("a new claim could not hand the message to an untried provider")
	}
}
