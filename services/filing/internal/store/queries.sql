-- The SQL of filing's PostgreSQL store (package store): one "-- name:" block per statement, loaded
-- into the fields of queries (store.go) by pg.MustQueries. Statements that return orders list the
-- columns in scanOrder's order.

-- name: LoadOrder
-- An order; the columns are scanOrder's.
SELECT order_id, spec, state, submission, deadline_at, return_reason, created_at, updated_at, tenant FROM orders WHERE order_id = $1

-- name: LoadOrderForUpdate
-- LoadOrder, locking the order row for the rest of the transaction: that serialises every
-- transition of one order.
SELECT order_id, spec, state, submission, deadline_at, return_reason, created_at, updated_at, tenant FROM orders WHERE order_id = $1 FOR UPDATE

-- name: LoadVerifiers
-- The verifiers of the orders $1 at their submissions $2, each order's in position order.
SELECT v.order_id, v.phone, v.roles
		FROM order_verifiers v JOIN unnest($1::text[], $2::int[]) AS cur(order_id, submission)
		  ON v.order_id = cur.order_id AND v.submission = cur.submission
		ORDER BY v.order_id, v.position

-- name: History
-- The history of the orders $1, each in id order, one index scan per order: with `order_id = ANY($1)
-- ORDER BY order_id, id` a cached generic plan could walk the whole index in order, which grows with
-- every order ever filed. Each LATERAL subquery here is fenced with OFFSET 0: it stays one index lookup
-- per key instead of being flattened into a join whose plan depends on statistics that a burst of
-- writes has outdated.
SELECT h.order_id, h.at, h.from_state, h.to_state, h.actor, h.reason
	FROM unnest($1::text[]) AS i(order_id)
	CROSS JOIN LATERAL (SELECT * FROM order_history WHERE order_id = i.order_id ORDER BY id OFFSET 0) h

-- name: ListOrders
-- A page of orders newest first: state $1 ('' for all), after the position ($2, $3) when $2 is
-- set, at most $4, of tenant $5 ('' for every tenant: a cross-tenant caller).
SELECT order_id, spec, state, submission, deadline_at, return_reason, created_at, updated_at, tenant FROM orders
		WHERE ($1 = '' OR state = $1) AND ($2::timestamptz IS NULL OR (created_at, order_id) < ($2, $3))
		AND ($5 = '' OR tenant = $5)
		ORDER BY created_at DESC, order_id DESC LIMIT $4

-- name: InsertOrder
INSERT INTO orders (order_id, filing_type, subject_id, spec, state, created_at, updated_at, tenant)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8)

-- name: UpdateOrder
UPDATE orders SET spec = $2, filing_type = $3, subject_id = $4, state = $5, submission = $6, deadline_at = $7,
		return_reason = $8, updated_at = $9 WHERE order_id = $1

-- name: InsertVerifier
-- One verifier of a new submission (phones and roles; the ID tails are never stored here).
INSERT INTO order_verifiers (order_id, submission, position, phone, roles) VALUES ($1, $2, $3, $4, $5)

-- name: InsertHistoryEntry
INSERT INTO order_history (order_id, at, from_state, to_state, actor, reason) VALUES ($1, $2, $3, $4, $5, $6)

-- name: SaveRecord
-- Creates or replaces a subject's approved record.
INSERT INTO subjects (subject_id, name, record, deregistered_at, created_at, updated_at) VALUES ($1, $2, $3, $4, $5, $5)
		ON CONFLICT (subject_id) DO UPDATE SET name = excluded.name, record = excluded.record,
		deregistered_at = excluded.deregistered_at, updated_at = excluded.updated_at

-- name: ReadSubject
-- A live subject's approved record and its holders, sorted.
SELECT record, ARRAY(SELECT h.tenant FROM subject_holders h WHERE h.subject_id = s.subject_id ORDER BY h.tenant COLLATE "C")
		FROM subjects s WHERE s.subject_id = $1 AND s.deregistered_at IS NULL

-- name: ReadSubjectForUpdate
-- ReadSubject, locking the record for the rest of the transaction (an approval writes it and its
-- holders, a submission is checked against it).
SELECT record, ARRAY(SELECT h.tenant FROM subject_holders h WHERE h.subject_id = s.subject_id ORDER BY h.tenant COLLATE "C")
		FROM subjects s WHERE s.subject_id = $1 AND s.deregistered_at IS NULL FOR UPDATE OF s

