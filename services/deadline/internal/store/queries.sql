-- The SQL of deadline's PostgreSQL store (package store): one "-- name:" block per statement, loaded
-- into the fields of queries (store.go) by pg.MustQueries. Statements that return timers list the
-- columns in scan's order.

-- name: Get
-- The close timer of the order $1's latest submission; the columns are scan's.
SELECT order_id, submission, due_at, state, next_attempt_at, attempts, last_error, fired_at, closed, created_at, kind FROM deadlines WHERE order_id = $1 AND kind = 0
		ORDER BY submission DESC LIMIT 1

-- name: GetKey
-- One timer: (order, submission, kind).
SELECT order_id, submission, due_at, state, next_attempt_at, attempts, last_error, fired_at, closed, created_at, kind FROM deadlines WHERE order_id = $1 AND submission = $2 AND kind = $3

-- name: GetForUpdate
-- GetKey, locking the row to the end of the transaction.
SELECT order_id, submission, due_at, state, next_attempt_at, attempts, last_error, fired_at, closed, created_at, kind FROM deadlines WHERE order_id = $1 AND submission = $2 AND kind = $3 FOR UPDATE

-- name: Save
-- The mutable columns of a timer domain code has changed.
UPDATE deadlines SET state = $3, next_attempt_at = $4, attempts = $5, last_error = $6,
		fired_at = $7, closed = $8 WHERE order_id = $1 AND submission = $2 AND kind = $9

-- name: List
-- A page of close timers in domain.ListLess order (soonest first), in state $1 ('' for all), at most $2.
-- Order ids compare bytewise (COLLATE "C"), as Go compares strings.
SELECT order_id, submission, due_at, state, next_attempt_at, attempts, last_error, fired_at, closed, created_at, kind FROM deadlines WHERE kind = 0 AND ($1 = '' OR state = $1) ORDER BY due_at, order_id COLLATE "C", submission LIMIT $2

-- name: ListAfter
-- List after the position ($3, $4, $5), the last timer of the page before.
SELECT order_id, submission, due_at, state, next_attempt_at, attempts, last_error, fired_at, closed, created_at, kind FROM deadlines WHERE kind = 0 AND ($1 = '' OR state = $1) AND (due_at, order_id COLLATE "C", submission) > ($3, $4, $5) ORDER BY due_at, order_id COLLATE "C", submission LIMIT $2

-- name: Claim
-- The sweeper's claim: takes up to $2 timers (of both kinds) due at $1 in one statement, locks them in claim order,
-- skipping those another sweeper holds, hides them until $3 and counts the attempt (domain.Claim).
-- The scan is the partial index deadlines_pending_next, in its order, so it stops after $2 rows however
-- many timers are pending (bench/deadline_claim_plan.txt). The benchmark (bench/cmd/icpbench) reads
-- this block from this file and plans and times this very statement.
WITH due AS (
	SELECT order_id, submission, kind FROM deadlines
	WHERE state = 'PENDING' AND next_attempt_at <= $1
	ORDER BY next_attempt_at, order_id COLLATE "C", submission, kind
	LIMIT $2
	FOR UPDATE SKIP LOCKED
)
UPDATE deadlines d SET next_attempt_at = $3, attempts = d.attempts + 1
FROM due WHERE d.order_id = due.order_id AND d.submission = due.submission AND d.kind = due.kind
RETURNING d.order_id, d.submission, d.due_at, d.state, d.next_attempt_at, d.attempts, d.last_error, d.fired_at, d.closed, d.created_at, d.kind

-- name: MarkFiredBatch
-- Successful closes, as domain.Fire decides, for a whole batch: each row changes only if it is still
-- pending and still held by the claim that counted its attempts, re-checked on the locked row (a
-- concurrent cancel or re-claim wins or loses whole); rows are locked in key order, as a claim walks
-- them, to keep batches from deadlocking. A key given twice fires at most once. It returns the
-- indexes ($6) of the firings that fired their timer.
WITH f AS (
			SELECT * FROM unnest($1::text[], $2::int[], $3::int[], $4::timestamptz[], $5::bool[], $6::int[], $7::smallint[])
				AS f(order_id, submission, attempts, fired_at, closed, i, kind)
		), target AS (
			SELECT d.order_id, d.submission, d.kind, d.attempts, f.fired_at, f.closed, f.i FROM deadlines d JOIN f
				ON d.order_id = f.order_id AND d.submission = f.submission AND d.kind = f.kind AND d.attempts = f.attempts
			WHERE d.state = 'PENDING'
			ORDER BY d.order_id COLLATE "C", d.submission, d.kind
			FOR UPDATE OF d
		)
		UPDATE deadlines d SET state = 'FIRED', fired_at = t.fired_at, closed = t.closed, last_error = ''
		FROM (SELECT DISTINCT ON (order_id, submission, kind) * FROM target ORDER BY order_id, submission, kind, i) t
		WHERE d.order_id = t.order_id AND d.submission = t.submission AND d.kind = t.kind AND d.state = 'PENDING' AND d.attempts = t.attempts
		RETURNING t.i

-- name: NextDue
-- The earliest next_attempt_at of a pending timer.
SELECT next_attempt_at FROM deadlines WHERE state = 'PENDING'
		ORDER BY next_attempt_at LIMIT 1

-- name: CountPending
-- The pending timers, and those due before $1, through the partial index the claim uses.
SELECT count(*), count(*) FILTER (WHERE due_at < $1) FROM deadlines WHERE state = 'PENDING'

-- name: LockOrders
-- Schedule and Cancel (timers.go): the advisory lock of each order $1, in array order (sorted by
-- the caller).
SELECT pg_advisory_xact_lock(hashtext('deadline:' || o)) FROM unnest($1::text[]) WITH ORDINALITY AS t(o, n) ORDER BY n

-- name: LockTimers
-- Every timer of the orders $1, locked in key order as the sweeper's MarkFiredBatch locks them.
SELECT d.* FROM unnest($1::text[]) WITH ORDINALITY AS i(order_id, n)
		CROSS JOIN LATERAL (SELECT order_id, submission, due_at, state, next_attempt_at, attempts, last_error, fired_at, closed, created_at, kind FROM deadlines WHERE order_id = i.order_id
			ORDER BY submission, kind OFFSET 0 FOR UPDATE) d
		ORDER BY i.n

-- name: InsertTimers
INSERT INTO deadlines (order_id, submission, due_at, state, next_attempt_at, created_at, kind)
			SELECT * FROM unnest($1::text[], $2::integer[], $3::timestamptz[], $4::text[], $5::timestamptz[], $6::timestamptz[], $7::smallint[])

-- name: UpdateTimers
-- The same columns as Save, for many timers.
UPDATE deadlines d SET state = u.state, next_attempt_at = u.next_attempt_at, attempts = u.attempts,
				last_error = u.last_error, fired_at = u.fired_at, closed = u.closed
			FROM unnest($1::text[], $2::integer[], $3::text[], $4::timestamptz[], $5::integer[], $6::text[], $7::timestamptz[], $8::boolean[], $9::smallint[])
				AS u(order_id, submission, state, next_attempt_at, attempts, last_error, fired_at, closed, kind)
			WHERE d.order_id = u.order_id AND d.submission = u.submission AND d.kind = u.kind
