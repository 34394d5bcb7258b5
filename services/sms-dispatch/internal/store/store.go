// Package store keeps messages and the per-phone send log in PostgreSQL. It is the only package that
// sees the driver: its errors become domain errors here. Every write that decides a message's fate
// (claim, cap reservation, sent, retry, fail) is one statement or one transaction.
package store

import (
	"context"
	"embed"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/icpverify/icpverify/pkg/batch"
	"github.com/icpverify/icpverify/pkg/errs"
	"github.com/icpverify/icpverify/pkg/pg"

	"github.com/icpverify/icpverify/services/sms-dispatch/internal/domain"
)

//go:embed migrations/*.sql
var fs embed.FS

// Migrations creates the messages and phone_sends tables.
var Migrations = pg.Source{Name: "sms-dispatch", FS: fs}

// Store is the PostgreSQL store.
type Store struct {
	pool    *pgxpool.Pool
	creates *batch.Group[domain.Message, created]
}

// createFlights is how many batches of Creates may be in flight at once: while they run, the next
// Creates queue up and go together. A batch spends most of its time waiting for its commit to reach
// the disk, so several in flight keep the database busy (PostgreSQL flushes their commits together).
const createFlights = 2

// New returns a store on pool (whose search_path is the service's schema).
func New(pool *pgxpool.Pool) *Store {
	s := &Store{pool: pool}
	s.creates = &batch.Group[domain.Message, created]{Run: s.createBatch, Flights: createFlights, MaxBatch: 100}
	return s
}

const columns = `message_id, order_id, phone, template, params, locale, body, state, attempts,
	next_attempt_at, expire_at, provider, last_error, created_at, sent_at, redacted, sequence`

func scanMessage(row pgx.Row) (domain.Message, error) {
	var (
		m        domain.Message
		template string
		state    string
		body     *string
		sentAt   *time.Time
	)
	err := row.Scan(&m.ID, &m.OrderID, &m.Phone, &template, &m.Params, &m.Locale, &body, &state, &m.Attempts,
		&m.NextAttempt, &m.ExpireAt, &m.Provider, &m.LastError, &m.CreatedAt, &sentAt, &m.Redacted, &m.Sequence)
	if err != nil {
		return domain.Message{}, err
	}
	m.Template = domain.ParseTemplate(template)
	m.State = domain.State(state)
	if body != nil {
		m.Body = *body
	}
	if sentAt != nil {
		m.SentAt = sentAt.UTC()
	}
	m.NextAttempt, m.ExpireAt, m.CreatedAt = m.NextAttempt.UTC(), m.ExpireAt.UTC(), m.CreatedAt.UTC()
	if m.Params == nil {
		m.Params = map[string]string{}
	}
	return m, nil
}

// Create stores m as QUEUED unless its message id exists; m.Attempts and m.NextAttempt are stored
// as given (1 and a lease when the caller's dispatcher claimed it in memory, see dispatcher.Reserve). It returns the stored message and whether
// this call created it. A repeat naming another phone or template is refused with MESSAGE_ID_REUSED.
// A new message supersedes (domain.Supersedes) the QUEUED ones of the same order, phone and template
// in the same transaction: they fail as "superseded" and their text is wiped; a message that arrives
// after a newer one of its thread fails the same way at once.
//
// Concurrent Creates are committed together (pkg/batch): one round trip and one commit for all the
// messages that arrived while the previous batch was in flight.
func (s *Store) Create(ctx context.Context, m domain.Message) (domain.Message, bool, error) {
	r, err := s.creates.Do(ctx, m)
	if err != nil {
		return domain.Message{}, false, err
	}
	return r.msg, r.created, nil
}

type created struct {
	msg     domain.Message
	created bool
}

// createTimeout bounds one batch of Creates: it runs detached from any one caller's context.
const createTimeout = 15 * time.Second

// createBatch stores a batch of new messages in one statement: insert the new ids (the late ones
// FAILED at once), supersede older QUEUED messages of each thread, read every message of the batch
// back. A batch that fails as a whole (a deadlock
// with another replica, a lost connection) is retried message by message, so that one message's
// error is only its own.
func (s *Store) createBatch(ctx context.Context, ms []domain.Message) []batch.Result[created] {
	ctx, cancel := context.WithTimeout(ctx, createTimeout)
	defer cancel()
	return batch.AllOrEach(ctx, ms, nil, func(ctx context.Context, ms []domain.Message) ([]batch.Result[created], error) {
		return s.createAll(ctx, ms, false)
	}, s.createOne)
}

