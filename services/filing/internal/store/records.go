package store

import (
	"context"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/icpverify/icpverify/pkg/clock"
	"github.com/icpverify/icpverify/pkg/pg"
	"github.com/icpverify/icpverify/services/filing/internal/domain"
)

// queueHolder queues an approval's change of a record's holders (after the record it refers to).
func queueHolder(b *pgx.Batch, now time.Time, c domain.HolderChange) {
	if c.Holds {
		b.Queue(queries.AddHolder, c.SubjectID, c.Tenant, now)
		return
	}
	b.Queue(queries.RemoveHolder, c.SubjectID, c.Tenant)
}

// ReserveMismatch takes one of tenant's record-mismatch budget in its own transaction (see
// app.Engine): the advisory lock per tenant makes racing reservations count one after the other, so
// the budget is never passed, and the row commits whatever the submission that asked for it does.
func (s *Store) ReserveMismatch(ctx context.Context, tenant, orderID, subjectID string, b domain.MismatchBudget) (string, error) {
	id := domain.NewID("mis_")
	err := pg.InTx(ctx, s.pool, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, queries.LockTenantMismatches, tenant); err != nil {
			return fmt.Errorf("lock record mismatches: %w", err)
		}
		now := clock.Micro(s.clock) // after the lock: a reservation that waited counts at its own time
		if _, err := tx.Exec(ctx, queries.ForgetMismatches, tenant, b.Since(now)); err != nil {
			return fmt.Errorf("forget record mismatches: %w", err)
		}
		at, err := tenantMismatches(ctx, tx, tenant, b.Since(now))
		if err != nil {
			return err
		}
		if err := b.Check(at, now); err != nil {
			return err
		}
		if _, err := tx.Exec(ctx, queries.InsertMismatch, id, tenant, orderID, subjectID, now); err != nil {
			return fmt.Errorf("record mismatch: %w", err)
		}
		return nil
	})
	if err != nil {
		return "", err
	}
	return id, nil
}

// tenantMismatches returns the times of tenant's reservations after since.
func tenantMismatches(ctx context.Context, q querier, tenant string, since time.Time) ([]time.Time, error) {
	rows, err := q.Query(ctx, queries.TenantMismatches, tenant, since)
	if err != nil {
		return nil, fmt.Errorf("read record mismatches: %w", err)
	}
	at, err := pgx.CollectRows(rows, pgx.RowTo[time.Time])
	if err != nil {
		return nil, fmt.Errorf("read record mismatches: %w", err)
	}
	return at, nil
}

// CheckMismatchBudget refuses when tenant's budget is spent (see app.Engine).
func (s *Store) CheckMismatchBudget(ctx context.Context, tenant string, b domain.MismatchBudget) error {
	now := clock.Micro(s.clock)
	at, err := tenantMismatches(ctx, s.pool, tenant, b.Since(now))
	if err != nil {
		return err
	}
	return b.Check(at, now)
}

// ReleaseMismatch gives a reservation back (see app.Engine).
func (s *Store) ReleaseMismatch(ctx context.Context, id string) error {
	if _, err := s.pool.Exec(ctx, queries.ReleaseMismatch, id); err != nil {
		return fmt.Errorf("release record mismatch: %w", err)
	}
	return nil
}
