// Package store keeps deadline timers in PostgreSQL. It is the only package that sees SQL or driver
// errors: those become domain errors here. The sweeper's claim uses FOR UPDATE SKIP LOCKED and a
// lease, so any number of sweeper replicas share one table without firing a timer twice.
package store

import (
	"context"
	"embed"
	"fmt"
	"slices"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/icpverify/icpverify/pkg/batch"
	"github.com/icpverify/icpverify/pkg/clock"
	"github.com/icpverify/icpverify/pkg/errs"
	deadlinev1 "github.com/icpverify/icpverify/pkg/gen/icp/deadline/v1"
	"github.com/icpverify/icpverify/pkg/pg"
	"github.com/icpverify/icpverify/services/deadline/internal/domain"
	"github.com/icpverify/icpverify/services/deadline/internal/grpcapi"
	"github.com/icpverify/icpverify/services/deadline/internal/sweeper"
)

// The store is the engine of the handlers and of the sweeper.
var (
	_ grpcapi.Store = (*Store)(nil)
	_ sweeper.Store = (*Store)(nil)
)

//go:embed migrations/*.sql
var fs embed.FS

// Migrations creates the deadlines table.
var Migrations = pg.Source{Name: "deadline", FS: fs}

//go:embed queries.sql
var queriesSQL string

// queries holds the store's statements, one field per "-- name:" block of queries.sql.
var queries = pg.MustQueries[struct {
	Get, GetKey, GetForUpdate, Save, List, ListAfter, Claim, MarkFiredBatch, NextDue, CountPending string
	LockOrders, LockTimers, InsertTimers, UpdateTimers                                             string
}]("deadline/internal/store/queries.sql", queriesSQL)

// The methods under which request_ids are remembered.
const (
	methodSchedule = deadlinev1.DeadlineService_ScheduleDeadline_FullMethodName
	methodCancel   = deadlinev1.DeadlineService_CancelDeadline_FullMethodName
	methodNoon     = deadlinev1.DeadlineService_ScheduleNoonResend_FullMethodName
)

// Store is the PostgreSQL store.
type Store struct {
	pool  *pgxpool.Pool
	clock clock.Clock // Schedule and Cancel read it after their locks
	// timers serves concurrent Schedule and Cancel calls in batches (timerBatch), one batch at a
	// time: the calls come from outbox relays in bursts, which a second flight split into small
	// batches (as filing's outcome calls).
	timers *batch.Group[timerCall, domain.Deadline]
}

// New returns a store on pool (whose search_path is the service's schema).
func New(pool *pgxpool.Pool, clk clock.Clock) *Store {
	s := &Store{pool: pool, clock: clk}
	s.timers = &batch.Group[timerCall, domain.Deadline]{Run: s.timerBatch, MaxBatch: 128, Flights: 1}
	return s
}

// scan reads the timer columns of queries.sql's statements (GetKey's).
func scan(row pgx.Row) (domain.Deadline, error) {
	var d domain.Deadline
	var state string
	var firedAt *time.Time
	var kind int16
	err := row.Scan(&d.OrderID, &d.Submission, &d.DueAt, &state, &d.NextAttemptAt, &d.Attempts, &d.LastError,
		&firedAt, &d.Closed, &d.CreatedAt, &kind)
	if err != nil {
		return d, err
	}
	d.State, d.Kind = domain.State(state), domain.Kind(kind)
	d.DueAt, d.NextAttemptAt, d.CreatedAt = d.DueAt.UTC(), d.NextAttemptAt.UTC(), d.CreatedAt.UTC()
	if firedAt != nil {
		d.FiredAt = firedAt.UTC()
	}
	return d, nil
}

func collect(rows pgx.Rows) ([]domain.Deadline, error) {
	return pgx.CollectRows(rows, func(r pgx.CollectableRow) (domain.Deadline, error) { return scan(r) })
}

func notFound() error {
	return errs.NotFound(domain.ReasonNotFound, "no deadline for this order submission")
}