// createOne stores one message after its batch failed, retrying like pg.InTx.
func (s *Store) createOne(ctx context.Context, m domain.Message) batch.Result[created] {
	var r []batch.Result[created]
	err := pg.Retry(ctx, func() error {
		var err error
		r, err = s.createAll(ctx, []domain.Message{m}, true)
		return err
	})
	if err != nil {
		return batch.Result[created]{Err: err}
	}
	return r[0]
}

// retrying says the batch failed as a whole and this is its message-by-message retry.
func (s *Store) createAll(ctx context.Context, ms []domain.Message, retrying bool) ([]batch.Result[created], error) {
	n := len(ms)
	var (
		ids, orders, phones, templates, params, locales, bodies = make([]string, n), make([]string, n), make([]string, n),
			make([]string, n), make([]string, n), make([]string, n), make([]string, n)
		next, expire, at = make([]time.Time, n), make([]time.Time, n), make([]time.Time, n)
		seqs, attempts   = make([]int32, n), make([]int32, n)
	)
	for i, m := range ms {
		p, err := json.Marshal(m.Params)
		if err != nil {
			return nil, err
		}
		ids[i], orders[i], phones[i], templates[i], params[i], locales[i], bodies[i] =
			m.ID, m.OrderID, m.Phone, m.Template.String(), string(p), m.Locale, m.Body
		next[i], expire[i], at[i], seqs[i], attempts[i] = m.NextAttempt, m.ExpireAt, m.CreatedAt, int32(m.Sequence), int32(m.Attempts)
	}
	// One statement, one snapshot: an input is late when a newer message of its thread is stored or
	// is in this batch; it is stored FAILED at once and never goes out. Each stored QUEUED one
	// supersedes the older QUEUED ones of its thread, locked in message_id order as MarkSentAll locks
	// them, so that the two cannot deadlock. The answer is every input's row: the inserted
	// ones (RETURNING; the statement's own writes are invisible to its other parts) and the repeats
	// (a primary-key lookup each: a LATERAL the planner cannot flatten, whatever the statistics say).
	b := &pgx.Batch{}
	queueThreadLocks(b, ms)
	inserted := make(map[string]bool, n)
	stored := make(map[string]domain.Message, n)
	b.Queue(`WITH t AS MATERIALIZED (
			SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[], $6::text[], $7::text[],
				$8::timestamptz[], $9::timestamptz[], $10::timestamptz[], $11::integer[], $12::integer[])
				WITH ORDINALITY AS t(id, ord, phone, tpl, p, loc, body, nxt, exp, at, seq, att, n)
		), late AS (
			SELECT t.id FROM t WHERE t.ord <> '' AND (
				EXISTS (SELECT 1 FROM t o WHERE o.ord = t.ord AND o.phone = t.phone AND o.tpl = t.tpl
					AND o.id <> t.id AND o.seq > t.seq)
				OR EXISTS (SELECT 1 FROM (SELECT * FROM messages o WHERE o.order_id = t.ord AND o.phone = t.phone
					AND o.template = t.tpl AND o.message_id <> t.id AND o.sequence > t.seq OFFSET 0) o))
		), ins AS (
			INSERT INTO messages (message_id, order_id, phone, template, params, locale, body, state, attempts,
				next_attempt_at, expire_at, created_at, sequence, last_error, redacted)
			SELECT id, ord, phone, tpl, CASE WHEN l THEN '{}' ELSE p::jsonb END, loc, CASE WHEN l THEN NULL ELSE body END,
				CASE WHEN l THEN 'FAILED' ELSE 'QUEUED' END, att, nxt, exp, at, seq, CASE WHEN l THEN $13 ELSE '' END, l
			FROM (SELECT t.*, t.id IN (SELECT id FROM late) AS l FROM t) t
			ORDER BY n
			ON CONFLICT (message_id) DO NOTHING
			RETURNING `+columns+`
		), superseded AS (
			UPDATE messages SET state = 'FAILED', last_error = $13, body = NULL, params = '{}', redacted = true
			WHERE message_id IN (SELECT r.message_id FROM ins n
				JOIN messages r ON r.order_id = n.order_id AND r.phone = n.phone AND r.template = n.template
				WHERE n.order_id <> '' AND n.state = 'QUEUED' AND r.state = 'QUEUED' AND r.sequence < n.sequence
				ORDER BY r.message_id FOR UPDATE OF r)
			RETURNING message_id
		)
		SELECT true, false, `+columns+` FROM ins
		UNION ALL
		SELECT false, m.message_id IN (SELECT message_id FROM superseded), `+prefixed("m", columns)+` FROM t
			CROSS JOIN LATERAL (SELECT * FROM messages WHERE message_id = t.id OFFSET 0) m
			WHERE t.id NOT IN (SELECT message_id FROM ins)`,
		ids, orders, phones, templates, params, locales, bodies, next, expire, at, seqs, attempts, domain.ErrorSuperseded).
		Query(func(rows pgx.Rows) error {
			_, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (struct{}, error) {
				var own, superseded bool
				m, err := scanMessage(prefixedRow{r, []any{&own, &superseded}})
				if superseded {
					// A repeat this statement superseded: its lookup saw the row as it was before.
					m.MarkFailed(domain.ErrorSuperseded)
				}
				if err == nil {
					stored[m.ID], inserted[m.ID] = m, own
				}
				return struct{}{}, err
			})
			return err
		})
	// Without BEGIN, the statements of one batch run as one implicit transaction: all or nothing.
	if err := s.pool.SendBatch(ctx, b).Close(); err != nil {
		return nil, fmt.Errorf("create messages: %w", err)
	}
	// A repeat whose first insert was still in flight in another transaction when this statement
	// took its snapshot: ON CONFLICT waited for it, the lookup above could not see it. Read it now.
	var missing []string
	for _, id := range ids {
		if _, ok := stored[id]; !ok {
			missing = append(missing, id)
		}
	}
	if len(missing) > 0 {
		got, err := s.getAll(ctx, missing)
		if err != nil {
			return nil, fmt.Errorf("create messages: %w", err)
		}
		for _, m := range got {
			stored[m.ID] = m
		}
	}
	out := make([]batch.Result[created], n)
	for i, m := range ms {
		got, ok := stored[m.ID]
		switch {
		case !ok:
			// Cannot happen (it was read again above); a clear error rather than a zero message.
			out[i].Err = fmt.Errorf("create message: %s not found after insert", m.ID)
		case !domain.SameRequest(got, m):
			out[i].Err = errs.AlreadyExists(domain.ReasonMessageIDReused, "this message_id was already used for a different phone or template")
		default:
			// Only the first of several calls with one id in a batch created it. On the retry of a
			// batch that committed and then failed (a lost connection), a row stored claimed with
			// this call's own instant and lease is its own insert: its sender must still get it.
			own := inserted[m.ID] || (retrying && m.Attempts > 0 && got.CreatedAt.Equal(m.CreatedAt) &&
				got.Attempts == m.Attempts && got.NextAttempt.Equal(m.NextAttempt))
			out[i].Value = created{msg: got, created: own}
			inserted[m.ID] = false
		}
	}
	return out, nil
}

