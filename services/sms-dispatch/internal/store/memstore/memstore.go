// Package memstore is the in-memory engine of sms-dispatch for the one-process development server:
// the same behaviour as the PostgreSQL store (package store), nothing survives a restart. One mutex
// guards all state, so every operation is atomic like a transaction; the rules and decisions come
// from internal/domain, so the two engines differ only in storage. Callers get copies, never
// pointers into the state.
package memstore

import (
	"context"
	"maps"
	"slices"
	"sync"
	"time"

	"github.com/icpverify/icpverify/pkg/clock"
	"github.com/icpverify/icpverify/pkg/errs"
	"github.com/icpverify/icpverify/pkg/outbox"
	"github.com/icpverify/icpverify/services/sms-dispatch/internal/convert"
	"github.com/icpverify/icpverify/services/sms-dispatch/internal/dispatcher"
	"github.com/icpverify/icpverify/services/sms-dispatch/internal/domain"
	"github.com/icpverify/icpverify/services/sms-dispatch/internal/grpcapi"
)

// The store is the engine of the handlers and of the dispatcher.
var (
	_ grpcapi.Store    = (*Store)(nil)
	_ dispatcher.Store = (*Store)(nil)
)

// send is one entry of a phone's send log (the PostgreSQL phone_sends table): one per message.
type send struct {
	phone string
	at    time.Time
}

// Store is the in-memory store.
type Store struct {
	clock    clock.Clock // Reserve reads it under mu, as the PostgreSQL store after its locks
	mu       sync.Mutex
	messages map[string]*domain.Message
	sends    map[string]send // by message id
	// providerIDs finds a message by (provider, provider id); parked holds receipts by (provider,
	// domain.ParkKey) until their message is SENT (receipts.go).
	providerIDs map[[2]string]string
	parked      map[[2]string]domain.Receipt
	// handoffs holds (message id, provider) of every hand-off (failover.go), as message_handoffs.
	handoffs map[[2]string]handoff
	// redelivery is the configuration of redeliveries (SetRedelivery); redeliveries holds each
	// message's redelivery columns (redeliver.go), by message id.
	redelivery   domain.Redelivery
	redeliveries map[string]*redelivery
	// outbox holds the delivery reports failed messages owe (the PostgreSQL store's outbox table),
	// added under mu with the failure.
	outbox *outbox.MemQueue
	// Wake, when set, is called after a change that queued an outbox row: the relay's Wake.
	Wake func()
}

// New returns an empty store on the clock clk, with its own outbox queue (Outbox).
func New(clk clock.Clock) *Store {
	return &Store{clock: clk, messages: map[string]*domain.Message{}, sends: map[string]send{}, outbox: outbox.NewMemQueue(nil),
		providerIDs: map[[2]string]string{}, parked: map[[2]string]domain.Receipt{}, redeliveries: map[string]*redelivery{}}
}

// Outbox is the queue of the calls the store owes (the relay's).
func (s *Store) Outbox() *outbox.MemQueue { return s.outbox }

// fail ends stored with lastErr and queues the delivery report it owes (convert.FailedReport); the
// caller holds mu, which makes the two one change.
func (s *Store) fail(stored *domain.Message, lastErr string) error {
	if msg, ok := convert.FailedReport(*stored, lastErr); ok {
		if err := s.outbox.AddAll(s.clock.Now(), []outbox.Message{msg}); err != nil {
			return err
		}
		if s.Wake != nil {
			s.Wake()
		}
	}
	stored.MarkFailed(lastErr)
	return nil
}

// micro rounds t as PostgreSQL stores a timestamptz, so both engines answer the same instants.
func micro(t time.Time) time.Time { return t.Truncate(time.Microsecond).UTC() }

func clone(m *domain.Message) domain.Message {
	c := *m
	c.Params = maps.Clone(m.Params)
	c.ProviderIDs = slices.Clone(m.ProviderIDs)
	if c.Params == nil {
		c.Params = map[string]string{}
	}
	return c
}

// Create stores m as QUEUED unless its message id exists (see store.Store.Create).
func (s *Store) Create(_ context.Context, m domain.Message) (domain.Message, bool, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if old, ok := s.messages[m.ID]; ok {
		if !domain.SameRequest(*old, m) {
			return domain.Message{}, false, errs.AlreadyExists(domain.ReasonMessageIDReused,
				"this message_id was already used for a different phone or template")
		}
		return clone(old), false, nil
	}
	stored := clone(&m)
	stored.State, stored.Provider, stored.LastError = domain.StateQueued, "", ""
	stored.SentAt, stored.Redacted = time.Time{}, false
	stored.NextAttempt, stored.ExpireAt, stored.CreatedAt = micro(m.NextAttempt), micro(m.ExpireAt), micro(m.CreatedAt)
	for _, old := range s.messages {
		if domain.Supersedes(stored, *old) {
			old.MarkFailed(domain.ErrorSuperseded)
		}
		if domain.ArrivedLate(stored, *old) && stored.State == domain.StateQueued {
			stored.MarkFailed(domain.ErrorSuperseded)
		}
	}
	s.messages[m.ID] = &stored
	return clone(&stored), true, nil
}

// Get returns one message, or NotFound.
func (s *Store) Get(_ context.Context, id string) (domain.Message, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	m, ok := s.messages[id]
	if !ok {
		return domain.Message{}, errs.NotFound(domain.ReasonMessageNotFound, "no message with this message_id")
	}
	return clone(m), nil
}

