package storetest

import (
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/icpverify/icpverify/pkg/errs"
	"github.com/icpverify/icpverify/services/sms-dispatch/internal/domain"
)

func testCreateIsIdempotentByMessageID(t *testing.T, e *env) {
	m := e.message(t, "vc-1", "13812345678", 24*time.Hour)
	got, created, err := e.Store.Create(ctx, m)
	if err != nil || !created {
		t.Fatalf("Create = %v, %v", created, err)
	}
	if got.State != domain.StateQueued || got.Body != m.Body || got.Params["code"] != "123456" || got.Phone != "+8613812345678" ||
		got.Redacted || got.Attempts != 0 || !got.CreatedAt.Equal(T0) {
		t.Fatalf("stored %+v", got)
	}
	e.clock.Advance(time.Minute)
	again, created, err := e.Store.Create(ctx, e.message(t, "vc-1", "+86 138 1234 5678", time.Hour))
	if err != nil || created || !again.CreatedAt.Equal(T0) {
		t.Fatalf("repeat Create = %+v, %v, %v", again, created, err)
	}
	_, _, err = e.Store.Create(ctx, e.message(t, "vc-1", "13912345678", time.Hour))
	if errs.Reason(err) != domain.ReasonMessageIDReused {
		t.Fatalf("reuse with another phone: err = %v", err)
	}
}

