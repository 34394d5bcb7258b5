-- The SQL of verification's PostgreSQL store (package store): one "-- name:" block per statement,
-- loaded into the fields of queries (store.go) by pg.MustQueries. Statements that return sessions or
-- challenges list the columns in scanSession's and scanChallenge's order.

-- name: LockOrder
-- Serialises the changes of one order's sessions ($1), including the case where no session row
-- exists yet to lock.
SELECT pg_advisory_xact_lock(hashtextextended('verification-order:' || $1, 0))

-- name: OrderSessions
-- The sessions of the order $1, in id order; the columns are scanSession's and auto_resent_at
-- (scanOrderSession: only the use cases on one order read or change it).
SELECT id::text, order_id, submission, state, deadline_at, locale, created_at, tenant, auto_resent_at FROM sessions WHERE order_id = $1 ORDER BY id

-- name: OrderSessionsForUpdate
-- OrderSessions, locking the sessions in id order to the end of the transaction.
SELECT id::text, order_id, submission, state, deadline_at, locale, created_at, tenant, auto_resent_at FROM sessions WHERE order_id = $1 ORDER BY id FOR UPDATE

-- name: SessionChallenges
-- The challenges of the sessions $1; the columns are scanChallenge's.
SELECT id::text, session_id::text, verifier_id, phone, roles, code_hash, code_key_id, generation,
	failed_attempts, resends_used, last_sent_at, state, passed_at, link_hash, delivery FROM challenges WHERE session_id = ANY($1::uuid[])
		ORDER BY session_id, verifier_id

-- name: InsertSession
INSERT INTO sessions (id, order_id, submission, state, deadline_at, locale, created_at, closed_at, tenant)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)

-- name: InsertChallenge
INSERT INTO challenges (id, session_id, verifier_id, phone, roles, code_hash, code_key_id, generation,
			last_sent_at, state, link_hash) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)

-- name: InsertTail
INSERT INTO challenge_id_tails (challenge_id, key_id, tail_hash) VALUES ($1, $2, $3)

-- name: SetSessionState
-- A session's new state; every state but OPEN is final, so it closes it.
UPDATE sessions SET state = $2, closed_at = $3 WHERE id = $1

-- name: SetAutoResent
-- The noon resend of session $1 was made at $2 (AutoResend): the mark that makes it once only.
UPDATE sessions SET auto_resent_at = $2 WHERE id = $1

-- name: UpdateChallenge
-- A challenge's changed fields. A new code hash replaces the old one in this transaction: from its
-- commit on, only the new code passes.
UPDATE challenges SET code_hash = $2, code_key_id = $3, generation = $4, failed_attempts = $5,
		resends_used = $6, last_sent_at = $7, state = $8, passed_at = $9, link_hash = $10, delivery = $11 WHERE id = $1

-- name: LockPhone
-- Locks the open sessions that have a pending challenge for one of the phones ($1) and those
-- challenges in one statement (Verify, verify_batch.go, and the public resend, engine.go UpdatePhone).
-- The rows are locked in ORDER BY order, session then challenge of each row (FOR UPDATE OF s, c), so
-- sessions are taken in id order and a challenge only under its session's lock, like every other
-- writer: no deadlock. Rows changed by a transaction we waited for are re-checked (READ COMMITTED), so
-- the states are the committed ones. The ID-tail hashes ride along in the row (paired by ordering both
-- arrays on the primary key).
SELECT s.id::text, s.order_id, s.submission, s.state, s.deadline_at, s.locale, s.created_at, s.tenant,
	c.id::text, c.session_id::text, c.verifier_id, c.phone, c.roles, c.code_hash, c.code_key_id, c.generation,
	c.failed_attempts, c.resends_used, c.last_sent_at, c.state, c.passed_at, c.link_hash, c.delivery,
	(SELECT array_agg(t.key_id ORDER BY t.tail_hash) FROM challenge_id_tails t WHERE t.challenge_id = c.id),
	(SELECT array_agg(t.tail_hash ORDER BY t.tail_hash) FROM challenge_id_tails t WHERE t.challenge_id = c.id)
	FROM sessions s JOIN challenges c ON c.session_id = s.id
	WHERE c.phone = ANY($1::text[]) AND c.state = 'PENDING' AND s.state = 'OPEN'
	ORDER BY s.id, c.id
	FOR UPDATE OF s, c

-- name: LinkChallenge
-- GetLink and a Verify through a link without a phone: the challenge whose link hash is $1 (index
-- challenges_link_hash) with its session; the columns are scanSession's, then scanChallenge's.
SELECT s.id::text, s.order_id, s.submission, s.state, s.deadline_at, s.locale, s.created_at, s.tenant,
	c.id::text, c.session_id::text, c.verifier_id, c.phone, c.roles, c.code_hash, c.code_key_id, c.generation,
	c.failed_attempts, c.resends_used, c.last_sent_at, c.state, c.passed_at, c.link_hash, c.delivery
	FROM challenges c JOIN sessions s ON s.id = c.session_id WHERE c.link_hash = $1