-- name: AddHolder
-- Tenant $2 holds the record of subject $1 from $3 (kept from its first approval).
INSERT INTO subject_holders (subject_id, tenant, since) VALUES ($1, $2, $3) ON CONFLICT DO NOTHING

-- name: RemoveHolder
DELETE FROM subject_holders WHERE subject_id = $1 AND tenant = $2

-- name: LockTenantMismatches
-- Locks tenant $1's record-mismatch budget to the end of the transaction: racing reservations count
-- one after the other.
SELECT pg_advisory_xact_lock(hashtextextended('icp-filing-record-mismatch:' || $1, 0))

-- name: ForgetMismatches
-- Tenant $1's reservations that left the window (at or before $2).
DELETE FROM record_mismatches WHERE tenant = $1 AND at <= $2

-- name: TenantMismatches
-- The times of tenant $1's reservations within the window (after $2).
SELECT at FROM record_mismatches WHERE tenant = $1 AND at > $2

-- name: InsertMismatch
INSERT INTO record_mismatches (id, tenant, order_id, subject_id, at) VALUES ($1, $2, $3, $4, $5)

-- name: ReleaseMismatch
DELETE FROM record_mismatches WHERE id = $1

-- name: LockOrders
-- The verification outcomes (outcome.go). Reads and locks the orders $1 one primary-key lookup at a
-- time, in array order (sorted by the caller): concurrent batches lock in the same order and cannot
-- deadlock.
SELECT o.* FROM unnest($1::text[]) AS i(order_id)
	CROSS JOIN LATERAL (SELECT order_id, spec, state, submission, deadline_at, return_reason, created_at, updated_at, tenant FROM orders WHERE order_id = i.order_id OFFSET 0 FOR UPDATE) o

-- name: CurrentVerifiers
-- The verifiers of the current submission of each order $1 (locked before, so the submission
-- cannot change). The subquery rather than a join with orders: the two order_id columns differ in
-- collation, and such a join cannot use order_verifiers' primary key.
SELECT i.order_id, v.phone, v.roles
	FROM unnest($1::text[]) AS i(order_id)
	CROSS JOIN LATERAL (SELECT phone, roles FROM order_verifiers
		WHERE order_id = i.order_id AND submission = (SELECT submission FROM orders WHERE order_id = i.order_id)
		ORDER BY position OFFSET 0) v

-- name: UpdateOrders
UPDATE orders o SET state = u.state, return_reason = u.reason, updated_at = $4::timestamptz
	FROM unnest($1::text[], $2::text[], $3::integer[]) AS u(order_id, state, reason)
	WHERE o.order_id = u.order_id

-- name: InsertHistory
-- Keeps array order, so each order's entries get increasing ids (History's order).
INSERT INTO order_history (order_id, at, from_state, to_state, actor, reason)
	SELECT h.order_id, $2::timestamptz, h.from_state, h.to_state, $5::text, h.reason
	FROM unnest($1::text[], $3::text[], $4::text[], $6::text[]) WITH ORDINALITY AS h(order_id, from_state, to_state, reason, n)
	ORDER BY h.n

-- name: LockPhones
-- Locks the phones $1 (sorted, distinct) to the end of the transaction, in that order: submissions
-- naming one phone count its pending challenges one after the other.
SELECT pg_advisory_xact_lock(hashtextextended('icp-filing-phone:' || p, 0)) FROM unnest($1::text[]) WITH ORDINALITY AS u(p, n) ORDER BY n

-- name: PendingPerPhone
-- Per phone of $1: the orders other than $2 awaiting verification whose current submission names it.
SELECT v.phone, count(*) FROM order_verifiers v
		JOIN orders o ON o.order_id = v.order_id AND o.submission = v.submission
		WHERE v.phone = ANY($1) AND o.state = 'AWAITING_VERIFICATION' AND o.order_id <> $2
		GROUP BY v.phone

-- name: PhoneLocks
-- The locks of the phones $1 that still run at $2.
SELECT phone, until FROM phone_locks WHERE phone = ANY($1) AND until > $2

-- name: SavePhoneLocks
-- Records the phone locks ($1, $2: distinct phones), keeping the later time of each.
INSERT INTO phone_locks (phone, until) SELECT * FROM unnest($1::text[], $2::timestamptz[])
		ON CONFLICT (phone) DO UPDATE SET until = GREATEST(phone_locks.until, excluded.until)
