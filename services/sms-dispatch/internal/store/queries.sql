-- The SQL of sms-dispatch's PostgreSQL store (package store): one "-- name:" block per statement,
-- loaded into the fields of queries (store.go) by pg.MustQueries. Statements that return messages
-- list the columns in scanMessage's order. A message's text (its body and params, which hold the
-- code) is stored sealed in sealed_text, its key in key_id (text.go); wiping it sets both empty.

-- name: Get
-- One message; the columns are scanMessage's.
SELECT message_id, order_id, phone, template, locale, sealed_text, state, attempts,
	next_attempt_at, expire_at, provider, last_error, created_at, sent_at, redacted, sequence, provider_ids, delivery_code, receipt_at FROM messages WHERE message_id = $1

-- name: GetAll
-- The stored messages among the ids $1, one primary-key lookup each.
SELECT m.message_id, m.order_id, m.phone, m.template, m.locale, m.sealed_text, m.state, m.attempts, m.next_attempt_at, m.expire_at, m.provider, m.last_error, m.created_at, m.sent_at, m.redacted, m.sequence, m.provider_ids, m.delivery_code, m.receipt_at FROM unnest($1::text[]) AS i(id)
		CROSS JOIN LATERAL (SELECT * FROM messages WHERE message_id = i.id OFFSET 0) m

-- name: List
-- A page of messages newest first: of order $1 ('' for all), after the position ($3, $4) when
-- $2, at most $5.
SELECT message_id, order_id, phone, template, locale, sealed_text, state, attempts,
	next_attempt_at, expire_at, provider, last_error, created_at, sent_at, redacted, sequence, provider_ids, delivery_code, receipt_at FROM messages
		WHERE ($1 = '' OR order_id = $1)
		  AND (NOT $2 OR (created_at, message_id) < ($3, $4))
		ORDER BY created_at DESC, message_id DESC
		LIMIT $5

-- name: LockThreads
-- Create (create_batch.go): a transaction lock on each thread (order, phone, template) $1, in array
-- order (sorted by the caller, so that two batches never wait for each other in a cycle). The create
-- statement that follows takes its snapshot once they are held, so it sees every message of its
-- threads that a concurrent create committed: one of two racing messages supersedes the other.
SELECT pg_advisory_xact_lock(hashtextextended('sms-thread ' || k, 0))
		FROM unnest($1::text[]) WITH ORDINALITY AS t(k, n) ORDER BY n