// queueThreadLocks queues, on b, a transaction lock on the thread (order, phone, template) of each
// message that has one, in sorted order so that two batches never wait for each other in a cycle.
// The create statement that follows takes its snapshot once they are held, so it sees every message
// of its threads that a concurrent create committed: one of two racing messages supersedes the other.
func queueThreadLocks(b *pgx.Batch, ms []domain.Message) {
	var keys []string
	for _, m := range ms {
		if m.OrderID != "" {
			// Two threads that spell the same key share a lock: harmless, they only wait for each other.
			keys = append(keys, m.OrderID+" "+m.Phone+" "+m.Template.String())
		}
	}
	if len(keys) == 0 {
		return
	}
	slices.Sort(keys)
	keys = slices.Compact(keys)
	b.Queue(`SELECT pg_advisory_xact_lock(hashtextextended('sms-thread ' || k, 0))
		FROM unnest($1::text[]) WITH ORDINALITY AS t(k, n) ORDER BY n`, keys)
}

// prefixedRow scans a row whose first columns, into first, precede the columns of a message.
type prefixedRow struct {
	pgx.Row
	first []any
}

func (r prefixedRow) Scan(dest ...any) error { return r.Row.Scan(append(r.first, dest...)...) }

// getAll returns the stored messages among ids, one primary-key lookup each.
func (s *Store) getAll(ctx context.Context, ids []string) ([]domain.Message, error) {
	rows, err := s.pool.Query(ctx, `SELECT `+prefixed("m", columns)+` FROM unnest($1::text[]) AS i(id)
		CROSS JOIN LATERAL (SELECT * FROM messages WHERE message_id = i.id OFFSET 0) m`, ids)
	if err != nil {
		return nil, err
	}
	return pgx.CollectRows(rows, func(r pgx.CollectableRow) (domain.Message, error) { return scanMessage(r) })
}

