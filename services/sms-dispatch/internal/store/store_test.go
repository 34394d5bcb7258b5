package store_test

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/icpverify/icpverify/pkg/errs"
	"github.com/icpverify/icpverify/pkg/pg/pgtest"

	"github.com/icpverify/icpverify/services/sms-dispatch/internal/domain"
	"github.com/icpverify/icpverify/services/sms-dispatch/internal/store"
)

var t0 = time.Date(2026, 11, 26, 2, 0, 0, 0, time.UTC)

func newStore(t *testing.T) *store.Store {
	t.Helper()
	return store.New(pgtest.NewSchema(t, "sms", store.Migrations))
}

func newMessage(t *testing.T, id, phone string, now time.Time) domain.Message {
	t.Helper()
	m, err := domain.NewMessage(domain.SendInput{MessageID: id, Phone: phone, Template: domain.TemplateVerificationCode,
		Params: map[string]string{"code": "123456"}, ExpireAt: now.Add(24 * time.Hour), OrderID: "order-1"}, "ICP备案", now)
	if err != nil {
		t.Fatal(err)
	}
	return m
}

func TestCreateIsIdempotentByMessageID(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s := newStore(t)
	m := newMessage(t, "vc-1", "13812345678", t0)
	got, created, err := s.Create(ctx, m)
	if err != nil || !created {
		t.Fatalf("Create = %v, %v", created, err)
	}
	if got.State != domain.StateQueued || got.Body != m.Body || got.Params["code"] != "123456" || got.Phone != "+8613812345678" {
		t.Fatalf("stored %+v", got)
	}
	again, created, err := s.Create(ctx, newMessage(t, "vc-1", "+86 138 1234 5678", t0.Add(time.Minute)))
	if err != nil || created || !again.CreatedAt.Equal(t0) {
		t.Fatalf("repeat Create = %+v, %v, %v", again, created, err)
	}
	_, _, err = s.Create(ctx, newMessage(t, "vc-1", "13912345678", t0))
	if errs.Reason(err) != domain.ReasonMessageIDReused {
		t.Fatalf("reuse with another phone: err = %v", err)
	}
}