// getForUpdate reads one timer and locks its row; found is false when there is none.
func getForUpdate(ctx context.Context, tx pgx.Tx, k domain.Key) (d domain.Deadline, found bool, err error) {
	d, err = scan(tx.QueryRow(ctx, queries.GetForUpdate, k.OrderID, k.Submission, int16(k.Kind)))
	if pg.IsNoRows(err) {
		return d, false, nil
	}
	return d, err == nil, err
}

// save writes the mutable columns of a timer domain code has changed.
func save(ctx context.Context, tx pgx.Tx, d domain.Deadline) error {
	var firedAt *time.Time
	if !d.FiredAt.IsZero() {
		firedAt = &d.FiredAt
	}
	_, err := tx.Exec(ctx, queries.Save, d.OrderID, d.Submission, string(d.State), d.NextAttemptAt, d.Attempts, d.LastError, firedAt, d.Closed, int16(d.Kind))
	return err
}

// Get returns the close timer of the order's latest submission.
func (s *Store) Get(ctx context.Context, orderID string) (domain.Deadline, error) {
	d, err := scan(s.pool.QueryRow(ctx, queries.Get, orderID))
	if pg.IsNoRows(err) {
		return d, notFound()
	}
	return d, err
}

// GetKey returns one timer.
func (s *Store) GetKey(ctx context.Context, k domain.Key) (domain.Deadline, error) {
	d, err := scan(s.pool.QueryRow(ctx, queries.GetKey, k.OrderID, k.Submission, int16(k.Kind)))
	if pg.IsNoRows(err) {
		return d, notFound()
	}
	return d, err
}

// List reads up to limit close timers in domain.ListLess order (soonest first), only those in state
// (""= all), strictly after after (nil: from the soonest). Order ids compare bytewise (COLLATE "C"),
// as Go compares strings.
func (s *Store) List(ctx context.Context, state domain.State, after *domain.Position, limit int) ([]domain.Deadline, error) {
	q := queries.List
	args := []any{string(state), limit}
	if after != nil {
		q = queries.ListAfter
		args = append(args, after.DueAt, after.OrderID, after.Submission)
	}
	rows, err := s.pool.Query(ctx, q, args...)
	if err != nil {
		return nil, fmt.Errorf("list deadlines: %w", err)
	}
	list, err := collect(rows)
	if err != nil {
		return nil, fmt.Errorf("list deadlines: %w", err)
	}
	return list, nil
}

// Claim takes up to batch timers claimable at now (domain.Claimable), hides them from other sweepers
// until now+lease and counts the attempt (domain.Claim). Rows another sweeper holds locked are skipped,
// not waited for. The returned Attempts identifies this claim for MarkFired and Rearm.
//
// The WHERE clause is domain.Claimable without "due_at <= now", which the table's CHECK
// (next_attempt_at >= due_at) implies: stated in SQL, the planner would multiply the selectivities of
// the two correlated conditions, expect a handful of rows and sort every due row instead of walking the
// partial index deadlines_pending_next, which is in exactly the claim order, and stopping after batch
// rows. Lock, lease and attempt count are one statement (Claim in queries.sql).
func (s *Store) Claim(ctx context.Context, now time.Time, batch int, lease time.Duration) ([]domain.Deadline, error) {
	rows, err := s.pool.Query(ctx, queries.Claim, now, batch, domain.NormalizeTime(now.Add(lease)))
	if err != nil {
		return nil, fmt.Errorf("claim deadlines: %w", err)
	}
	claimed, err := collect(rows)
	if err != nil {
		return nil, fmt.Errorf("claim deadlines: %w", err)
	}
	slices.SortFunc(claimed, domain.ClaimCompare)
	return claimed, nil
}

