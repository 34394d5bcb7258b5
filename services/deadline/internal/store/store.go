// Package store keeps deadline timers in PostgreSQL. It is the only package that sees SQL or driver
// errors: those become domain errors here. The sweeper's claim uses FOR UPDATE SKIP LOCKED and a
// lease, so any number of sweeper replicas share one table without firing a timer twice.
package store

import (
	"context"
	"embed"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"google.golang.org/protobuf/proto"

	"github.com/icpverify/icpverify/pkg/errs"
	deadlinev1 "github.com/icpverify/icpverify/pkg/gen/icp/deadline/v1"
	"github.com/icpverify/icpverify/pkg/idempotency"
	"github.com/icpverify/icpverify/pkg/pg"
	"github.com/icpverify/icpverify/services/deadline/internal/convert"
	"github.com/icpverify/icpverify/services/deadline/internal/domain"
)

//go:embed migrations/*.sql
var fs embed.FS

// Migrations creates the deadlines table.
var Migrations = pg.Source{Name: "deadline", FS: fs}

// Full method names under which request_ids are remembered.
const (
	MethodSchedule = "/icp.deadline.v1.DeadlineService/ScheduleDeadline"
	MethodCancel   = "/icp.deadline.v1.DeadlineService/CancelDeadline"
)

// Store is the PostgreSQL store.
type Store struct {
	pool *pgxpool.Pool
}

// New returns a store on pool (whose search_path is the service's schema).
func New(pool *pgxpool.Pool) *Store { return &Store{pool: pool} }

const columns = `order_id, submission, due_at, state, next_attempt_at, attempts, last_error, fired_at, closed, created_at`

