-- ClaimSQL (store.go): the deadline sweeper's claim. Also read by the benchmark (bench/cmd/icpbench),
-- which plans and times this very statement.
WITH due AS (
	SELECT order_id, submission FROM deadlines
	WHERE state = 'PENDING' AND next_attempt_at <= $1
	ORDER BY next_attempt_at, order_id COLLATE "C", submission
	LIMIT $2
	FOR UPDATE SKIP LOCKED
)
UPDATE deadlines d SET next_attempt_at = $3, attempts = d.attempts + 1
FROM due WHERE d.order_id = due.order_id AND d.submission = due.submission
RETURNING d.order_id, d.submission, d.due_at, d.state, d.next_attempt_at, d.attempts, d.last_error, d.fired_at, d.closed, d.created_at