// Get returns one message, or NotFound.
func (s *Store) Get(ctx context.Context, id string) (domain.Message, error) {
	m, err := get(ctx, s.pool, id)
	if err != nil && errs.Reason(err) != domain.ReasonMessageNotFound {
		return domain.Message{}, fmt.Errorf("get message: %w", err)
	}
	return m, err
}

func get(ctx context.Context, q interface {
	QueryRow(context.Context, string, ...any) pgx.Row
}, id string) (domain.Message, error) {
	m, err := scanMessage(q.QueryRow(ctx, `SELECT `+columns+` FROM messages WHERE message_id = $1`, id))
	if pg.IsNoRows(err) {
		return domain.Message{}, errs.NotFound(domain.ReasonMessageNotFound, "no message with this message_id")
	}
	return m, err
}

// List returns a page of messages, newest first, optionally of one order, and the token of the next
// page ("" at the end). The token is opaque to callers: the position (created_at, message_id).
func (s *Store) List(ctx context.Context, orderID string, pageSize int, pageToken string) ([]domain.Message, string, error) {
	var (
		after   bool
		afterAt time.Time
		afterID string
	)
	if pageToken != "" {
		var err error
		afterAt, afterID, err = domain.DecodePageToken(pageToken, orderID)
		if err != nil {
			return nil, "", err
		}
		after = true
	}
	rows, err := s.pool.Query(ctx, `SELECT `+columns+` FROM messages
		WHERE ($1 = '' OR order_id = $1)
		  AND (NOT $2 OR (created_at, message_id) < ($3, $4))
		ORDER BY created_at DESC, message_id DESC
		LIMIT $5`, orderID, after, afterAt, afterID, pageSize+1)
	if err != nil {
		return nil, "", fmt.Errorf("list messages: %w", err)
	}
	msgs, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (domain.Message, error) { return scanMessage(r) })
	if err != nil {
		return nil, "", fmt.Errorf("list messages: %w", err)
	}
	next := ""
	if len(msgs) > pageSize {
		msgs = msgs[:pageSize]
		last := msgs[len(msgs)-1]
		next = domain.EncodePageToken(last.CreatedAt, last.ID, orderID)
	}
	return msgs, next, nil
}

// Claim takes up to limit due QUEUED messages for this worker: it hides them until now+lease (so a
// crashed worker's messages come back) and counts the attempt. Concurrent workers never claim the
// same row (SKIP LOCKED). The returned Attempts is the fencing token for the later updates.
func (s *Store) Claim(ctx context.Context, now time.Time, lease time.Duration, limit int) ([]domain.Message, error) {
	rows, err := s.pool.Query(ctx, `
		WITH due AS (
			SELECT message_id FROM messages
			WHERE state = 'QUEUED' AND next_attempt_at <= $1
			ORDER BY next_attempt_at, message_id
			LIMIT $2
			FOR UPDATE SKIP LOCKED
		)
		UPDATE messages m SET next_attempt_at = $1 + $3::interval, attempts = m.attempts + 1
		FROM due WHERE m.message_id = due.message_id
		RETURNING `+prefixed("m", columns), now, limit, lease)
	if err != nil {
		return nil, fmt.Errorf("claim messages: %w", err)
	}
	msgs, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (domain.Message, error) { return scanMessage(r) })
	if err != nil {
		return nil, fmt.Errorf("claim messages: %w", err)
	}
	return msgs, nil
}

func prefixed(alias, cols string) string {
	parts := strings.Split(cols, ",")
	for i, p := range parts {
		parts[i] = alias + "." + strings.TrimSpace(p)
	}
	return strings.Join(parts, ", ")
}