-- name: Create
-- Stores a batch of new messages in one statement, one snapshot: an input is late when a newer
-- message of its thread is stored or is in this batch; it is stored FAILED at once and never goes out.
-- Each stored QUEUED one supersedes the older QUEUED ones of its thread, locked in message_id order as
-- MarkSentAll locks them, so that the two cannot deadlock. Both checks find a thread by its index
-- (messages_thread), each through a LATERAL the planner cannot turn into a walk of messages_due; late
-- is worked out once, not once per use of its flag. The answer is every input's row: the
-- inserted ones (RETURNING; the statement's own writes are invisible to its other parts) and the
-- repeats (a primary-key lookup each: a LATERAL the planner cannot flatten, whatever the statistics
-- say), each after two flags: inserted by this statement, superseded by it. The inputs' texts come
-- sealed ($7), with their key ids ($5).
WITH t AS MATERIALIZED (
			SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[], $6::text[], $7::bytea[],
				$8::timestamptz[], $9::timestamptz[], $10::timestamptz[], $11::integer[], $12::integer[])
				WITH ORDINALITY AS t(id, ord, phone, tpl, kid, loc, txt, nxt, exp, at, seq, att, n)
		), late AS MATERIALIZED (
			SELECT t.id FROM t WHERE t.ord <> '' AND (
				EXISTS (SELECT 1 FROM t o WHERE o.ord = t.ord AND o.phone = t.phone AND o.tpl = t.tpl
					AND o.id <> t.id AND o.seq > t.seq)
				OR EXISTS (SELECT 1 FROM (SELECT * FROM messages o WHERE o.order_id = t.ord AND o.phone = t.phone
					AND o.template = t.tpl AND o.message_id <> t.id AND o.sequence > t.seq OFFSET 0) o))
		), ins AS (
			INSERT INTO messages (message_id, order_id, phone, template, key_id, locale, sealed_text, state, attempts,
				next_attempt_at, expire_at, created_at, sequence, last_error, redacted)
			SELECT id, ord, phone, tpl, CASE WHEN l THEN '' ELSE kid END, loc, CASE WHEN l THEN NULL ELSE txt END,
				CASE WHEN l THEN 'FAILED' ELSE 'QUEUED' END, att, nxt, exp, at, seq, CASE WHEN l THEN $13 ELSE '' END, l
			FROM (SELECT t.*, t.id IN (SELECT id FROM late) AS l FROM t OFFSET 0) t
			ORDER BY n
			ON CONFLICT (message_id) DO NOTHING
			RETURNING message_id, order_id, phone, template, locale, sealed_text, state, attempts,
	next_attempt_at, expire_at, provider, last_error, created_at, sent_at, redacted, sequence, provider_ids, delivery_code, receipt_at
		), superseded AS (
			UPDATE messages SET state = 'FAILED', last_error = $13, sealed_text = NULL, key_id = '', redacted = true
			WHERE message_id IN (SELECT r.message_id FROM (SELECT o.message_id FROM ins n
					CROSS JOIN LATERAL (SELECT o.message_id FROM messages o WHERE o.order_id = n.order_id AND o.phone = n.phone
						AND o.template = n.template AND o.sequence < n.sequence AND o.state = 'QUEUED' OFFSET 0) o
					WHERE n.order_id <> '' AND n.state = 'QUEUED' ORDER BY o.message_id) c
				CROSS JOIN LATERAL (SELECT * FROM messages WHERE message_id = c.message_id OFFSET 0) r
				WHERE r.state = 'QUEUED'
				ORDER BY r.message_id FOR UPDATE OF r)
			RETURNING message_id
		)
		SELECT true, false, message_id, order_id, phone, template, locale, sealed_text, state, attempts,
	next_attempt_at, expire_at, provider, last_error, created_at, sent_at, redacted, sequence, provider_ids, delivery_code, receipt_at FROM ins
		UNION ALL
		SELECT false, m.message_id IN (SELECT message_id FROM superseded), m.message_id, m.order_id, m.phone, m.template, m.locale, m.sealed_text, m.state, m.attempts, m.next_attempt_at, m.expire_at, m.provider, m.last_error, m.created_at, m.sent_at, m.redacted, m.sequence, m.provider_ids, m.delivery_code, m.receipt_at FROM t
			CROSS JOIN LATERAL (SELECT * FROM messages WHERE message_id = t.id OFFSET 0) m
			WHERE t.id NOT IN (SELECT message_id FROM ins)

-- name: Claim
-- Dispatch (dispatch.go): takes up to $2 due QUEUED messages (due at $1), hides them until
-- $1 + $3 and counts the attempt; rows another worker holds are skipped (SKIP LOCKED).
WITH due AS (
			SELECT message_id FROM messages
			WHERE state = 'QUEUED' AND next_attempt_at <= $1
			ORDER BY next_attempt_at, message_id
			LIMIT $2
			FOR UPDATE SKIP LOCKED
		)
		UPDATE messages m SET next_attempt_at = $1 + $3::interval, attempts = m.attempts + 1
		FROM due WHERE m.message_id = due.message_id
		RETURNING m.message_id, m.order_id, m.phone, m.template, m.locale, m.sealed_text, m.state, m.attempts, m.next_attempt_at, m.expire_at, m.provider, m.last_error, m.created_at, m.sent_at, m.redacted, m.sequence, m.provider_ids, m.delivery_code, m.receipt_at

-- name: LockPhone
-- Serialises the count-and-insert of one phone's ($1) cap reservations.
SELECT pg_advisory_xact_lock(hashtext($1))

-- name: LockClaim
-- What a claim of message $1 is checked against (domain.ClaimCurrent): its state, attempts and
-- lease end, the row locked until the reservation commits.
SELECT state, attempts, next_attempt_at FROM messages WHERE message_id = $1 FOR UPDATE

-- name: DropOldSends
-- Sends older than the longest window ($2) never count again; dropping them keeps the log small.
DELETE FROM phone_sends WHERE phone = $1 AND sent_at <= $2

-- name: RecentSends
-- The phone's sends after $2, but for message $3's own earlier reservation (a crash after
-- reserving), which is the same SMS, not another one.
SELECT sent_at FROM phone_sends WHERE phone = $1 AND sent_at > $2 AND message_id <> $3

