package store

import (
	"context"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/icpverify/icpverify/pkg/pg"
	"github.com/icpverify/icpverify/services/verification/internal/domain"
)

// The per-phone failure budget's rows (domain/budget.go): read beside the phone's lock, written
// beside the mismatch that counted them.

// phoneHashes are the lookup hashes of phones (under every key) and the phone each stands for.
func (s *Store) phoneHashes(phones []string) ([][]byte, map[string]string) {
	var all [][]byte
	of := map[string]string{}
	for _, p := range phones {
		for _, h := range s.hasher.PhoneHashes(p) {
			all = append(all, h)
			of[string(h)] = p
		}
	}
	return all, of
}

// queuePhoneFailures queues on b the read of the counted failures of phones, into out (by phone).
func (s *Store) queuePhoneFailures(b *pgx.Batch, phones []string, out map[string][]domain.PhoneFailure) {
	hashes, of := s.phoneHashes(phones)
	b.Queue(queries.PhoneFailures, hashes).Query(func(rows pgx.Rows) error { return scanPhoneFailures(rows, of, out) })
}

// loadPhoneFailures reads the counted failures of phones (by phone) in tx. The read is the verify
// batch's prepared statement too, whose generic plan is shared on the connection: it is planned under
// pg.GenericPlans here as there, so no plan made without it (a scan of a table analyzed empty) is
// the one the batches reuse.
func (s *Store) loadPhoneFailures(ctx context.Context, tx pgx.Tx, phones []string) (map[string][]domain.PhoneFailure, error) {
	out := map[string][]domain.PhoneFailure{}
	if len(phones) == 0 {
		return out, nil
	}
	if _, err := tx.Exec(ctx, pg.GenericPlans); err != nil {
		return nil, fmt.Errorf("phone failures: %w", err)
	}
	hashes, of := s.phoneHashes(phones)
	rows, err := tx.Query(ctx, queries.PhoneFailures, hashes)
	if err != nil {
		return nil, fmt.Errorf("phone failures: %w", err)
	}
	return out, scanPhoneFailures(rows, of, out)
}

func scanPhoneFailures(rows pgx.Rows, of map[string]string, out map[string][]domain.PhoneFailure) error {
	defer rows.Close()
	for rows.Next() {
		var hash []byte
		var f domain.PhoneFailure
		var until *time.Time
		if err := rows.Scan(&hash, &f.At, &until); err != nil {
			return fmt.Errorf("phone failures: %w", err)
		}
		if until != nil {
			f.LocksUntil = *until
		}
		p := of[string(hash)]
		out[p] = append(out[p], f)
	}
	if err := rows.Err(); err != nil {
		return fmt.Errorf("phone failures: %w", err)
	}
	return nil
}

// failureRows collects counted failures for one InsertPhoneFailures.
type failureRows struct {
	hashes [][]byte
	at     []time.Time
	until  []*time.Time
}

func (r *failureRows) add(s *Store, phone string, f domain.PhoneFailure) {
	r.hashes = append(r.hashes, s.hasher.PhoneHash(phone))
	r.at = append(r.at, f.At)
	var until *time.Time
	if !f.LocksUntil.IsZero() {
		u := f.LocksUntil
		until = &u
	}
	r.until = append(r.until, until)
}

// pruneEvery is how many transactions that count failures share one prune: Verify's hot path pays
// one statement less most of the time, and one prune (up to pruneLimit rows) still removes more than
// the pruneEvery transactions can add (at most verifyMaxBatch failures each).
const (
	pruneEvery = 16
	pruneLimit = 4096
)

// queue queues the inserts on b (nothing without rows) and, every pruneEvery-th time, a prune of the
// records past use at now.
func (r *failureRows) queue(s *Store, b *pgx.Batch, now time.Time) {
	if len(r.hashes) == 0 {
		return
	}
	b.Queue(queries.InsertPhoneFailures, r.hashes, r.at, r.until)
	if s.failureWrites.Add(1)%pruneEvery == 1 {
		b.Queue(queries.PrunePhoneFailures, now.Add(-s.limits.PhoneFailureWindow), pruneLimit)
	}
}
