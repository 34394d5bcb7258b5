package memstore

import (
	"time"

	"github.com/icpverify/icpverify/services/sms-dispatch/internal/domain"
)

// redelivery is a message's redelivery columns of the PostgreSQL store: done re-queues, whether it
// may get one more (ok), and whether its text is kept only for that (held).
type redelivery struct {
	done     int
	ok, held bool
}

// SetRedelivery turns redeliveries on (see store.Store.SetRedelivery).
func (s *Store) SetRedelivery(r domain.Redelivery) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.redelivery = r
}

func (s *Store) redeliveryOf(id string) *redelivery {
	r, ok := s.redeliveries[id]
	if !ok {
		r = &redelivery{}
		s.redeliveries[id] = r
	}
	return r
}

// markRedeliverable settles, as message id is marked SENT by provider, whether it may be redelivered
// (domain.Redelivery.Redeliverable) and so whether its text is held; the caller holds mu.
func (s *Store) markRedeliverable(id, provider string, keepText bool) bool {
	if _, ok := s.redeliveries[id]; !ok && !s.redelivery.On() {
		return false // nothing to remember: the message was never redelivered and will not be
	}
	rd := s.redeliveryOf(id)
	rd.ok = s.redelivery.Redeliverable(provider, rd.done, func(p string) bool {
		h, ok := s.handoffs[[2]string{id, p}]
		return ok && !h.refused
	})
	rd.held = rd.ok && !keepText
	return rd.ok
}

// redeliver queues stored, SENT and found UNDELIVERED or overdue at now, again with lastErr when it
// may be redelivered (domain.RedeliverNow), barring every provider that may have it; the caller
// holds mu. It reports whether it did.
func (s *Store) redeliver(stored *domain.Message, now time.Time, lastErr string) bool {
	rd, ok := s.redeliveries[stored.ID]
	if !ok || stored.State != domain.StateSent || !domain.RedeliverNow(rd.ok, s.superseded(*stored), stored.ExpireAt, now) {
		return false
	}
	stored.State, stored.NextAttempt, stored.LastError = domain.StateQueued, micro(now), lastErr
	rd.done++
	rd.ok = false
	for k, h := range s.handoffs {
		if k[0] == stored.ID && !h.refused {
			h.barred = true
			s.handoffs[k] = h
		}
	}
	s.handoffs[[2]string{stored.ID, stored.Provider}] = handoff{barred: true}
	return true
}

// superseded tells whether a newer message of m's thread is stored (its code was replaced).
func (s *Store) superseded(m domain.Message) bool {
	if m.OrderID == "" {
		return false
	}
	for _, o := range s.messages {
		if o.OrderID == m.OrderID && o.Phone == m.Phone && o.Template == m.Template && o.Sequence > m.Sequence {
			return true
		}
	}
	return false
}

// unhold ends stored's chance of a redelivery and wipes a text held for it; the caller holds mu.
func (s *Store) unhold(stored *domain.Message) {
	rd, ok := s.redeliveries[stored.ID]
	if !ok {
		return
	}
	if rd.held {
		stored.Body, stored.Params, stored.Redacted = "", map[string]string{}, true
	}
	rd.ok, rd.held = false, false
}