-- name: ReserveSend
INSERT INTO phone_sends (message_id, phone, sent_at) VALUES ($1, $2, $3)
				ON CONFLICT (message_id) DO UPDATE SET sent_at = EXCLUDED.sent_at, phone = EXCLUDED.phone

-- name: Reschedule
-- A cap wait: the message goes at $3, and the wait does not use up an attempt.
UPDATE messages SET next_attempt_at = $3, attempts = attempts - 1
				WHERE message_id = $1 AND state = 'QUEUED' AND attempts = $2

-- name: Fail
-- Ends the claim (message $1, attempts $2) with error $3 and wipes its code
-- (domain.Message.MarkFailed).
UPDATE messages SET state = 'FAILED', last_error = $3, sealed_text = NULL, key_id = '', redacted = true
	WHERE message_id = $1 AND state = 'QUEUED' AND attempts = $2

-- name: MarkSentAll
-- Records the provider's acceptance of the claims ($1 ids, $2 attempts, $6 the provider's ids of
-- each as a JSON array) still current, by provider $3 at $4, redacting unless $5 (development mode)
-- or the message is redeliverable: it had fewer than $7 redeliveries and a provider of $8 other than
-- $3 never had it (no hand-off, or one it refused), so its sealed text is held for that
-- (domain.Redelivery.Redeliverable). It files each provider id (message_provider_ids, for the
-- receipts) and returns the ids marked, each with whether a receipt waits parked for it. FOR UPDATE of the LATERAL subquery locks inside each
-- per-id lookup, in the order of the ids: they are sorted first (by the database's collation, as
-- Create's ORDER BY message_id), so that it cannot deadlock with a concurrent supersede.
WITH claimed AS (
			SELECT m.message_id, c.pids, ($7::integer > m.redeliveries AND EXISTS (
					SELECT 1 FROM unnest($8::text[]) AS p(name) WHERE p.name <> $3 AND NOT EXISTS (
						SELECT 1 FROM message_handoffs h WHERE h.message_id = m.message_id AND h.provider = p.name AND NOT h.refused)))
				AS again
			FROM (SELECT * FROM unnest($1::text[], $2::integer[], $6::text[]) AS c(message_id, attempts, pids)
				ORDER BY message_id) c
			CROSS JOIN LATERAL (SELECT * FROM messages WHERE message_id = c.message_id OFFSET 0) m
			WHERE m.attempts = c.attempts AND m.state = 'QUEUED'
			ORDER BY m.message_id
			FOR UPDATE OF m
		), up AS (
			UPDATE messages m SET state = 'SENT', provider = $3, sent_at = $4, last_error = '',
				provider_ids = ARRAY(SELECT jsonb_array_elements_text(claimed.pids::jsonb)),
				sealed_text = CASE WHEN $5::boolean OR claimed.again THEN m.sealed_text END,
				key_id = CASE WHEN $5 OR claimed.again THEN m.key_id ELSE '' END, redacted = NOT ($5 OR claimed.again),
				redeliverable = claimed.again, text_held = claimed.again AND NOT $5
			FROM claimed WHERE m.message_id = claimed.message_id
			RETURNING m.message_id, m.provider_ids
		), filed AS (
			INSERT INTO message_provider_ids (provider, provider_id, message_id)
			SELECT $3, p, up.message_id FROM up CROSS JOIN LATERAL unnest(up.provider_ids) p
			ON CONFLICT (provider, provider_id) DO NOTHING
		)
		SELECT up.message_id, EXISTS (SELECT 1 FROM parked_receipts r WHERE r.provider = $3
			AND r.park_key = ANY(up.provider_ids || ('id:' || up.message_id))) FROM up

-- name: Retry
-- A provider error on the claim: retried at $3, with its error $4 and provider $5.
UPDATE messages SET next_attempt_at = $3, last_error = $4, provider = $5
				WHERE message_id = $1 AND state = 'QUEUED' AND attempts = $2

-- name: ReleaseSend
-- Gives back the cap slot reserved for message $1 at $2 (nothing reached the phone).
DELETE FROM phone_sends WHERE message_id = $1 AND sent_at = $2

-- name: LockMessages
-- RecordReceipts: the messages $1, locked in message_id order (so concurrent batches cannot
-- deadlock); the columns are scanMessage's.
SELECT message_id, order_id, phone, template, locale, sealed_text, state, attempts,
	next_attempt_at, expire_at, provider, last_error, created_at, sent_at, redacted, sequence, provider_ids, delivery_code, receipt_at
	FROM messages WHERE message_id = ANY($1::text[]) ORDER BY message_id FOR UPDATE

-- name: FindProviderIDs
-- The messages the providers $1 know by the ids $2 (pairwise).
SELECT i.provider, i.provider_id, i.message_id FROM message_provider_ids i
	JOIN unnest($1::text[], $2::text[]) AS k(provider, provider_id) USING (provider, provider_id)

-- name: SetDeliveries
-- Receipts' outcomes on the messages $1: states $2, the carrier's codes $3, received at $4 (pairwise).
-- Each message is final now (or AT_RISK with no redelivery left): a text held for a redelivery is wiped.
UPDATE messages m SET state = d.state, delivery_code = d.code, receipt_at = d.at, redeliverable = false, text_held = false,
		sealed_text = CASE WHEN m.text_held THEN NULL ELSE m.sealed_text END,
		key_id = CASE WHEN m.text_held THEN '' ELSE m.key_id END, redacted = m.redacted OR m.text_held
	FROM unnest($1::text[], $2::text[], $3::text[], $4::timestamptz[]) AS d(message_id, state, code, at)
	WHERE m.message_id = d.message_id

-- name: RedeliveryOf
-- Whether the locked message $1 may be redelivered, and whether it is superseded (a newer message
-- of its thread exists: its code was replaced).
SELECT m.redeliverable, m.order_id <> '' AND EXISTS (SELECT 1 FROM messages o WHERE o.order_id = m.order_id
		AND o.phone = m.phone AND o.template = m.template AND o.sequence > m.sequence)
	FROM messages m WHERE m.message_id = $1

-- name: Requeue
-- A redelivery: the locked SENT message $1 (UNDELIVERED) is QUEUED again, due at $2, with error $3.
-- Its provider stays until the next one takes it; its text stays held.
UPDATE messages SET state = 'QUEUED', next_attempt_at = $2, last_error = $3, redeliveries = redeliveries + 1,
		redeliverable = false
	WHERE message_id = $1 AND state = 'SENT'

-- name: BarHandoffs
-- Redeliveries of the messages $1 (their SENT providers $2, at $3): every provider that has, or may
-- have, the message (its sender, and any hand-off not refused) is barred from it for good.
WITH sender AS (
			INSERT INTO message_handoffs (message_id, provider, handed_at, barred)
			SELECT * FROM unnest($1::text[], $2::text[]) AS s(message_id, provider), LATERAL (SELECT $3::timestamptz, true) t
			ON CONFLICT (message_id, provider) DO UPDATE SET barred = true
		)
		UPDATE message_handoffs SET barred = true WHERE message_id = ANY($1::text[]) AND NOT refused
			AND (message_id, provider) NOT IN (SELECT * FROM unnest($1::text[], $2::text[]))

-- name: BarredOf
-- The providers barred from the messages $1 by a redelivery (they had them before).
SELECT message_id, provider FROM message_handoffs WHERE message_id = ANY($1::text[]) AND barred

-- name: ParkAll
-- Keeps receipts for messages not yet SENT (providers $1, keys $2, delivered $3, codes $4, received
-- at $5, pairwise, in arrival order); the first parked for a key stays (domain.ApplyReceipt). The
-- rows are inserted in key order, so concurrent batches cannot deadlock on one another's keys.
INSERT INTO parked_receipts (provider, park_key, delivered, code, received_at)
	SELECT provider, park_key, delivered, code, received_at
		FROM unnest($1::text[], $2::text[], $3::boolean[], $4::text[], $5::timestamptz[])
			WITH ORDINALITY AS r(provider, park_key, delivered, code, received_at, n)
		ORDER BY provider, park_key, n
	ON CONFLICT (provider, park_key) DO NOTHING

-- name: TakeParked
-- The parked receipts of provider $1 under the keys $2 (domain.ParkKeys), earliest first, deleted.
DELETE FROM parked_receipts WHERE provider = $1 AND park_key = ANY($2::text[])
	RETURNING delivered, code, received_at

-- name: MarkAtRisk
-- The AT_RISK sweep at $3: up to $2 messages SENT at or before $1 (still without a receipt) become
-- AT_RISK, their held text wiped, or, when redeliverable, not expired and not superseded
-- (domain.RedeliverNow), QUEUED again, due at $3 with error $4; rows another sweep or a receipt
-- holds are skipped. Returns their ids, orders, providers and whether each is queued again.
WITH due AS (
			SELECT s.message_id, s.redeliverable AND s.expire_at > $3 AND NOT (s.order_id <> '' AND EXISTS (
				SELECT 1 FROM messages o WHERE o.order_id = s.order_id AND o.phone = s.phone AND o.template = s.template
					AND o.sequence > s.sequence)) AS again
			FROM messages s WHERE s.state = 'SENT' AND s.sent_at <= $1
			ORDER BY s.sent_at, s.message_id LIMIT $2 FOR UPDATE OF s SKIP LOCKED
		)
		UPDATE messages m SET state = CASE WHEN due.again THEN 'QUEUED' ELSE 'AT_RISK' END,
			next_attempt_at = CASE WHEN due.again THEN $3 ELSE m.next_attempt_at END,
			last_error = CASE WHEN due.again THEN $4 ELSE m.last_error END,
			redeliveries = m.redeliveries + CASE WHEN due.again THEN 1 ELSE 0 END, redeliverable = false,
			sealed_text = CASE WHEN m.text_held AND NOT due.again THEN NULL ELSE m.sealed_text END,
			key_id = CASE WHEN m.text_held AND NOT due.again THEN '' ELSE m.key_id END,
			redacted = m.redacted OR (m.text_held AND NOT due.again), text_held = m.text_held AND due.again
		FROM due WHERE m.message_id = due.message_id
		RETURNING m.message_id, m.order_id, m.provider, due.again

-- name: DropParked
-- Parked receipts older than $1 were for nothing we sent (domain.ParkedReceiptTTL).
DELETE FROM parked_receipts WHERE received_at < $1

-- name: StrandedParked
-- Messages marked SENT (or AT_RISK) with a parked receipt left behind, by a provider id or by the
-- message id (a crash between MarkSentAll and applying it, or a receipt parked while MarkSentAll ran
-- on an older snapshot): at most $1.
SELECT i.message_id FROM parked_receipts p
		JOIN message_provider_ids i ON i.provider = p.provider AND i.provider_id = p.park_key
		JOIN messages m ON m.message_id = i.message_id AND m.state IN ('SENT', 'AT_RISK')
	UNION
	SELECT m.message_id FROM parked_receipts p
		JOIN messages m ON p.park_key = 'id:' || m.message_id AND m.provider = p.provider AND m.state IN ('SENT', 'AT_RISK')
	LIMIT $1

-- name: Hand
-- Failover (failover.go): records that message $1, under its claim with attempts $2, goes to provider
-- $3 at $4. A provider that had the message before gets it again only in a second round ($5) when it
-- refused it, or when it is idempotent by our id ($6) and did not refuse it (any round) or refused
-- it (second round); one barred by a redelivery never does. The answer: whether the claim is
-- current, and whether the hand-off was recorded.
WITH cur AS (
			SELECT 1 FROM messages WHERE message_id = $1 AND state = 'QUEUED' AND attempts = $2
		), ins AS (
			INSERT INTO message_handoffs (message_id, provider, handed_at) SELECT $1, $3, $4 FROM cur
			ON CONFLICT (message_id, provider) DO UPDATE SET handed_at = EXCLUDED.handed_at, refused = false
				WHERE NOT message_handoffs.barred
					AND ((message_handoffs.refused AND $5) OR ($6 AND ($5 OR NOT message_handoffs.refused)))
			RETURNING 1
		)
		SELECT EXISTS (SELECT 1 FROM cur), EXISTS (SELECT 1 FROM ins)

-- name: Refused
-- Provider $2 answered message $1 with a refusal: it did not take it.
UPDATE message_handoffs SET refused = true WHERE message_id = $1 AND provider = $2

-- name: Unhand
-- Provider $2 refused message $1 for its number's limit: the message stays with it, as if new.
DELETE FROM message_handoffs WHERE message_id = $1 AND provider = $2
