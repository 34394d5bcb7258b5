// Package storetest is the one behaviour suite both storage engines of sms-dispatch must pass: the
// PostgreSQL store (package store) and the in-memory one (package memstore). Every test goes through
// the interfaces the gRPC handlers and the dispatcher use, and the concurrency tests (concurrent
// creates, racing cap reservations, two dispatchers) run on both engines: the memory engine must be
// just as exact.
package storetest

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/icpverify/icpverify/pkg/clock"
	"github.com/icpverify/icpverify/pkg/errs"
	"github.com/icpverify/icpverify/services/sms-dispatch/internal/dispatcher"
	"github.com/icpverify/icpverify/services/sms-dispatch/internal/domain"
	"github.com/icpverify/icpverify/services/sms-dispatch/internal/grpcapi"
)

// Store is everything the service asks of an engine.
type Store interface {
	grpcapi.Store
	dispatcher.Store
}

// Engine is one engine under test.
type Engine struct {
	Store Store
}

// T0 is the suite's starting instant (10:00 in UTC+8).
var T0 = time.Date(2026, 11, 26, 2, 0, 0, 0, time.UTC)

// Run runs the whole suite; newEngine returns a fresh, empty engine for each test.
func Run(t *testing.T, newEngine func(t *testing.T, clk *clock.Fake) Engine) {
	tests := []struct {
		name string
		fn   func(t *testing.T, e *env)
	}{
		{"CreateIsIdempotentByMessageID", testCreateIsIdempotentByMessageID},
		{"ConcurrentCreateStoresOnce", testConcurrentCreateStoresOnce},
		{"ConcurrentThreadsKeepOnlyTheNewest", testConcurrentThreadsKeepOnlyTheNewest},
		{"GetNotFound", testGetNotFound},
		{"ListPagesNewestFirst", testListPagesNewestFirst},
		{"ConcurrentClaimsNeverShare", testConcurrentClaimsNeverShare},
		{"ReserveCapUnderRace", testReserveCapUnderRace},
		{"ReserveRefusesStaleClaim", testReserveRefusesStaleClaim},
		{"SentRedactsAndFailedReleasesSlot", testSentRedactsAndFailedReleasesSlot},
		{"SentKeepsTextInDevelopment", testSentKeepsTextInDevelopment},
		{"NewMessageSupersedesOlderQueued", testNewMessageSupersedesOlderQueued},
		{"LateOlderMessageNeverSent", testLateOlderMessageNeverSent},
		{"StoredBeforeSendAndRedactedAfter", testStoredBeforeSendAndRedactedAfter},
		{"RepeatSendMessageDoesNotSendTwice", testRepeatSendMessageDoesNotSendTwice},
		{"ProviderFailureRetriedWithBackoff", testProviderFailureRetriedWithBackoff},
		{"GivesUpAfterMaxAttempts", testGivesUpAfterMaxAttempts},
		{"ExpiredFails", testExpiredFails},
		{"CapReschedulesThenRateLimits", testCapReschedulesThenRateLimits},
		{"ResendSupersedesHeldMessage", testResendSupersedesHeldMessage},
		{"StalledWorkerDoesNotSend", testStalledWorkerDoesNotSend},
		{"TwoDispatchersSendEachOnce", testTwoDispatchersSendEachOnce},
		{"CapHoldsWithTwoDispatchers", testCapHoldsWithTwoDispatchers},
		{"CrashAfterAcceptanceResendsWithSameID", testCrashAfterAcceptanceResendsWithSameID},
		{"CapsOffSendsWithoutReservation", testCapsOffSendsWithoutReservation},
		{"StalledWorkerDoesNotSendCapsOff", testStalledWorkerDoesNotSendCapsOff},
		{"BatchClaimAndMarkSent", testBatchClaimAndMarkSent},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			clk := clock.NewFake(T0)
			tc.fn(t, &env{Engine: newEngine(t, clk), clock: clk})
		})
	}
}