-- name: CountFailures
-- The failures a batch of checks counted, one statement for the batch: challenge $1[i] now has
-- count $2[i] and state $3[i] (LOCKED at the limit). Each id appears once (its last value).
UPDATE challenges c SET failed_attempts = u.failed, state = u.state
	FROM unnest($1::uuid[], $2::integer[], $3::text[]) AS u(id, failed, state) WHERE c.id = u.id

-- name: PassAll
-- Verify (verify_batch.go): marks the challenges $1 passed at $2, in one statement for a whole batch,
-- and answers, for each of their sessions, whether every challenge has now passed; those sessions it
-- also closes as PASSED and writes their outbox rows (session $3, target $4, payload $5, sensitive $6,
-- key id $7, in array order: pkg/outbox's Rows). Its snapshot includes the batch's earlier statements (failures, locks); the CTEs'
-- own updates are not visible to the aggregate, hence "OR c.id = ANY($1)". Array comparisons keep
-- every lookup an index scan whatever the statistics say. {{outbox.InsertIntoSQL}} is pkg/outbox's
-- insert head (the outbox table's owner), put in its place when the package loads.
WITH up AS (
		UPDATE challenges SET state = 'PASSED', passed_at = $2 WHERE id = ANY($1::uuid[]) RETURNING session_id
	), agg AS (
		SELECT c.session_id, bool_and(c.state = 'PASSED' OR c.id = ANY($1::uuid[])) AS all_passed
		FROM challenges c WHERE c.session_id = ANY(ARRAY(SELECT session_id FROM up))
		GROUP BY c.session_id
	), closed AS (
		UPDATE sessions SET state = 'PASSED', closed_at = $2 WHERE id = ANY(ARRAY(SELECT session_id FROM agg WHERE all_passed))
		RETURNING id
	), ob AS (
		{{outbox.InsertIntoSQL}}SELECT t.target, t.payload, $2, $2, t.sensitive, t.key_id
		FROM unnest($3::uuid[], $4::text[], $5::bytea[], $6::boolean[], $7::text[]) WITH ORDINALITY AS t(session_id, target, payload, sensitive, key_id, n)
		WHERE t.session_id = ANY(ARRAY(SELECT id FROM closed))
		ORDER BY t.n
		RETURNING 1
	)
	SELECT a.session_id::text, a.all_passed, a.session_id = ANY(ARRAY(SELECT id FROM closed)), (SELECT count(*) FROM ob)
	FROM agg a

-- name: LockClosing
-- CloseIfIncomplete (close_batch.go): the sessions of the keys ($1 order ids, $2 submissions),
-- locked in id order as every other writer locks them (LockPhone): a batch that took them in key
-- order could deadlock with a Verify of a phone two of them share. The lookups are index lookups per
-- key (OFFSET 0: the LATERAL subquery is not flattened into a join whose plan depends on statistics a
-- burst of closes has outdated).
SELECT id::text, order_id, submission, state, deadline_at, locale, created_at, tenant FROM sessions WHERE id IN (
			SELECT s.id FROM unnest($1::text[], $2::integer[]) AS k(order_id, submission)
			CROSS JOIN LATERAL (SELECT id FROM sessions WHERE order_id = k.order_id AND submission = k.submission OFFSET 0) s)
		ORDER BY id FOR UPDATE

-- name: ClosingChallenges
-- The challenges of the same sessions, as LockClosing finds them.
SELECT c.* FROM unnest($1::text[], $2::integer[]) AS k(order_id, submission)
		CROSS JOIN LATERAL (SELECT id FROM sessions WHERE order_id = k.order_id AND submission = k.submission OFFSET 0) s
		CROSS JOIN LATERAL (SELECT id::text, session_id::text, verifier_id, phone, roles, code_hash, code_key_id, generation,
	failed_attempts, resends_used, last_sent_at, state, passed_at, link_hash, delivery FROM challenges WHERE session_id = s.id OFFSET 0) c

-- name: TimeOut
-- Closes the sessions $1 in state $2 at $3.
UPDATE sessions s SET state = $2, closed_at = $3 FROM unnest($1::uuid[]) AS i(id) WHERE s.id = i.id

-- name: PhoneFailures
-- The counted failures of the phones whose hashes (under every key) are $1: their budget
-- (domain/budget.go). Read after LockPhone, in its round trip: the phone's pending challenges are
-- locked, so every check that can count on the phone waits for them and sees the committed count.
SELECT phone_hash, failed_at, locks_until FROM phone_failures WHERE phone_hash = ANY($1::bytea[])

-- name: InsertPhoneFailures
-- Counted failures: phone hash $1, time $2, lock end $3 (NULL: none), in array order.
INSERT INTO phone_failures (phone_hash, failed_at, locks_until)
	SELECT * FROM unnest($1::bytea[], $2::timestamptz[], $3::timestamptz[])

-- name: PrunePhoneFailures
-- Drops up to $2 failures recorded at or before $1 (now minus the window): they no longer count and
-- their lock has ended. SKIP LOCKED: two writers never wait on each other's pruning.
DELETE FROM phone_failures WHERE ctid = ANY(ARRAY(
		SELECT ctid FROM phone_failures WHERE failed_at <= $1 LIMIT $2 FOR UPDATE SKIP LOCKED))
