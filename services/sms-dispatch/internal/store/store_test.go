package store_test

import (
	"context"
	"testing"
	"time"

	"github.com/icpverify/icpverify/pkg/clock"
	"github.com/icpverify/icpverify/pkg/outbox"
	"github.com/icpverify/icpverify/pkg/pg/pgtest"
	"github.com/icpverify/icpverify/services/sms-dispatch/internal/domain"
	"github.com/icpverify/icpverify/services/sms-dispatch/internal/store"
	"github.com/icpverify/icpverify/services/sms-dispatch/internal/store/storetest"
)

// TestPostgres runs the engine suite on PostgreSQL, one schema per test.
func TestPostgres(t *testing.T) {
	t.Parallel()
	storetest.Run(t, func(t *testing.T, clk *clock.Fake) storetest.Engine {
		pool := pgtest.NewSchema(t, "sms", store.Migrations, outbox.Migrations)
		return storetest.Engine{Store: store.New(pool, clk, storetest.SealKeys()), Outbox: outbox.PGQueue{Pool: pool}}
	})
}

// TestReserveReadsTheClockAfterTheLock: a reservation that waited for another one of its phone is
// dated when it got the phone's lock, not when it arrived (its slot in the phone's log, and the
// instant SendFailed finds it by).
func TestReserveReadsTheClockAfterTheLock(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	pool := pgtest.NewSchema(t, "sms", store.Migrations)
	clk := clock.NewFake(storetest.T0)
	s := store.New(pool, clk, storetest.SealKeys())
	m, err := domain.NewMessage(domain.SendInput{MessageID: "m1", Phone: "13812345678", Template: domain.TemplateVerificationCode,
		Params: map[string]string{"code": "123456"}, ExpireAt: storetest.T0.Add(time.Hour), OrderID: "o1", Sequence: 1},
		"ICP备案", storetest.T0)
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := s.Create(ctx, m); err != nil {
		t.Fatal(err)
	}
	claimed, err := s.Claim(ctx, storetest.T0, time.Minute, 1)
	if err != nil || len(claimed) != 1 {
		t.Fatalf("claim: %v, %v", claimed, err)
	}
	holder, err := pool.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer holder.Rollback(ctx) //nolint:errcheck // after Commit it does nothing
	// Another reservation of the same phone holds its lock (the store's LockPhone statement).
	if _, err := holder.Exec(ctx, `SELECT pg_advisory_xact_lock(hashtext($1))`, claimed[0].Phone); err != nil {
		t.Fatal(err)
	}
	type result struct {
		d   domain.Decision
		at  time.Time
		err error
	}
	done := make(chan result, 1)
	go func() {
		d, at, err := s.Reserve(ctx, claimed[0], domain.DefaultCaps, time.Second)
		done <- result{d, at, err}
	}()
	pgtest.WaitForLockWaiter(t, pool, holder.Conn().PgConn().PID()) // the call is blocked on the lock
	later := storetest.T0.Add(30 * time.Second)
	clk.Set(later)
	if err := holder.Commit(ctx); err != nil {
		t.Fatal(err)
	}
	r := <-done
	if r.err != nil || r.d.Action != domain.ActionSend || !r.at.Equal(later) {
		t.Fatalf("reserve after the wait: %+v at %v, %v; want a send at %v", r.d, r.at, r.err, later)
	}
	var sentAt time.Time
	if err := pool.QueryRow(ctx, `SELECT sent_at FROM phone_sends WHERE message_id = 'm1'`).Scan(&sentAt); err != nil || !sentAt.Equal(later) {
		t.Fatalf("reserved slot at %v, %v; want %v", sentAt, err, later)
	}
}

// TestFailureAndItsReportAreOneTransaction: when the report cannot be written (here: no outbox table)
// the failure is not recorded either, so a crash can never leave a FAILED message whose sender was
// never told; the claim comes back after its lease and decides again.
func TestFailureAndItsReportAreOneTransaction(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	pool := pgtest.NewSchema(t, "sms", store.Migrations, outbox.Migrations)
	clk := clock.NewFake(storetest.T0)
	s := store.New(pool, clk, storetest.SealKeys())
	woken := 0
	s.Wake = func() { woken++ }
	m, err := domain.NewMessage(domain.SendInput{MessageID: "m1", Phone: "13812345678", Template: domain.TemplateVerificationCode,
		Params: map[string]string{"code": "123456"}, ExpireAt: storetest.T0.Add(time.Minute), OrderID: "o1", Sequence: 1},
		"ICP备案", storetest.T0)
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := s.Create(ctx, m); err != nil {
		t.Fatal(err)
	}
	clk.Advance(time.Minute)
	claimed, err := s.Claim(ctx, clk.Now(), time.Minute, 1)
	if err != nil || len(claimed) != 1 {
		t.Fatalf("claim: %v, %v", claimed, err)
	}
	if _, err := pool.Exec(ctx, `ALTER TABLE outbox RENAME TO outbox_gone`); err != nil {
		t.Fatal(err)
	}
	if _, _, err := s.Reserve(ctx, claimed[0], domain.DefaultCaps, time.Second); err == nil {
		t.Fatal("the expiry was recorded although its report could not be")
	}
	if got, err := s.Get(ctx, "m1"); err != nil || got.State != domain.StateQueued || woken != 0 {
		t.Fatalf("after the failed transaction: %+v, %v (woken %d), want still QUEUED", got, err, woken)
	}
	if _, err := pool.Exec(ctx, `ALTER TABLE outbox_gone RENAME TO outbox`); err != nil {
		t.Fatal(err)
	}
	if d, _, err := s.Reserve(ctx, claimed[0], domain.DefaultCaps, time.Second); err != nil || d.Action != domain.ActionFail || woken != 1 {
		t.Fatalf("reserve = %+v, %v (woken %d), want the expiry and one wake", d, err, woken)
	}
	rows, err := outbox.PGQueue{Pool: pool}.Pending(ctx, 10)
	if err != nil || len(rows) != 1 {
		t.Fatalf("outbox = %v, %v, want the one report", rows, err)
	}
}
