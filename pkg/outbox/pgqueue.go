package outbox

import (
	"context"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/icpverify/icpverify/pkg/pg"
	"github.com/icpverify/icpverify/pkg/seal"
)

// PGQueue is the outbox table in the service's PostgreSQL schema. Keys opens the sealed payloads it
// hands out (the keyring the service's writes seal with; nil when it seals none).
type PGQueue struct {
	Pool *pgxpool.Pool
	Keys *seal.Keyring
}

var _ Queue = PGQueue{}

// indexScans makes the rest of a transaction use index scans for the outbox, whatever its statistics
// say: an outbox is analyzed while nearly empty, its rows living for milliseconds.
const indexScans = `SELECT set_config('enable_bitmapscan', 'off', true), set_config('enable_seqscan', 'off', true)`

// claimSQL takes due rows with FOR UPDATE SKIP LOCKED, so replicas never claim the same row, and
// pushes their available_at past the lease.
//
// The claimed ids reach the UPDATE as one array (an InitPlan), so it finds its rows by the primary
// key (id = ANY): joined to a CTE instead, the planner, trusting statistics taken while the table
// was nearly empty, walked the whole primary key once per claimed row (a nested loop, 220,000 join
// comparisons and 150 ms for a claim of 128 during the deadline burst).
const claimSQL = `
		WITH claimed AS (
			UPDATE outbox o SET available_at = $1 + $3::interval, attempts = o.attempts + 1
			WHERE o.id = ANY (ARRAY(
				SELECT id FROM outbox
				WHERE dead_at IS NULL AND available_at <= $1
				ORDER BY available_at, id
				LIMIT $2
				FOR UPDATE SKIP LOCKED))
			RETURNING o.id, o.target, o.payload, o.attempts, o.key_id
		)
		SELECT * FROM claimed ORDER BY id`

