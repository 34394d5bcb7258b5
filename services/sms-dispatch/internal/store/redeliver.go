package store

import (
	"context"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/icpverify/icpverify/services/sms-dispatch/internal/domain"
)

// redeliver queues the locked message m, just found UNDELIVERED at now, again for the next provider
// when it may be redelivered (domain.RedeliverNow), barring every provider that has it, in tx: the
// receipt and the re-queue commit together. It reports whether it did.
func redeliver(ctx context.Context, tx pgx.Tx, m domain.Message, now time.Time) (bool, error) {
	var redeliverable, superseded bool
	if err := tx.QueryRow(ctx, queries.RedeliveryOf, m.ID).Scan(&redeliverable, &superseded); err != nil {
		return false, err
	}
	if !domain.RedeliverNow(redeliverable, superseded, m.ExpireAt, now) {
		return false, nil
	}
	tag, err := tx.Exec(ctx, queries.Requeue, m.ID, now, domain.ErrorRedeliverUndelivered)
	if err != nil || tag.RowsAffected() != 1 {
		return false, err
	}
	return true, barHandoffs(ctx, tx, []string{m.ID}, []string{m.Provider}, now)
}

// barHandoffs bars, for each message of ids queued again for a redelivery, its sender (of senders)
// and every provider that may have it from the message for good.
func barHandoffs(ctx context.Context, tx pgx.Tx, ids, senders []string, now time.Time) error {
	if len(ids) == 0 {
		return nil
	}
	_, err := tx.Exec(ctx, queries.BarHandoffs, ids, senders, now)
	return err
}