// MarkFired records a successful close as domain.Fire decides: only if the timer is still pending
// and still held by the claim that counted attempts, so a worker whose lease ran out (and was
// re-claimed by another) changes nothing. It reports whether this call fired the timer.
func (s *Store) MarkFired(ctx context.Context, k domain.Key, attempts int32, now time.Time, closed bool) (bool, error) {
	var changed bool
	err := pg.InTx(ctx, s.pool, func(tx pgx.Tx) error {
		d, found, err := getForUpdate(ctx, tx, k)
		if err != nil || !found {
			return err
		}
		if d, changed = domain.Fire(d, attempts, now, closed); changed {
			return save(ctx, tx, d)
		}
		return nil
	})
	if err != nil {
		return false, fmt.Errorf("mark deadline fired: %w", err)
	}
	return changed, nil
}

// MarkFiredBatch records successful closes as domain.Fire decides, in one statement (one
// transaction) for a whole batch: each row changes only if it is still pending and still held by the
// claim that counted its attempts, so a stale claim changes nothing. fired[i] tells whether fs[i]
// fired its timer. A key given twice fires at most once.
func (s *Store) MarkFiredBatch(ctx context.Context, fs []domain.Firing) ([]bool, error) {
	fired := make([]bool, len(fs))
	if len(fs) == 0 {
		return fired, nil
	}
	orders := make([]string, len(fs))
	subs := make([]int32, len(fs))
	attempts := make([]int32, len(fs))
	ats := make([]time.Time, len(fs))
	closed := make([]bool, len(fs))
	kinds := make([]int16, len(fs))
	for i, f := range fs {
		orders[i], subs[i], attempts[i], ats[i], closed[i] = f.Key.OrderID, f.Key.Submission, f.Attempts, domain.NormalizeTime(f.At), f.Closed
		kinds[i] = int16(f.Key.Kind)
	}
	rows, err := s.pool.Query(ctx, queries.MarkFiredBatch, orders, subs, attempts, ats, closed, seq(len(fs)), kinds)
	if err != nil {
		return nil, fmt.Errorf("mark deadlines fired: %w", err)
	}
	idx, err := pgx.CollectRows(rows, pgx.RowTo[int32])
	if err != nil {
		return nil, fmt.Errorf("mark deadlines fired: %w", err)
	}
	for _, i := range idx {
		fired[i] = true
	}
	return fired, nil
}

func seq(n int) []int32 {
	out := make([]int32, n)
	for i := range out {
		out[i] = int32(i)
	}
	return out
}

// Rearm sets when a timer that did not fire is claimed again, as domain.Rearm decides (the same
// guard as MarkFired; never before the due time, which the table refuses too).
func (s *Store) Rearm(ctx context.Context, k domain.Key, attempts int32, next time.Time, lastError string) (bool, error) {
	var changed bool
	err := pg.InTx(ctx, s.pool, func(tx pgx.Tx) error {
		d, found, err := getForUpdate(ctx, tx, k)
		if err != nil || !found {
			return err
		}
		if d, changed, err = domain.Rearm(d, attempts, next, lastError); err != nil || !changed {
			return err
		}
		return save(ctx, tx, d)
	})
	if err != nil {
		return false, fmt.Errorf("re-arm deadline: %w", err)
	}
	return changed, nil
}

// NextDue returns the earliest next_attempt_at of a pending timer, so the sweeper can sleep until
// then instead of a whole interval; ok is false when nothing is pending.
func (s *Store) NextDue(ctx context.Context) (next time.Time, ok bool, err error) {
	err = s.pool.QueryRow(ctx, queries.NextDue).Scan(&next)
	if pg.IsNoRows(err) {
		return time.Time{}, false, nil
	}
	if err != nil {
		return time.Time{}, false, err
	}
	return next.UTC(), true, nil
}

// CountPending counts the pending timers and those due before overdueBefore (metrics); it reads only
// the pending rows, through the partial index the sweeper's claim uses.
func (s *Store) CountPending(ctx context.Context, overdueBefore time.Time) (pending, overdue int, err error) {
	err = s.pool.QueryRow(ctx, queries.CountPending, overdueBefore).Scan(&pending, &overdue)
	return pending, overdue, err
}