// env is one test's engine and the fake clock it runs on, started at T0.
type env struct {
	Engine
	clock *clock.Fake
	seq   int32 // each message gets a higher sequence than the ones made before it
}

var ctx = context.Background()

// message returns a valid QUEUED message of order-1 created now, expiring after expire.
func (e *env) message(t *testing.T, id, phone string, expire time.Duration) domain.Message {
	t.Helper()
	now := e.clock.Now()
	e.seq++
	m, err := domain.NewMessage(domain.SendInput{MessageID: id, Phone: phone, Template: domain.TemplateVerificationCode,
		Params: map[string]string{"code": "123456"}, ExpireAt: now.Add(expire), OrderID: "order-1", Sequence: e.seq}, "ICP备案", now)
	if err != nil {
		t.Fatal(err)
	}
	return m
}

func (e *env) create(t *testing.T, id, phone string, expire time.Duration) {
	t.Helper()
	e.createMsg(t, e.message(t, id, phone, expire))
}

func (e *env) createMsg(t *testing.T, m domain.Message) {
	t.Helper()
	if _, _, err := e.Store.Create(ctx, m); err != nil {
		t.Fatal(err)
	}
}

func (e *env) get(t *testing.T, id string) domain.Message {
	t.Helper()
	m, err := e.Store.Get(ctx, id)
	if err != nil {
		t.Fatal(err)
	}
	return m
}

func (e *env) claimOne(t *testing.T, lease time.Duration) domain.Message {
	t.Helper()
	msgs, err := e.Store.Claim(ctx, e.clock.Now(), lease, 1)
	if err != nil || len(msgs) != 1 {
		t.Fatalf("claim: %v %v", msgs, err)
	}
	return msgs[0]
}

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

func testGetNotFound(t *testing.T, e *env) {
	_, err := e.Store.Get(ctx, "nope")
	var de *errs.Error
	if !errors.As(err, &de) || de.Kind != errs.KindNotFound || de.Reason != domain.ReasonMessageNotFound {
		t.Fatalf("err = %v", err)
	}
}

func testListPagesNewestFirst(t *testing.T, e *env) {
	for i := range 7 {
		m := e.message(t, fmt.Sprintf("m-%d", i), fmt.Sprintf("+86138%08d", i), 24*time.Hour)
		if i%2 == 1 {
			m.OrderID = "order-2"
		}
		e.createMsg(t, m)
		e.clock.Advance(time.Second)
	}
	var ids []string
	var after *domain.Position
	for {
		page, err := e.Store.List(ctx, "", after, 3)
		if err != nil {
			t.Fatal(err)
		}
		for _, m := range page {
			ids = append(ids, m.ID)
		}
		if len(page) < 3 {
			break
		}
		p := domain.PositionOf(page[len(page)-1])
		after = &p
	}
	if fmt.Sprint(ids) != "[m-6 m-5 m-4 m-3 m-2 m-1 m-0]" {
		t.Fatalf("ids = %v", ids)
	}
	page, err := e.Store.List(ctx, "order-2", nil, 10)
	if err != nil || len(page) != 3 || page[0].ID != "m-5" {
		t.Fatalf("order filter: %v %v", page, err)
	}
	// Same instant: message_id descending, so a position between two ids resumes at the lower one.
	same := e.message(t, "m-4a", "+8613800000099", 24*time.Hour)
	same.CreatedAt = T0.Add(4 * time.Second)
	e.createMsg(t, same)
	at := domain.Position{CreatedAt: T0.Add(4 * time.Second), ID: "m-4b"}
	if rest, err := e.Store.List(ctx, "", &at, 2); err != nil || len(rest) != 2 || rest[0].ID != "m-4a" || rest[1].ID != "m-4" {
		t.Fatalf("after %+v: %v %v", at, rest, err)
	}
}

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
