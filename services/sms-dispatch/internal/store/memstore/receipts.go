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
	again := s.markRedeliverable(stored.ID, provider, keepText)
	stored.MarkSent(provider, micro(now), keepText || again)
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
		_, err := s.apply(stored, *first)
		return err
	}
	return nil
}

// apply applies r to stored and queues the report of a new state, or queues an UNDELIVERED stored
// again for a redelivery (store.Store's settle); the caller holds mu.
func (s *Store) apply(stored *domain.Message, r domain.Receipt) (domain.ReceiptOutcome, error) {
	next := *stored
	out := domain.ApplyReceipt(&next, r)
	if out != domain.ReceiptApplied {
		return out, nil
	}
	if next.State == domain.StateUndelivered && s.redeliver(stored, r.At, domain.ErrorRedeliverUndelivered) {
		return domain.ReceiptRedelivered, nil
	}
	*stored = next
	return out, s.settle(stored, r.At)
}

// settle wipes a text held for a redelivery of stored, now in a state a receipt or the sweep gave
// it, and queues the report of that state; the caller holds mu.
func (s *Store) settle(stored *domain.Message, now time.Time) error {
	s.unhold(stored)
	stored.ReceiptAt = micro(stored.ReceiptAt)
	return s.report(*stored, now)
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

// RecordReceipt applies one carrier's receipt: RecordReceipts of one.
func (s *Store) RecordReceipt(ctx context.Context, r domain.Receipt) (domain.ReceiptOutcome, error) {
	outs, err := s.RecordReceipts(ctx, []domain.Receipt{r})
	if err != nil {
		return "", err
	}
	return outs[0], nil
}

// RecordReceipts applies carriers' receipts, in order, under one hold of mu (see
// store.Store.RecordReceipts).
func (s *Store) RecordReceipts(_ context.Context, rs []domain.Receipt) ([]domain.ReceiptOutcome, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	outs := make([]domain.ReceiptOutcome, len(rs))
	for i, r := range rs {
		out, err := s.record(r)
		if err != nil {
			return nil, err
		}
		outs[i] = out
	}
	return outs, nil
}

// record applies one receipt; the caller holds mu.
func (s *Store) record(r domain.Receipt) (domain.ReceiptOutcome, error) {
	r.Code, r.At = domain.ReceiptCode(r.Code), micro(r.At)
	id := ""
	if r.ProviderID != "" {
		id = s.providerIDs[[2]string{r.Provider, r.ProviderID}]
	}
	if id == "" {
		id = r.MessageID
	}
	stored, ok := s.messages[id]
	if ok && (stored.State == domain.StateQueued || stored.Provider != r.Provider) && s.handoffs[[2]string{id, r.Provider}].barred {
		out := domain.ApplyEarlierReceipt(stored, r)
		if out == domain.ReceiptApplied {
			return out, s.settle(stored, r.At)
		}
		return out, nil
	}
	if !ok || (stored.State != domain.StateQueued && stored.Provider != r.Provider) {
		s.park(r)
		return domain.ReceiptUnknown, nil
	}
	if domain.ApplyReceipt(&domain.Message{State: stored.State}, r) == domain.ReceiptParked {
		s.park(r)
		return domain.ReceiptParked, nil
	}
	return s.apply(stored, r)
}

func (s *Store) park(r domain.Receipt) {
	key := [2]string{r.Provider, domain.ParkKey(r)}
	if _, ok := s.parked[key]; !ok {
		s.parked[key] = r
	}
}

// MarkAtRisk is the AT_RISK sweep (see store.Store.MarkAtRisk).
func (s *Store) MarkAtRisk(_ context.Context, now, sentBefore time.Time, limit int) (domain.Swept, error) {
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
	var n domain.Swept
	for _, m := range due {
		if s.redeliver(m, now, domain.ErrorRedeliverNoReceipt) {
			n.Redelivered++
			continue
		}
		n.AtRisk++
		m.State = domain.StateAtRisk
		if err := s.settle(m, now); err != nil {
			return domain.Swept{}, err
		}
	}
	for k, r := range s.parked {
		if r.At.Before(now.Add(-domain.ParkedReceiptTTL)) {
			delete(s.parked, k)
		}
	}
	return n, nil
}
