package memstore

import (
	"context"
	"slices"
	"time"

	"github.com/icpverify/icpverify/pkg/outbox"
	"github.com/icpverify/icpverify/services/sms-dispatch/internal/convert"
	"github.com/icpverify/icpverify/services/sms-dispatch/internal/domain"
)

// markSent marks stored (the current claim m) SENT with m's provider ids, files them, and applies the
// earliest receipt parked for it; the caller holds mu.
func (s *Store) markSent(stored *domain.Message, m domain.Message, provider string, now time.Time, keepText bool) error {
	stored.ProviderIDs = slices.Clone(m.ProviderIDs)
	stored.MarkSent(provider, micro(now), keepText)
	for _, id := range stored.ProviderIDs {
		if _, ok := s.providerIDs[[2]string{provider, id}]; !ok {
			s.providerIDs[[2]string{provider, id}] = stored.ID
		}
	}
	var first *domain.Receipt
	for _, k := range domain.ParkKeys(*stored) {
		key := [2]string{provider, k}
		if r, ok := s.parked[key]; ok {
			if first == nil || r.At.Before(first.At) {
				first = &r
			}
			delete(s.parked, key)
		}
	}
	if first != nil {
		return s.apply(stored, *first)
	}
	return nil
}

// apply applies r to stored and queues the report of a new state; the caller holds mu.
func (s *Store) apply(stored *domain.Message, r domain.Receipt) error {
	if domain.ApplyReceipt(stored, r) != domain.ReceiptApplied {
		return nil
	}
	stored.ReceiptAt = micro(stored.ReceiptAt)
	return s.report(*stored, r.At)
}

func (s *Store) report(m domain.Message, now time.Time) error {
	msg, ok := convert.DeliveryReport(m)
	if !ok {
		return nil
	}
	if err := s.outbox.AddAll(now, []outbox.Message{msg}); err != nil {
		return err
	}
	if s.Wake != nil {
		s.Wake()
	}
	return nil
}

// RecordReceipt applies a carrier's receipt (see store.Store.RecordReceipt).
func (s *Store) RecordReceipt(_ context.Context, r domain.Receipt) (domain.ReceiptOutcome, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	r.Code, r.At = domain.ReceiptCode(r.Code), micro(r.At)
	id := ""
	if r.ProviderID != "" {
		id = s.providerIDs[[2]string{r.Provider, r.ProviderID}]
	}
	if id == "" {
		id = r.MessageID
	}
	stored, ok := s.messages[id]
	if !ok || (stored.State != domain.StateQueued && stored.Provider != r.Provider) {
		s.park(r)
		return domain.ReceiptUnknown, nil
	}
	out := domain.ApplyReceipt(&domain.Message{State: stored.State}, r)
	switch out {
	case domain.ReceiptParked:
		s.park(r)
	case domain.ReceiptApplied:
		if err := s.apply(stored, r); err != nil {
			return "", err
		}
	}
	return out, nil
}

func (s *Store) park(r domain.Receipt) {
	key := [2]string{r.Provider, domain.ParkKey(r)}
	if _, ok := s.parked[key]; !ok {
		s.parked[key] = r
	}
}

// MarkAtRisk is the AT_RISK sweep (see store.Store.MarkAtRisk).
func (s *Store) MarkAtRisk(_ context.Context, now, sentBefore time.Time, limit int) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	var due []*domain.Message
	for _, m := range s.messages {
		if m.State == domain.StateSent && !m.SentAt.After(sentBefore) {
			due = append(due, m)
		}
	}
	slices.SortFunc(due, func(a, b *domain.Message) int {
		if c := a.SentAt.Compare(b.SentAt); c != 0 {
			return c
		}
		return order(a.ID < b.ID, a.ID > b.ID)
	})
	due = due[:min(len(due), limit)]
	for _, m := range due {
		m.State = domain.StateAtRisk
		if err := s.report(*m, now); err != nil {
			return 0, err
		}
	}
	for k, r := range s.parked {
		if r.At.Before(now.Add(-domain.ParkedReceiptTTL)) {
			delete(s.parked, k)
		}
	}
	return len(due), nil
}