// Claim runs claimSQL as an ordered scan of outbox_live that stops at limit rows, whatever the
// statistics say. An outbox is analyzed while it is nearly empty (its rows live for milliseconds),
// so the planner otherwise expects one due row and picks a bitmap scan that reads, sorts and
// rechecks every due row, and every dead index entry, on each claim: a backlog (a receiver down)
// made each claim cost time in proportion to it (16 ms per claim in the Verify benchmark). The
// planner settings are local to the claim's transaction (withIndexScans).
func (q PGQueue) Claim(ctx context.Context, now time.Time, limit int, lease time.Duration) ([]Row, error) {
	var out []Row
	err := q.withIndexScans(ctx, func(b *pgx.Batch) {
		b.Queue(claimSQL, now, limit, lease).Query(func(rows pgx.Rows) error {
			var err error
			out, err = pgx.CollectRows(rows, q.scanRow)
			return err
		})
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

// withIndexScans runs the statements queue adds in one transaction under indexScans: BEGIN, the
// settings, the statements and COMMIT in one round trip.
func (q PGQueue) withIndexScans(ctx context.Context, queue func(*pgx.Batch)) error {
	conn, err := q.Pool.Acquire(ctx)
	if err != nil {
		return err
	}
	defer pg.Release(ctx, conn)
	b := &pgx.Batch{}
	b.Queue(`BEGIN`)
	b.Queue(indexScans)
	queue(b)
	b.Queue(`COMMIT`)
	return conn.SendBatch(ctx, b).Close()
}

// Extend moves the lease of rows still claimed by their claim (attempts) from from to until, one
// primary-key lookup per row.
func (q PGQueue) Extend(ctx context.Context, rows []Row, from, until time.Time) error {
	ids, attempts := make([]int64, len(rows)), make([]int32, len(rows))
	for i, x := range rows {
		ids[i], attempts[i] = x.ID, int32(x.Attempts)
	}
	_, err := q.Pool.Exec(ctx, `UPDATE outbox SET available_at = $4::timestamptz WHERE id IN (
			SELECT o.id FROM unnest($1::bigint[], $2::integer[]) AS r(id, attempts)
			CROSS JOIN LATERAL (SELECT id, attempts, available_at, dead_at FROM outbox WHERE id = r.id OFFSET 0) o
			WHERE o.attempts = r.attempts AND o.available_at = $3::timestamptz AND o.dead_at IS NULL)`,
		ids, attempts, from, until)
	return err
}

// Unclaim finds the rows of a claim by the lease end it gave them ($1 + $2, to the microsecond), one
// index lookup in outbox_live. Rows of another claim that ended at the same microsecond would be
// delivered twice at worst; receivers dedup by request id.
func (q PGQueue) Unclaim(ctx context.Context, now time.Time, lease time.Duration) error {
	_, err := q.Pool.Exec(ctx, `UPDATE outbox SET available_at = $1::timestamptz WHERE available_at = $1::timestamptz + $2::interval AND dead_at IS NULL`,
		now, lease)
	return err
}

// Delivered deletes the rows in one statement, by primary-key lookups whatever the statistics say
// (indexScans, as Claim): with a stale, nearly empty outbox the planner scanned the whole table,
// dead rows and all, for each batch of ids (2.1 ms per delete of 35 rows in the Verify benchmark).
func (q PGQueue) Delivered(ctx context.Context, ids ...int64) error {
	if len(ids) == 0 {
		return nil
	}
	return q.withIndexScans(ctx, func(b *pgx.Batch) { b.Queue(`DELETE FROM outbox WHERE id = ANY($1)`, ids) })
}

// Retry makes the row due at at, if no later claim took it.
func (q PGQueue) Retry(ctx context.Context, row Row, at time.Time, lastErr string) error {
	_, err := q.Pool.Exec(ctx, `UPDATE outbox SET available_at = $3, last_error = $4 WHERE id = $1 AND attempts = $2`,
		row.ID, row.Attempts, at, lastErr)
	return err
}

// Park marks the row dead and wipes a sensitive payload, if no later claim took it.
func (q PGQueue) Park(ctx context.Context, row Row, now time.Time, lastErr string) error {
	_, err := q.Pool.Exec(ctx, `UPDATE outbox SET dead_at = $3, last_error = $4,
		payload = CASE WHEN sensitive THEN ''::bytea ELSE payload END WHERE id = $1 AND attempts = $2`,
		row.ID, row.Attempts, now, lastErr)
	return err
}

// Pending lists undelivered live rows, oldest first.
func (q PGQueue) Pending(ctx context.Context, limit int) ([]Row, error) {
	rows, err := q.Pool.Query(ctx, `SELECT id, target, payload, attempts, key_id FROM outbox
		WHERE dead_at IS NULL ORDER BY id LIMIT $1`, limit)
	if err != nil {
		return nil, err
	}
	return pgx.CollectRows(rows, q.scanRow)
}

// scanRow reads id, target, payload, attempts and key_id, and opens a sealed payload.
func (q PGQueue) scanRow(cr pgx.CollectableRow) (Row, error) {
	var x Row
	if err := cr.Scan(&x.ID, &x.Target, &x.Payload, &x.Attempts, &x.KeyID); err != nil {
		return Row{}, err
	}
	x.open(q.Keys)
	return x, nil
}

// Stats counts the rows per target: one aggregate over a table that holds only undelivered rows.
func (q PGQueue) Stats(ctx context.Context) ([]TargetStats, error) {
	rows, err := q.Pool.Query(ctx, `SELECT target, count(*) FILTER (WHERE dead_at IS NULL), count(*) FILTER (WHERE dead_at IS NOT NULL),
		min(created_at) FILTER (WHERE dead_at IS NULL) FROM outbox GROUP BY target`)
	if err != nil {
		return nil, err
	}
	return pgx.CollectRows(rows, func(cr pgx.CollectableRow) (TargetStats, error) {
		var x TargetStats
		var oldest *time.Time
		err := cr.Scan(&x.Target, &x.Pending, &x.Dead, &oldest)
		if oldest != nil {
			x.Oldest = *oldest
		}
		return x, err
	})
}
