package storetest

import (
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/icpverify/icpverify/services/sms-dispatch/internal/domain"
)

// testConcurrentClaimsNeverShare: concurrent claimers split the due messages; none is claimed twice,
// and the lease hides them until it expires.
func testConcurrentClaimsNeverShare(t *testing.T, e *env) {
	const n = 40
	for i := range n {
		e.create(t, fmt.Sprintf("c-%02d", i), fmt.Sprintf("+86138%08d", i), 24*time.Hour)
	}
	var mu sync.Mutex
	seen := map[string]int{}
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() {
			for {
				msgs, err := e.Store.Claim(ctx, T0, time.Minute, 3)
				if err != nil {
					t.Error(err)
					return
				}
				if len(msgs) == 0 {
					return
				}
				mu.Lock()
				for _, m := range msgs {
					seen[m.ID]++
					if m.Attempts != 1 || !m.NextAttempt.Equal(T0.Add(time.Minute)) {
						t.Errorf("claimed %+v", m)
					}
				}
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	if len(seen) != n {
		t.Fatalf("claimed %d distinct messages, want %d", len(seen), n)
	}
	for id, c := range seen {
		if c != 1 {
			t.Fatalf("%s claimed %d times", id, c)
		}
	}
	if msgs, _ := e.Store.Claim(ctx, T0.Add(59*time.Second), time.Minute, 100); len(msgs) != 0 {
		t.Fatalf("claimed %d during the lease", len(msgs))
	}
	if msgs, _ := e.Store.Claim(ctx, T0.Add(time.Minute), time.Minute, 100); len(msgs) != n {
		t.Fatalf("reclaimed %d after the lease, want %d", len(msgs), n)
	}
}

// testReserveCapUnderRace: many claimed messages to one phone reserve at the same instant from
// concurrent goroutines; exactly one passes the 1-per-minute cap.
func testReserveCapUnderRace(t *testing.T, e *env) {
	const n = 12
	for i := range n {
		m := e.message(t, fmt.Sprintf("r-%02d", i), "13812345678", 24*time.Hour)
		m.OrderID = fmt.Sprintf("order-%d", i) // distinct orders: none supersedes another
		e.createMsg(t, m)
	}
	msgs, err := e.Store.Claim(ctx, T0, time.Minute, n)
	if err != nil || len(msgs) != n {
		t.Fatalf("claim: %d %v", len(msgs), err)
	}
	var mu sync.Mutex
	actions := map[domain.Action]int{}
	var wg sync.WaitGroup
	for _, m := range msgs {
		wg.Go(func() {
			d, _, err := e.Store.Reserve(ctx, m, domain.DefaultCaps, time.Second)
			if err != nil {
				t.Error(err)
				return
			}
			mu.Lock()
			actions[d.Action]++
			mu.Unlock()
		})
	}
	wg.Wait()
	if actions[domain.ActionSend] != 1 || actions[domain.ActionReschedule] != n-1 {
		t.Fatalf("actions = %v", actions)
	}
	// Rescheduled messages moved to +60s and kept their attempt budget.
	for _, m := range msgs {
		got := e.get(t, m.ID)
		if got.Attempts == 0 && !got.NextAttempt.Equal(T0.Add(time.Minute)) {
			t.Fatalf("rescheduled %s to %v", got.ID, got.NextAttempt)
		}
	}
}

// testReserveRefusesStaleClaim: a claim whose lease no longer covers a send, or that another worker
// replaced, reserves nothing and changes nothing.
func testReserveRefusesStaleClaim(t *testing.T, e *env) {
	e.create(t, "a", "13812345678", 24*time.Hour)
	stale := e.claimOne(t, 30*time.Second)
	e.clock.Advance(25 * time.Second) // 5s of lease left, a send may take 10s
	if d, _, err := e.Store.Reserve(ctx, stale, domain.DefaultCaps, 10*time.Second); err != nil || d.Action != domain.ActionLostClaim {
		t.Fatalf("reserve with too little lease: %+v %v", d, err)
	}
	e.clock.Advance(5 * time.Second)
	fresh := e.claimOne(t, 30*time.Second)
	if d, _, err := e.Store.Reserve(ctx, stale, domain.DefaultCaps, time.Second); err != nil || d.Action != domain.ActionLostClaim {
		t.Fatalf("reserve of a replaced claim: %+v %v", d, err)
	}
	// The refused reservations took no cap slot: the current claim may send.
	if d, _, err := e.Store.Reserve(ctx, fresh, domain.DefaultCaps, 10*time.Second); err != nil || d.Action != domain.ActionSend {
		t.Fatalf("reserve of the current claim: %+v %v", d, err)
	}
	if ok, err := e.Store.MarkSent(ctx, stale, "fake", e.clock.Now(), false); err != nil || ok {
		t.Fatalf("MarkSent of a replaced claim: %v %v", ok, err)
	}
	if ok, err := e.Store.SendFailed(ctx, stale, e.clock.Now(), "fake", "HTTP 500", true, time.Time{}); err != nil || ok {
		t.Fatalf("SendFailed of a replaced claim: %v %v", ok, err)
	}
	if got := e.get(t, "a"); got.State != domain.StateQueued || got.Attempts != 2 {
		t.Fatalf("stale updates changed %+v", got)
	}
	if ok, err := e.Store.MarkSent(ctx, fresh, "fake", e.clock.Now(), false); err != nil || !ok {
		t.Fatalf("MarkSent of the current claim: %v %v", ok, err)
	}
	// The stale SendFailed gave back no slot: the phone's minute is used.
	z := e.message(t, "z", "13812345678", 24*time.Hour)
	z.OrderID = "order-z"
	e.createMsg(t, z)
	if d, _, err := e.Store.Reserve(ctx, e.claimOne(t, time.Minute), domain.DefaultCaps, time.Second); err != nil ||
		d.Action != domain.ActionReschedule {
		t.Fatalf("reserve after the sent claim: %+v %v", d, err)
	}
}

func testSentRedactsAndFailedReleasesSlot(t *testing.T, e *env) {
	for _, id := range []string{"a", "b"} {
		m := e.message(t, id, "13812345678", 24*time.Hour)
		m.OrderID = "order-" + id
		e.createMsg(t, m)
	}
	a := e.claimOne(t, time.Minute)
	if d, _, err := e.Store.Reserve(ctx, a, domain.DefaultCaps, time.Second); err != nil || d.Action != domain.ActionSend {
		t.Fatalf("reserve: %+v %v", d, err)
	}
	// Provider failed: the slot is given back, so b may go at once.
	if ok, err := e.Store.SendFailed(ctx, a, T0, "fake", "HTTP 500", false, T0.Add(time.Second)); err != nil || !ok {
		t.Fatalf("SendFailed: %v %v", ok, err)
	}
	if got := e.get(t, "a"); got.State != domain.StateQueued || got.LastError != "HTTP 500" || got.Provider != "fake" ||
		!got.NextAttempt.Equal(T0.Add(time.Second)) || got.Body == "" {
		t.Fatalf("after failure: %+v", got)
	}
	b := e.claimOne(t, time.Minute)
	if b.ID != "b" {
		t.Fatalf("claimed %s, want b", b.ID)
	}
	if d, _, err := e.Store.Reserve(ctx, b, domain.DefaultCaps, time.Second); err != nil || d.Action != domain.ActionSend {
		t.Fatalf("reserve after release: %+v %v", d, err)
	}
	if ok, err := e.Store.MarkSent(ctx, b, "fake", T0, false); err != nil || !ok {
		t.Fatalf("MarkSent: %v %v", ok, err)
	}
	got := e.get(t, b.ID)
	if got.State != domain.StateSent || !got.Redacted || got.Body != "" || len(got.Params) != 0 || got.Provider != "fake" || !got.SentAt.Equal(T0) {
		t.Fatalf("after sent: %+v", got)
	}
	if ok, _ := e.Store.MarkSent(ctx, b, "fake", T0, false); ok {
		t.Fatal("MarkSent twice reported success")
	}
	// A repeat SendMessage of a redacted message still matches by phone and template.
	if again, created, err := e.Store.Create(ctx, e.message(t, b.ID, "13812345678", time.Hour)); err != nil || created || again.State != domain.StateSent {
		t.Fatalf("repeat after sent: %+v %v %v", again, created, err)
	}
	// A final failure ends the message and wipes the text.
	e.clock.Advance(time.Second)
	a = e.claimOne(t, time.Minute)
	if ok, err := e.Store.SendFailed(ctx, a, e.clock.Now(), "fake", "HTTP 500", true, time.Time{}); err != nil || !ok {
		t.Fatalf("final SendFailed: %v %v", ok, err)
	}
	if got := e.get(t, "a"); got.State != domain.StateFailed || !got.Redacted || got.Body != "" || len(got.Params) != 0 {
		t.Fatalf("after final failure: %+v", got)
	}
}

func testSentKeepsTextInDevelopment(t *testing.T, e *env) {
	e.create(t, "a", "13812345678", 24*time.Hour)
	a := e.claimOne(t, time.Minute)
	if ok, err := e.Store.MarkSent(ctx, a, "console", T0, true); err != nil || !ok {
		t.Fatalf("MarkSent: %v %v", ok, err)
	}
	got := e.get(t, "a")
	if got.State != domain.StateSent || got.Redacted || got.Body != a.Body || got.Params["code"] != "123456" {
		t.Fatalf("after sent in development: %+v", got)
	}
}