// Reserve decides, for a claimed message m, whether the per-phone caps let it go at now, and acts on
// the decision in the same transaction. It first re-reads the message under a row lock and answers
// ActionLostClaim, without touching anything, unless the claim is still current and its lease covers
// a provider call of sendTimeout (domain.ClaimCurrent): a stalled worker whose message another worker
// reclaimed must not call the provider too. ActionSend records the send in the phone's log (the slot is
// reserved before the provider is called), ActionReschedule moves the message to the next allowed
// instant (the cap wait does not use up an attempt), ActionFail ends it. A transaction-scoped
// advisory lock on the phone serialises the count-and-insert, so two workers cannot both pass a cap.
func (s *Store) Reserve(ctx context.Context, m domain.Message, now time.Time, caps domain.Caps, sendTimeout time.Duration) (domain.Decision, error) {
	var d domain.Decision
	err := pg.InTx(ctx, s.pool, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, `SELECT pg_advisory_xact_lock(hashtext($1))`, m.Phone); err != nil {
			return err
		}
		// The same predicate as domain.ClaimCurrent; FOR UPDATE holds the row until the reservation commits.
		var current bool
		err := tx.QueryRow(ctx, `SELECT true FROM messages
			WHERE message_id = $1 AND state = 'QUEUED' AND attempts = $2 AND next_attempt_at >= $3::timestamptz + $4::interval
			FOR UPDATE`, m.ID, m.Attempts, now, sendTimeout).Scan(&current)
		if pg.IsNoRows(err) {
			d = domain.Decision{Action: domain.ActionLostClaim}
			return nil
		}
		if err != nil {
			return err
		}
		// Sends older than the longest window never count again; dropping them here keeps the log small.
		if _, err := tx.Exec(ctx, `DELETE FROM phone_sends WHERE phone = $1 AND sent_at <= $2`,
			m.Phone, now.Add(-domain.CapWindow)); err != nil {
			return err
		}
		// The message's own earlier reservation (a crash after reserving) is the same SMS, not another one.
		rows, err := tx.Query(ctx, `SELECT sent_at FROM phone_sends WHERE phone = $1 AND sent_at > $2 AND message_id <> $3`,
			m.Phone, now.Add(-domain.CapWindow), m.ID)
		if err != nil {
			return err
		}
		sends, err := pgx.CollectRows(rows, pgx.RowTo[time.Time])
		if err != nil {
			return err
		}
		d = domain.Decide(now, m.ExpireAt, caps, sends)
		switch d.Action {
		case domain.ActionSend:
			_, err = tx.Exec(ctx, `INSERT INTO phone_sends (message_id, phone, sent_at) VALUES ($1, $2, $3)
				ON CONFLICT (message_id) DO UPDATE SET sent_at = EXCLUDED.sent_at, phone = EXCLUDED.phone`, m.ID, m.Phone, now)
		case domain.ActionReschedule:
			_, err = tx.Exec(ctx, `UPDATE messages SET next_attempt_at = $3, attempts = attempts - 1
				WHERE message_id = $1 AND state = 'QUEUED' AND attempts = $2`, m.ID, m.Attempts, d.At)
		case domain.ActionFail:
			_, err = tx.Exec(ctx, failSQL, m.ID, m.Attempts, d.Error)
		}
		return err
	})
	if err != nil {
		return domain.Decision{}, fmt.Errorf("reserve send slot: %w", err)
	}
	return d, nil
}

// failSQL ends a claimed message and wipes its code (domain.Message.MarkFailed).
const failSQL = `UPDATE messages SET state = 'FAILED', last_error = $3, body = NULL, params = '{}', redacted = true
	WHERE message_id = $1 AND state = 'QUEUED' AND attempts = $2`

// MarkSent records the provider's acceptance of the claim m (fenced by its attempts) and, in the same
// update, redacts the message unless keepText (development mode): the text with the code is kept only
// until the provider has it. It reports false if the claim was no longer current.
func (s *Store) MarkSent(ctx context.Context, m domain.Message, provider string, now time.Time, keepText bool) (bool, error) {
	tag, err := s.pool.Exec(ctx, `UPDATE messages SET state = 'SENT', provider = $3, sent_at = $4, last_error = '',
			body = CASE WHEN $5::boolean THEN body END, params = CASE WHEN $5 THEN params ELSE '{}' END, redacted = NOT $5
		WHERE message_id = $1 AND state = 'QUEUED' AND attempts = $2`, m.ID, m.Attempts, provider, now, keepText)
	if err != nil {
		return false, fmt.Errorf("mark sent: %w", err)
	}
	return tag.RowsAffected() == 1, nil
}

