package memstore

import (
	"context"
	"time"

	"github.com/icpverify/icpverify/services/sms-dispatch/internal/domain"
)

// handoff is one row of the PostgreSQL message_handoffs table.
type handoff struct{ refused, barred bool }

// Hand records, under the claim m, that m goes to provider (see store.Store.Hand).
func (s *Store) Hand(_ context.Context, m domain.Message, provider string, _ time.Time, again, idempotent bool) (current, handed bool, err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.current(m); !ok {
		return false, false, nil
	}
	if s.handoffs == nil {
		s.handoffs = map[[2]string]handoff{}
	}
	k := [2]string{m.ID, provider}
	if h, ok := s.handoffs[k]; ok && (h.barred || !(h.refused && again || idempotent && (again || !h.refused))) {
		return true, false, nil
	}
	s.handoffs[k] = handoff{}
	return true, true, nil
}

// Refused records that provider refused m; stay forgets the hand-off instead.
func (s *Store) Refused(_ context.Context, m domain.Message, provider string, stay bool) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	k := [2]string{m.ID, provider}
	if h, ok := s.handoffs[k]; ok && stay {
		delete(s.handoffs, k)
	} else if ok {
		h.refused = true
		s.handoffs[k] = h
	}
	return nil
}