func TestConcurrentCreateStoresOnce(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s := newStore(t)
	var wg sync.WaitGroup
	var mu sync.Mutex
	createdN := 0
	for range 10 {
		wg.Go(func() {
			_, created, err := s.Create(ctx, newMessage(t, "vc-race", "13812345678", t0))
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

func TestGetNotFound(t *testing.T) {
	t.Parallel()
	_, err := newStore(t).Get(context.Background(), "nope")
	var de *errs.Error
	if !errors.As(err, &de) || de.Kind != errs.KindNotFound || de.Reason != domain.ReasonMessageNotFound {
		t.Fatalf("err = %v", err)
	}
}

func TestListPagesNewestFirst(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s := newStore(t)
	for i := range 7 {
		m := newMessage(t, fmt.Sprintf("m-%d", i), "13812345678", t0.Add(time.Duration(i)*time.Second))
		if i%2 == 1 {
			m.OrderID = "order-2"
		}
		if _, _, err := s.Create(ctx, m); err != nil {
			t.Fatal(err)
		}
	}
	var ids []string
	tok := ""
	for {
		page, next, err := s.List(ctx, "", 3, tok)
		if err != nil {
			t.Fatal(err)
		}
		for _, m := range page {
			ids = append(ids, m.ID)
		}
		if next == "" {
			break
		}
		tok = next
	}
	if fmt.Sprint(ids) != "[m-6 m-5 m-4 m-3 m-2 m-1 m-0]" {
		t.Fatalf("ids = %v", ids)
	}
	page, next, err := s.List(ctx, "order-2", 10, "")
	if err != nil || next != "" || len(page) != 3 || page[0].ID != "m-5" {
		t.Fatalf("order filter: %v %q %v", page, next, err)
	}
	if _, _, err := s.List(ctx, "", 3, "%%%"); errs.Reason(err) != domain.ReasonInvalidPageToken {
		t.Fatalf("bad token: %v", err)
	}
}

// TestClaimSkipLocked: concurrent claimers split the due messages; none is claimed twice.
func TestClaimSkipLocked(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s := newStore(t)
	const n = 40
	for i := range n {
		if _, _, err := s.Create(ctx, newMessage(t, fmt.Sprintf("c-%d", i), "13812345678", t0)); err != nil {
			t.Fatal(err)
		}
	}
	var mu sync.Mutex
	seen := map[string]int{}
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() {
			for {
				msgs, err := s.Claim(ctx, t0, time.Minute, 3)
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
					if m.Attempts != 1 || !m.NextAttempt.Equal(t0.Add(time.Minute)) {
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
	// The lease hides them until it expires.
	if msgs, _ := s.Claim(ctx, t0.Add(59*time.Second), time.Minute, 100); len(msgs) != 0 {
		t.Fatalf("claimed %d during the lease", len(msgs))
	}
	if msgs, _ := s.Claim(ctx, t0.Add(time.Minute), time.Minute, 100); len(msgs) != n {
		t.Fatalf("reclaimed %d after the lease, want %d", len(msgs), n)
	}
}

// TestReserveCapUnderRace: many claimed messages to one phone reserve at the same instant from
// concurrent goroutines; the advisory lock lets exactly one pass the 1-per-minute cap.
func TestReserveCapUnderRace(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s := newStore(t)
	const n = 12
	for i := range n {
		if _, _, err := s.Create(ctx, newMessage(t, fmt.Sprintf("r-%d", i), "13812345678", t0)); err != nil {
			t.Fatal(err)
		}
	}
	msgs, err := s.Claim(ctx, t0, time.Minute, n)
	if err != nil || len(msgs) != n {
		t.Fatalf("claim: %d %v", len(msgs), err)
	}
	var mu sync.Mutex
	actions := map[domain.Action]int{}
	var wg sync.WaitGroup
	for _, m := range msgs {
		wg.Go(func() {
			d, err := s.Reserve(ctx, m, t0, domain.DefaultCaps)
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
		got, _ := s.Get(ctx, m.ID)
		if got.Attempts == 0 && !got.NextAttempt.Equal(t0.Add(time.Minute)) {
			t.Fatalf("rescheduled %s to %v", got.ID, got.NextAttempt)
		}
	}
}

func TestSentRedactsAndFailedReleasesSlot(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s := newStore(t)
	for _, id := range []string{"a", "b"} {
		if _, _, err := s.Create(ctx, newMessage(t, id, "13812345678", t0)); err != nil {
			t.Fatal(err)
		}
	}
	msgs, _ := s.Claim(ctx, t0, time.Minute, 1)
	a := msgs[0]
	if d, err := s.Reserve(ctx, a, t0, domain.DefaultCaps); err != nil || d.Action != domain.ActionSend {
		t.Fatalf("reserve: %+v %v", d, err)
	}
	// Provider failed: the slot is given back, so b may go at once.
	if ok, err := s.SendFailed(ctx, a, t0, "fake", "HTTP 500", false, t0.Add(time.Second)); err != nil || !ok {
		t.Fatalf("SendFailed: %v %v", ok, err)
	}
	msgs, _ = s.Claim(ctx, t0, time.Minute, 1)
	b := msgs[0]
	if d, err := s.Reserve(ctx, b, t0, domain.DefaultCaps); err != nil || d.Action != domain.ActionSend {
		t.Fatalf("reserve after release: %+v %v", d, err)
	}
	if ok, err := s.MarkSent(ctx, b.ID, "fake", t0); err != nil || !ok {
		t.Fatalf("MarkSent: %v %v", ok, err)
	}
	got, _ := s.Get(ctx, b.ID)
	if got.State != domain.StateSent || !got.Redacted || got.Body != "" || len(got.Params) != 0 || got.Provider != "fake" || !got.SentAt.Equal(t0) {
		t.Fatalf("after sent: %+v", got)
	}
	if ok, _ := s.MarkSent(ctx, b.ID, "fake", t0); ok {
		t.Fatal("MarkSent twice reported success")
	}
	// A repeat SendMessage of a redacted message still matches by phone and template.
	if again, created, err := s.Create(ctx, newMessage(t, b.ID, "13812345678", t0)); err != nil || created || again.State != domain.StateSent {
		t.Fatalf("repeat after sent: %+v %v %v", again, created, err)
	}
}
