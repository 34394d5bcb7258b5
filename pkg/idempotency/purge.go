package idempotency

import (
	"context"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"go.uber.org/zap"
)

// DefaultRetention is how long a stored answer is kept: a client retrying the same request_id later
// than that is treated as a new request (AIP-155 lets a service bound it; a week covers every retry
// policy of the suite's callers and its outbox relays, whose calls park after hours).
const DefaultRetention = 7 * 24 * time.Hour

// purgeBatch bounds one DELETE, so the purge never holds many row locks or a long transaction.
const purgeBatch = 5000

// Purge deletes the answers stored before before, purgeBatch rows per statement, and returns how many.
func Purge(ctx context.Context, pool *pgxpool.Pool, before time.Time) (int64, error) {
	var total int64
	for {
		ct, err := pool.Exec(ctx, `DELETE FROM idempotency_keys WHERE ctid IN (
			SELECT ctid FROM idempotency_keys WHERE created_at < $1 LIMIT $2)`, before, purgeBatch)
		if err != nil {
			return total, fmt.Errorf("purge idempotency keys: %w", err)
		}
		total += ct.RowsAffected()
		if ct.RowsAffected() < purgeBatch {
			return total, nil
		}
	}
}

// PurgeEvery runs Purge of the answers older than retention every interval until ctx ends (a
// background loop of the service's server; replicas purging at once only delete the same rows).
func PurgeEvery(ctx context.Context, log *zap.Logger, pool *pgxpool.Pool, retention, interval time.Duration, now func() time.Time) error {
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		n, err := Purge(ctx, pool, now().Add(-retention))
		switch {
		case ctx.Err() != nil:
			return ctx.Err()
		case err != nil:
			log.Warn("idempotency purge failed; trying again later", zap.Error(err))
		case n > 0:
			log.Info("idempotency answers purged", zap.Int64("rows", n), zap.Duration("retention", retention))
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-t.C:
		}
	}
}
