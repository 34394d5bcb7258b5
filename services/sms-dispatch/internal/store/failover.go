package store

import (
	"context"
	"fmt"
	"time"

	"github.com/icpverify/icpverify/services/sms-dispatch/internal/domain"
)

// Hand records, under the claim m (fenced by its attempts), that m goes to provider now: it commits
// before the provider is called, so a retry after a crash knows the provider may have it. A provider
// that had m before gets it again only in a second round (again) when it refused m, or when it is
// idempotent by our id and did not refuse m (any round) or refused it (second round). current is false for a stale claim; handed is whether the hand-off was
// recorded (the caller may call provider).
func (s *Store) Hand(ctx context.Context, m domain.Message, provider string, now time.Time, again, idempotent bool) (current, handed bool, err error) {
	err = s.pool.QueryRow(ctx, queries.Hand, m.ID, m.Attempts, provider, now, again, idempotent).Scan(&current, &handed)
	if err != nil {
		return false, false, fmt.Errorf("record hand-off: %w", err)
	}
	return current, handed, nil
}

// Refused records that provider answered m with a refusal: it does not have it. stay forgets the
// hand-off instead (a per-number limit: the message waits for the same provider, as if new).
func (s *Store) Refused(ctx context.Context, m domain.Message, provider string, stay bool) error {
	q := queries.Refused
	if stay {
		q = queries.Unhand
	}
	if _, err := s.pool.Exec(ctx, q, m.ID, provider); err != nil {
		return fmt.Errorf("record refusal: %w", err)
	}
	return nil
}