func testConcurrentCreateStoresOnce(t *testing.T, e *env) {
	var wg sync.WaitGroup
	var mu sync.Mutex
	createdN := 0
	m := e.message(t, "vc-race", "13812345678", 24*time.Hour)
	for range 10 {
		wg.Go(func() {
			_, created, err := e.Store.Create(ctx, m)
			if err != nil {
				t.Error(err)
			}
			if created {
				mu.Lock()
				createdN++
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	if createdN != 1 {
		t.Fatalf("created %d times", createdN)
	}
}

// Many threads (order, phone, template) get their messages at once, out of sequence order, with
// repeats and a reused id among them (the PostgreSQL engine commits them in batches): whatever the
// interleaving, each thread ends with exactly its highest sequence QUEUED and the rest FAILED as
// superseded, each message id is created once, and the reused id is refused.
func testConcurrentThreadsKeepOnlyTheNewest(t *testing.T, e *env) {
	const threads, perThread = 20, 6
	now := e.clock.Now()
	msg := func(th, seq int, phone string) domain.Message {
		m, err := domain.NewMessage(domain.SendInput{MessageID: fmt.Sprintf("th%d-seq%d", th, seq), Phone: phone,
			Template: domain.TemplateVerificationCode, Params: map[string]string{"code": "123456"}, ExpireAt: now.Add(time.Hour),
			OrderID: fmt.Sprintf("order-%d", th), Sequence: int32(seq)}, "ICP备案", now)
		if err != nil {
			t.Fatal(err)
		}
		return m
	}
	var (
		wg      sync.WaitGroup
		mu      sync.Mutex
		created = map[string]int{}
		reused  int
	)
	for th := range threads {
		phone := fmt.Sprintf("+861380000%04d", th)
		for k := range perThread {
			seq := perThread - k // newest first: every older one arrives late
			if th%2 == 0 {
				seq = k + 1 // oldest first: every newer one supersedes
			}
			for rep := range 2 { // each message twice (a retry)
				wg.Go(func() {
					m := msg(th, seq, phone)
					if rep == 1 && seq == 1 && th == 0 {
						m.Phone = "+8613900000000" // the id reused for another phone
					}
					_, c, err := e.Store.Create(ctx, m)
					mu.Lock()
					defer mu.Unlock()
					switch {
					case errs.Reason(err) == domain.ReasonMessageIDReused:
						reused++
					case err != nil:
						t.Error(err)
					case c:
						created[m.ID]++
					}
				})
			}
		}
	}
	wg.Wait()
	if reused > 1 {
		t.Errorf("%d calls refused as reused ids, want at most 1", reused)
	}
	for th := range threads {
		for seq := 1; seq <= perThread; seq++ {
			id := fmt.Sprintf("th%d-seq%d", th, seq)
			if created[id] != 1 {
				t.Errorf("%s created %d times", id, created[id])
			}
			got := e.get(t, id)
			wantQueued := seq == perThread
			if got.Phone == "+8613900000000" {
				wantQueued = true // the reused id's call won the race: alone in its own thread
			}
			if (got.State == domain.StateQueued) != wantQueued {
				t.Errorf("%s: state %s, want QUEUED only for the highest sequence", id, got.State)
			}
			if !wantQueued && (got.LastError != domain.ErrorSuperseded || got.Body != "") {
				t.Errorf("%s: %s %q, body kept %v; want FAILED as superseded with its text wiped", id, got.State, got.LastError, got.Body != "")
			}
		}
	}
}

// testLateOlderMessageNeverSent: a resend's message can overtake the first code's in delivery; the
// older one then arrives superseded and is never sent, and the newer stays queued.
func testLateOlderMessageNeverSent(t *testing.T, e *env) {
	g1 := e.message(t, "g1", "13812345678", 24*time.Hour)
	e.create(t, "g2", "13812345678", 24*time.Hour)
	stored, created, err := e.Store.Create(ctx, g1)
	if err != nil || !created || stored.State != domain.StateFailed || stored.LastError != domain.ErrorSuperseded || stored.Body != "" {
		t.Fatalf("late g1 = %+v, created %v, %v; want stored FAILED superseded and wiped", stored, created, err)
	}
	if got := e.get(t, "g2"); got.State != domain.StateQueued {
		t.Fatalf("g2 = %+v, want still queued", got)
	}
	claimed, err := e.Store.Claim(ctx, e.clock.Now(), time.Minute, 10)
	if err != nil || len(claimed) != 1 || claimed[0].ID != "g2" {
		t.Fatalf("claim = %v, %v; want only g2", claimed, err)
	}
}

// testNewMessageSupersedesOlderQueued: storing a resend fails the older QUEUED message of the same
// order, phone and template as "superseded" and wipes it; other messages are left alone.
func testNewMessageSupersedesOlderQueued(t *testing.T, e *env) {
	e.create(t, "g1", "13812345678", 24*time.Hour)
	other := e.message(t, "other-order", "13812345678", 24*time.Hour)
	other.OrderID = "order-2"
	e.createMsg(t, other)
	e.create(t, "other-phone", "13912345678", 24*time.Hour)
	e.clock.Advance(time.Minute)
	e.create(t, "g2", "13812345678", 24*time.Hour)
	if got := e.get(t, "g1"); got.State != domain.StateFailed || got.LastError != domain.ErrorSuperseded || !got.Redacted ||
		got.Body != "" || len(got.Params) != 0 {
		t.Fatalf("g1 = %+v", got)
	}
	for _, id := range []string{"g2", "other-order", "other-phone"} {
		if got := e.get(t, id); got.State != domain.StateQueued || got.Body == "" {
			t.Fatalf("%s = %+v", id, got)
		}
	}
	// A redelivered g1 is recognised and supersedes nothing.
	if again, created, err := e.Store.Create(ctx, e.message(t, "g1", "13812345678", time.Hour)); err != nil || created ||
		again.State != domain.StateFailed {
		t.Fatalf("repeat g1: %+v %v %v", again, created, err)
	}
	if got := e.get(t, "g2"); got.State != domain.StateQueued {
		t.Fatalf("g2 after the repeat = %+v", got)
	}
	// A message already sent is history, not superseded.
	claimed, err := e.Store.Claim(ctx, e.clock.Now(), time.Minute, 10)
	if err != nil || len(claimed) != 3 || claimed[2].ID != "g2" {
		t.Fatalf("claim: %v %v", claimed, err)
	}
	g2 := claimed[2]
	if ok, err := e.Store.MarkSent(ctx, g2, "fake", e.clock.Now(), false); err != nil || !ok {
		t.Fatalf("MarkSent: %v %v", ok, err)
	}
	e.create(t, "g3", "13812345678", 24*time.Hour)
	if got := e.get(t, "g2"); got.State != domain.StateSent {
		t.Fatalf("g2 after g3 = %+v", got)
	}
}
