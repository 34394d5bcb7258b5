package store

import (
	"context"
	"fmt"
	"slices"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/icpverify/icpverify/pkg/batch"
	"github.com/icpverify/icpverify/pkg/errs"
	"github.com/icpverify/icpverify/pkg/pg"

	"github.com/icpverify/icpverify/services/sms-dispatch/internal/domain"
)

// createFlights is how many batches of Creates may be in flight at once: while they run, the next
// Creates queue up and go together. A batch spends most of its time waiting for its commit to reach
// the disk, so several in flight keep the database busy (PostgreSQL flushes their commits together).
const createFlights = 2

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

// createBatch stores a batch of new messages in one statement (Create in queries.sql): insert the
// new ids (the late ones FAILED at once), supersede older QUEUED messages of each thread, read every
// message of the batch back. A batch that fails as a whole (a deadlock
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
		ids, orders, phones, templates, keyIDs, locales = make([]string, n), make([]string, n), make([]string, n),
			make([]string, n), make([]string, n), make([]string, n)
		texts            = make([][]byte, n)
		next, expire, at = make([]time.Time, n), make([]time.Time, n), make([]time.Time, n)
		seqs, attempts   = make([]int32, n), make([]int32, n)
	)
	for i, m := range ms {
		sealed, kid, err := s.sealText(m)
		if err != nil {
			return nil, err
		}
		ids[i], orders[i], phones[i], templates[i], keyIDs[i], locales[i], texts[i] =
			m.ID, m.OrderID, m.Phone, m.Template.String(), kid, m.Locale, sealed
		next[i], expire[i], at[i], seqs[i], attempts[i] = m.NextAttempt, m.ExpireAt, m.CreatedAt, int32(m.Sequence), int32(m.Attempts)
	}
	inserted := make(map[string]bool, n)
	stored := make(map[string]domain.Message, n)
	// One round trip (pg.Pipeline without reads): BEGIN, the locks, the statement, COMMIT.
	err := pg.Pipeline(ctx, s.pool, nil, func(b *pgx.Batch) error {
		queueThreadLocks(b, ms)
		b.Queue(queries.Create, ids, orders, phones, templates, keyIDs, locales, texts, next, expire, at, seqs, attempts, domain.ErrorSuperseded).
			Query(func(rows pgx.Rows) error {
				_, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (struct{}, error) {
					var own, superseded bool
					m, err := s.scanMessage(prefixedRow{r, []any{&own, &superseded}})
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
		return nil
	})
	if err != nil {
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
// message that has one (LockThreads), in sorted order.
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
	b.Queue(queries.LockThreads, keys)
}
