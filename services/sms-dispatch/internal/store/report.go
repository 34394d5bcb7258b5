package store

import (
	"context"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/icpverify/icpverify/pkg/outbox"
	"github.com/icpverify/icpverify/services/sms-dispatch/internal/convert"
	"github.com/icpverify/icpverify/services/sms-dispatch/internal/domain"
)

// reportFailed writes, inside tx (the one that fails m with lastErr), the delivery report the failure
// owes verification (convert.FailedReport); it tells whether it wrote one, so the caller wakes the
// relay after the commit.
func reportFailed(ctx context.Context, tx pgx.Tx, now time.Time, m domain.Message, lastErr string) (bool, error) {
	msg, ok := convert.FailedReport(m, lastErr)
	if !ok {
		return false, nil
	}
	// A report holds no secret (message and order ids), so there is nothing to seal: no keys.
	return true, outbox.EnqueueAll(ctx, tx, nil, now, []outbox.Message{msg})
}

// wake tells the outbox relay that a commit wrote a report (Store.Wake; nil: its poll finds it).
func (s *Store) wake() {
	if s.Wake != nil {
		s.Wake()
	}
}