func scan(row pgx.Row) (domain.Deadline, error) {
	var d domain.Deadline
	var state string
	var firedAt *time.Time
	err := row.Scan(&d.OrderID, &d.Submission, &d.DueAt, &state, &d.NextAttemptAt, &d.Attempts, &d.LastError,
		&firedAt, &d.Closed, &d.CreatedAt)
	if err != nil {
		return d, err
	}
	d.State = domain.State(state)
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

// Schedule creates the timer of one submission, or returns the existing one (a repeat with another
// due time is DEADLINE_CONFLICT). Creating it cancels the order's older pending timers. req is the
// API request, hashed for the request_id check.
func (s *Store) Schedule(ctx context.Context, now time.Time, requestID string, req proto.Message, k domain.Key, due time.Time) (domain.Deadline, error) {
	out, err := idempotency.Do(ctx, s.pool, now, MethodSchedule, requestID, req,
		func() *deadlinev1.Deadline { return &deadlinev1.Deadline{} },
		func(tx pgx.Tx) (*deadlinev1.Deadline, error) {
			d, err := scheduleTx(ctx, tx, now, k, due)
			if err != nil {
				return nil, err
			}
			return convert.ToProto(d), nil
		})
	if err != nil {
		return domain.Deadline{}, err
	}
	return convert.FromProto(out), nil
}

func scheduleTx(ctx context.Context, tx pgx.Tx, now time.Time, k domain.Key, due time.Time) (domain.Deadline, error) {
	// One order's schedules run one at a time, so "is there a newer submission" and "cancel the older
	// ones" cannot interleave between two submissions scheduled concurrently.
	if _, err := tx.Exec(ctx, `SELECT pg_advisory_xact_lock(hashtext('deadline:' || $1))`, k.OrderID); err != nil {
		return domain.Deadline{}, err
	}
	existing, err := scan(tx.QueryRow(ctx, `SELECT `+columns+` FROM deadlines WHERE order_id = $1 AND submission = $2`,
		k.OrderID, k.Submission))
	if err == nil {
		return domain.Reschedule(existing, due)
	}
	if !pg.IsNoRows(err) {
		return domain.Deadline{}, err
	}
	var newer bool
	if err := tx.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM deadlines WHERE order_id = $1 AND submission > $2)`,
		k.OrderID, k.Submission).Scan(&newer); err != nil {
		return domain.Deadline{}, err
	}
	d := domain.New(k, due, now, newer)
	if _, err := tx.Exec(ctx, `INSERT INTO deadlines (order_id, submission, due_at, state, next_attempt_at, created_at)
		VALUES ($1, $2, $3, $4, $5, $6)`, d.OrderID, d.Submission, d.DueAt, string(d.State), d.NextAttemptAt, d.CreatedAt); err != nil {
		if pg.IsUniqueViolation(err) {
			return domain.Deadline{}, errs.AlreadyExists(domain.ReasonConflict, "this submission was scheduled concurrently")
		}
		return domain.Deadline{}, err
	}
	if d.State == domain.Pending {
		// domain.Supersedes, applied to every older timer of the order at once.
		if _, err := tx.Exec(ctx, `UPDATE deadlines SET state = 'CANCELLED'
			WHERE order_id = $1 AND submission < $2 AND state = 'PENDING'`, k.OrderID, k.Submission); err != nil {
			return domain.Deadline{}, err
		}
	}
	return d, nil
}

// Cancel cancels a pending timer; a fired or cancelled one is returned unchanged.
func (s *Store) Cancel(ctx context.Context, now time.Time, requestID string, req proto.Message, k domain.Key) (domain.Deadline, error) {
	out, err := idempotency.Do(ctx, s.pool, now, MethodCancel, requestID, req,
		func() *deadlinev1.Deadline { return &deadlinev1.Deadline{} },
		func(tx pgx.Tx) (*deadlinev1.Deadline, error) {
			d, err := scan(tx.QueryRow(ctx, `SELECT `+columns+` FROM deadlines WHERE order_id = $1 AND submission = $2 FOR UPDATE`,
				k.OrderID, k.Submission))
			if pg.IsNoRows(err) {
				return nil, notFound()
			}
			if err != nil {
				return nil, err
			}
			d, changed := domain.Cancel(d)
			if changed {
				if _, err := tx.Exec(ctx, `UPDATE deadlines SET state = $3 WHERE order_id = $1 AND submission = $2`,
					k.OrderID, k.Submission, string(d.State)); err != nil {
					return nil, err
				}
			}
			return convert.ToProto(d), nil
		})
	if err != nil {
		return domain.Deadline{}, err
	}
	return convert.FromProto(out), nil
}

// Get returns the timer of the order's latest submission.
func (s *Store) Get(ctx context.Context, orderID string) (domain.Deadline, error) {
	d, err := scan(s.pool.QueryRow(ctx, `SELECT `+columns+` FROM deadlines WHERE order_id = $1
		ORDER BY submission DESC LIMIT 1`, orderID))
	if pg.IsNoRows(err) {
		return d, notFound()
	}
	return d, err
}

// GetKey returns one submission's timer.
func (s *Store) GetKey(ctx context.Context, k domain.Key) (domain.Deadline, error) {
	d, err := scan(s.pool.QueryRow(ctx, `SELECT `+columns+` FROM deadlines WHERE order_id = $1 AND submission = $2`,
		k.OrderID, k.Submission))
	if pg.IsNoRows(err) {
		return d, notFound()
	}
	return d, err
}

// pageToken is the opaque cursor of ListDeadlines: the last row's sort key and the filter it was
// issued for, so a token cannot be replayed against another filter.
type pageToken struct {
	DueAt      time.Time `json:"d"`
	OrderID    string    `json:"o"`
	Submission int32     `json:"s"`
	State      string    `json:"f"`
}

func badToken() error {
	return errs.Invalid("page_token", domain.ReasonInvalidPageToken, "page_token is not one this service issued for this filter")
}

// List pages through timers soonest first, optionally only those in state (""= all).
func (s *Store) List(ctx context.Context, state domain.State, pageSize int, token string) ([]domain.Deadline, string, error) {
	var after *pageToken
	if token != "" {
		b, err := base64.RawURLEncoding.DecodeString(token)
		if err != nil {
			return nil, "", badToken()
		}
		var t pageToken
		if err := json.Unmarshal(b, &t); err != nil || t.State != string(state) {
			return nil, "", badToken()
		}
		after = &t
	}
	q := `SELECT ` + columns + ` FROM deadlines WHERE ($1 = '' OR state = $1)`
	args := []any{string(state), pageSize + 1}
	if after != nil {
		q += ` AND (due_at, order_id, submission) > ($3, $4, $5)`
		args = append(args, after.DueAt, after.OrderID, after.Submission)
	}
	q += ` ORDER BY due_at, order_id, submission LIMIT $2`
	rows, err := s.pool.Query(ctx, q, args...)
	if err != nil {
		return nil, "", err
	}
	list, err := collect(rows)
	if err != nil {
		return nil, "", err
	}
	if len(list) <= pageSize {
		return list, "", nil
	}
	list = list[:pageSize]
	last := list[len(list)-1]
	b, err := json.Marshal(pageToken{DueAt: last.DueAt, OrderID: last.OrderID, Submission: last.Submission, State: string(state)})
	if err != nil {
		return nil, "", err
	}
	return list, base64.RawURLEncoding.EncodeToString(b), nil
}

// Claim takes up to batch pending timers due at now, hides them from other sweepers until
// now+lease and counts the attempt. Rows another sweeper holds locked are skipped, not waited for.
// The returned Attempts identifies this claim for MarkFired and Rearm.
func (s *Store) Claim(ctx context.Context, now time.Time, batch int, lease time.Duration) ([]domain.Deadline, error) {
	rows, err := s.pool.Query(ctx, `
		WITH due AS (
			SELECT order_id, submission FROM deadlines
			WHERE state = 'PENDING' AND next_attempt_at <= $1 AND due_at <= $1
			ORDER BY next_attempt_at
			LIMIT $2
			FOR UPDATE SKIP LOCKED
		)
		UPDATE deadlines d SET next_attempt_at = $3, attempts = d.attempts + 1
		FROM due WHERE d.order_id = due.order_id AND d.submission = due.submission
		RETURNING `+prefixed, now, batch, domain.NormalizeTime(now.Add(lease)))
	if err != nil {
		return nil, fmt.Errorf("claim deadlines: %w", err)
	}
	return collect(rows)
}

const prefixed = `d.order_id, d.submission, d.due_at, d.state, d.next_attempt_at, d.attempts, d.last_error, d.fired_at, d.closed, d.created_at`

// MarkFired records a successful close, but only if the timer is still pending and still held by
// the claim that counted attempts: a worker whose lease ran out (and was re-claimed by another)
// changes nothing. It reports whether this call fired the timer.
func (s *Store) MarkFired(ctx context.Context, k domain.Key, attempts int32, now time.Time, closed bool) (bool, error) {
	tag, err := s.pool.Exec(ctx, `UPDATE deadlines SET state = 'FIRED', fired_at = $4, closed = $5, last_error = ''
		WHERE order_id = $1 AND submission = $2 AND state = 'PENDING' AND attempts = $3`,
		k.OrderID, k.Submission, attempts, domain.NormalizeTime(now), closed)
	if err != nil {
		return false, fmt.Errorf("mark deadline fired: %w", err)
	}
	return tag.RowsAffected() == 1, nil
}

// Rearm sets when a timer that did not fire is claimed again, with the same guard as MarkFired.
// next must not be before the due time (the table refuses it).
func (s *Store) Rearm(ctx context.Context, k domain.Key, attempts int32, next time.Time, lastError string) (bool, error) {
	tag, err := s.pool.Exec(ctx, `UPDATE deadlines SET next_attempt_at = $4, last_error = $5
		WHERE order_id = $1 AND submission = $2 AND state = 'PENDING' AND attempts = $3`,
		k.OrderID, k.Submission, attempts, domain.NormalizeTime(next), lastError)
	if err != nil {
		return false, fmt.Errorf("re-arm deadline: %w", err)
	}
	return tag.RowsAffected() == 1, nil
}

// NextDue returns the earliest next_attempt_at of a pending timer, so the sweeper can sleep until
// then instead of a whole interval; ok is false when nothing is pending.
func (s *Store) NextDue(ctx context.Context) (next time.Time, ok bool, err error) {
	err = s.pool.QueryRow(ctx, `SELECT next_attempt_at FROM deadlines WHERE state = 'PENDING'
		ORDER BY next_attempt_at LIMIT 1`).Scan(&next)
	if pg.IsNoRows(err) {
		return time.Time{}, false, nil
	}
	if err != nil {
		return time.Time{}, false, err
	}
	return next.UTC(), true, nil
}