// MarkSentAll is MarkSent for several claims in one statement: it records the acceptance of each
// claim still current (fenced by its attempts) and returns their ids. The rows are locked in
// message_id order, as Create locks them, so that it cannot deadlock with a concurrent supersede.
func (s *Store) MarkSentAll(ctx context.Context, ms []domain.Message, provider string, now time.Time, keepText bool) ([]string, error) {
	if len(ms) == 1 {
		ok, err := s.MarkSent(ctx, ms[0], provider, now, keepText)
		if err != nil || !ok {
			return nil, err
		}
		return []string{ms[0].ID}, nil
	}
	ids := make([]string, len(ms))
	attempts := make([]int32, len(ms))
	for i, m := range ms {
		ids[i], attempts[i] = m.ID, int32(m.Attempts)
	}
	// FOR UPDATE of the LATERAL subquery locks inside each per-id lookup, in the order of the ids:
	// they are sorted first (by the database's collation, as Create's ORDER BY message_id).
	rows, err := s.pool.Query(ctx, `
		WITH claimed AS (
			SELECT m.message_id FROM (SELECT * FROM unnest($1::text[], $2::integer[]) AS c(message_id, attempts)
				ORDER BY message_id) c
			CROSS JOIN LATERAL (SELECT * FROM messages WHERE message_id = c.message_id OFFSET 0) m
			WHERE m.attempts = c.attempts AND m.state = 'QUEUED'
			ORDER BY m.message_id
			FOR UPDATE OF m
		)
		UPDATE messages m SET state = 'SENT', provider = $3, sent_at = $4, last_error = '',
			body = CASE WHEN $5::boolean THEN m.body END, params = CASE WHEN $5 THEN m.params ELSE '{}' END, redacted = NOT $5
		FROM claimed WHERE m.message_id = claimed.message_id
		RETURNING m.message_id`, ids, attempts, provider, now, keepText)
	if err != nil {
		return nil, fmt.Errorf("mark sent: %w", err)
	}
	done, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return nil, fmt.Errorf("mark sent: %w", err)
	}
	return done, nil
}

// SendFailed records a provider error on the claim with the given attempts: it gives the reserved
// cap slot back (nothing reached the phone) and either schedules a retry at retryAt or, when final,
// fails the message. It reports false if the claim was no longer current.
func (s *Store) SendFailed(ctx context.Context, m domain.Message, reservedAt time.Time, provider, lastErr string,
	final bool, retryAt time.Time) (bool, error) {
	var ok bool
	err := pg.InTx(ctx, s.pool, func(tx pgx.Tx) error {
		var tag pgconn.CommandTag
		var err error
		if final {
			tag, err = tx.Exec(ctx, failSQL, m.ID, m.Attempts, lastErr)
		} else {
			tag, err = tx.Exec(ctx, `UPDATE messages SET next_attempt_at = $3, last_error = $4, provider = $5
				WHERE message_id = $1 AND state = 'QUEUED' AND attempts = $2`, m.ID, m.Attempts, retryAt, lastErr, provider)
		}
		if err != nil {
			return err
		}
		// Only the current claim gives its slot back: a stale one's reservation is not its own.
		if ok = tag.RowsAffected() == 1; !ok {
			return nil
		}
		_, err = tx.Exec(ctx, `DELETE FROM phone_sends WHERE message_id = $1 AND sent_at = $2`, m.ID, reservedAt)
		return err
	})
	if err != nil {
		return false, fmt.Errorf("record send failure: %w", err)
	}
	return ok, nil
}

// Fail ends a claimed message without calling the provider (nothing to send).
func (s *Store) Fail(ctx context.Context, m domain.Message, lastErr string) error {
	if _, err := s.pool.Exec(ctx, failSQL, m.ID, m.Attempts, lastErr); err != nil {
		return fmt.Errorf("fail message: %w", err)
	}
	return nil
}