// List reads up to limit messages newest first, only orderID's ("" = all), strictly after after;
// see store.Store.List.
func (s *Store) List(_ context.Context, orderID string, after *domain.Position, limit int) ([]domain.Message, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	var msgs []domain.Message
	for _, m := range s.messages {
		if (orderID == "" || m.OrderID == orderID) && (after == nil || after.After(*m)) {
			msgs = append(msgs, clone(m))
		}
	}
	slices.SortFunc(msgs, func(a, b domain.Message) int { return order(domain.Before(a, b), domain.Before(b, a)) })
	return msgs[:min(len(msgs), limit)], nil
}

func order(less, greater bool) int {
	switch {
	case less:
		return -1
	case greater:
		return 1
	}
	return 0
}

// Claim takes up to limit due QUEUED messages, hides them until now+lease and counts the attempt.
func (s *Store) Claim(_ context.Context, now time.Time, lease time.Duration, limit int) ([]domain.Message, error) {
	now = micro(now)
	s.mu.Lock()
	defer s.mu.Unlock()
	var due []*domain.Message
	for _, m := range s.messages {
		if m.State == domain.StateQueued && !m.NextAttempt.After(now) {
			due = append(due, m)
		}
	}
	slices.SortFunc(due, func(a, b *domain.Message) int { return order(domain.DueBefore(*a, *b), domain.DueBefore(*b, *a)) })
	var out []domain.Message
	for _, m := range due[:min(limit, len(due))] {
		m.NextAttempt = micro(now.Add(lease))
		m.Attempts++
		out = append(out, clone(m))
	}
	return out, nil
}

// current returns the stored message of the claim m if the claim still holds it (attempts fence).
func (s *Store) current(m domain.Message) (*domain.Message, bool) {
	stored, ok := s.messages[m.ID]
	return stored, ok && stored.State == domain.StateQueued && stored.Attempts == m.Attempts
}

// Reserve decides whether the per-phone caps let the claimed message m go now and acts on it (see
// store.Store.Reserve); the one lock makes the count-and-reserve exact under concurrency, and the
// clock is read once it is held. at is the instant of the decision.
func (s *Store) Reserve(_ context.Context, m domain.Message, caps domain.Caps, sendTimeout time.Duration) (d domain.Decision,
	at time.Time, err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	now := micro(s.clock.Now())
	stored, ok := s.messages[m.ID]
	if !ok || !domain.ClaimCurrent(*stored, m.Attempts, now, sendTimeout) {
		return domain.Decision{Action: domain.ActionLostClaim}, now, nil
	}
	var sends []time.Time
	for id, sd := range s.sends {
		if sd.phone != stored.Phone {
			continue
		}
		switch {
		case !sd.at.After(now.Add(-domain.CapWindow)):
			delete(s.sends, id) // never counts again
		case id != m.ID: // the message's own earlier reservation is the same SMS
			sends = append(sends, sd.at)
		}
	}
	d = domain.Decide(now, stored.ExpireAt, caps, sends)
	switch d.Action {
	case domain.ActionSend:
		s.sends[m.ID] = send{phone: stored.Phone, at: now}
	case domain.ActionReschedule:
		stored.NextAttempt = micro(d.At)
		stored.Attempts--
	case domain.ActionFail:
		if err := s.fail(stored, d.Error); err != nil {
			return domain.Decision{}, time.Time{}, err
		}
	}
	return d, now, nil
}

// MarkSent records the provider's acceptance of the claim m and redacts unless keepText.
func (s *Store) MarkSent(_ context.Context, m domain.Message, provider string, now time.Time, keepText bool) (bool, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	stored, ok := s.current(m)
	if !ok {
		return false, nil
	}
	return true, s.markSent(stored, m, provider, now, keepText)
}

// MarkSentAll is MarkSent for several claims at once; it returns the ids of those still current.
func (s *Store) MarkSentAll(_ context.Context, ms []domain.Message, provider string, now time.Time, keepText bool) ([]string, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	var ids []string
	for _, m := range ms {
		if stored, ok := s.current(m); ok {
			if err := s.markSent(stored, m, provider, now, keepText); err != nil {
				return ids, err
			}
			ids = append(ids, m.ID)
		}
	}
	return ids, nil
}

// SendFailed gives the reserved cap slot back and schedules a retry or, when final, fails the claim.
func (s *Store) SendFailed(_ context.Context, m domain.Message, reservedAt time.Time, provider, lastErr string,
	final bool, retryAt time.Time) (bool, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	stored, ok := s.current(m)
	if !ok {
		return false, nil // a stale claim's reservation is not its own to give back
	}
	if final {
		if err := s.fail(stored, lastErr); err != nil {
			return false, err
		}
	}
	if sd, ok := s.sends[m.ID]; ok && sd.at.Equal(micro(reservedAt)) {
		delete(s.sends, m.ID)
	}
	if !final {
		stored.NextAttempt, stored.LastError, stored.Provider = micro(retryAt), lastErr, provider
	}
	return true, nil
}

// Fail ends a claimed message without calling the provider.
func (s *Store) Fail(_ context.Context, m domain.Message, lastErr string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if stored, ok := s.current(m); ok {
		return s.fail(stored, lastErr)
	}
	return nil
}
