package memstore

import (
	"context"
	"slices"
	"time"

	"github.com/icpverify/icpverify/pkg/clock"
	"github.com/icpverify/icpverify/services/filing/internal/domain"
)

// mismatch is one reservation of a tenant's record-mismatch budget.
type mismatch struct {
	id, orderID, subjectID string
	at                     time.Time
}

// setHolder applies an approval's change of a record's holders.
func (s *Store) setHolder(c domain.HolderChange) {
	if !c.Holds {
		delete(s.holders[c.SubjectID], c.Tenant)
		return
	}
	if s.holders[c.SubjectID] == nil {
		s.holders[c.SubjectID] = map[string]bool{}
	}
	s.holders[c.SubjectID][c.Tenant] = true
}

// recent forgets tenant's reservations that left b's window at now and returns the times of the rest.
func (s *Store) recent(tenant string, b domain.MismatchBudget, now time.Time) []time.Time {
	since := b.Since(now)
	kept := slices.DeleteFunc(s.mismatches[tenant], func(m mismatch) bool { return !m.at.After(since) })
	s.mismatches[tenant] = kept
	at := make([]time.Time, len(kept))
	for i, m := range kept {
		at[i] = m.at
	}
	return at
}

// ReserveMismatch takes one of tenant's record-mismatch budget (see app.Engine); the store's mutex is
// the lock per tenant.
func (s *Store) ReserveMismatch(_ context.Context, tenant, orderID, subjectID string, b domain.MismatchBudget) (string, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	now := clock.Micro(s.clock)
	if err := b.Check(s.recent(tenant, b, now), now); err != nil {
		return "", err
	}
	m := mismatch{id: domain.NewID("mis_"), orderID: orderID, subjectID: subjectID, at: now}
	s.mismatches[tenant] = append(s.mismatches[tenant], m)
	return m.id, nil
}

// CheckMismatchBudget refuses when tenant's budget is spent (see app.Engine).
func (s *Store) CheckMismatchBudget(_ context.Context, tenant string, b domain.MismatchBudget) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	now := clock.Micro(s.clock)
	return b.Check(s.recent(tenant, b, now), now)
}

// ReleaseMismatch gives a reservation back (see app.Engine).
func (s *Store) ReleaseMismatch(_ context.Context, id string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	for tenant, ms := range s.mismatches {
		s.mismatches[tenant] = slices.DeleteFunc(ms, func(m mismatch) bool { return m.id == id })
	}
	return nil
}
