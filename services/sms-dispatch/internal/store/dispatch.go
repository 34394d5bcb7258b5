package store

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/icpverify/icpverify/pkg/clock"
	"github.com/icpverify/icpverify/pkg/pg"

	"github.com/icpverify/icpverify/services/sms-dispatch/internal/domain"
)

// Claim takes up to limit due QUEUED messages for this worker: it hides them until now+lease (so a
// crashed worker's messages come back) and counts the attempt. Concurrent workers never claim the
// same row (SKIP LOCKED). The returned Attempts is the fencing token for the later updates.
func (s *Store) Claim(ctx context.Context, now time.Time, lease time.Duration, limit int) ([]domain.Message, error) {
	rows, err := s.pool.Query(ctx, queries.Claim, now, limit, lease)
	if err != nil {
		return nil, fmt.Errorf("claim messages: %w", err)
	}
	msgs, err := s.collectMessages(rows)
	if err != nil {
		return nil, fmt.Errorf("claim messages: %w", err)
	}
	return msgs, nil
}

// Reserve decides, for a claimed message m, whether the per-phone caps let it go now, and acts on
// the decision in the same transaction; at is the instant it decided at (microseconds, as stored),
// by which SendFailed finds the reservation. A transaction-scoped advisory lock on the phone
// serialises the count-and-insert, so two workers cannot both pass a cap; the message's row lock
// holds it until the reservation commits. The clock is read after both: a reservation that waited
// for another one of its phone is dated after it, so the phone's log stays in lock order and the
// caps count what was really sent before. Reserve answers ActionLostClaim, without touching
// anything, unless the claim is still current and its lease covers a provider call of sendTimeout
// (domain.ClaimCurrent): a stalled worker whose message another worker reclaimed must not call the
// provider too. ActionSend records the send in the phone's log (the slot is reserved before the
// provider is called), ActionReschedule moves the message to the next allowed instant (the cap
// wait does not use up an attempt), ActionFail ends it.
func (s *Store) Reserve(ctx context.Context, m domain.Message, caps domain.Caps, sendTimeout time.Duration) (d domain.Decision,
	at time.Time, err error) {
	reported := false
	err = pg.InTx(ctx, s.pool, func(tx pgx.Tx) error {
		reported = false
		if _, err := tx.Exec(ctx, queries.LockPhone, m.Phone); err != nil {
			return err
		}
		var stored domain.Message
		var state string
		err := tx.QueryRow(ctx, queries.LockClaim, m.ID).Scan(&state, &stored.Attempts, &stored.NextAttempt)
		if err != nil && !pg.IsNoRows(err) {
			return err
		}
		stored.State = domain.State(state)
		now := clock.Micro(s.clock) // as PostgreSQL stores it
		at = now
		if pg.IsNoRows(err) || !domain.ClaimCurrent(stored, m.Attempts, now, sendTimeout) {
			d = domain.Decision{Action: domain.ActionLostClaim}
			return nil
		}
		// Sends older than the longest window never count again; dropping them here keeps the log small.
		if _, err := tx.Exec(ctx, queries.DropOldSends, m.Phone, now.Add(-domain.CapWindow)); err != nil {
			return err
		}
		// The message's own earlier reservation (a crash after reserving) is the same SMS, not another one.
		rows, err := tx.Query(ctx, queries.RecentSends, m.Phone, now.Add(-domain.CapWindow), m.ID)
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
			_, err = tx.Exec(ctx, queries.ReserveSend, m.ID, m.Phone, now)
		case domain.ActionReschedule:
			_, err = tx.Exec(ctx, queries.Reschedule, m.ID, m.Attempts, d.At)
		case domain.ActionFail:
			if _, err = tx.Exec(ctx, queries.Fail, m.ID, m.Attempts, d.Error); err == nil {
				reported, err = reportFailed(ctx, tx, now, m, d.Error)
			}
		}
		return err
	})
	if err != nil {
		return domain.Decision{}, time.Time{}, fmt.Errorf("reserve send slot: %w", err)
	}
	if reported {
		s.wake()
	}
	return d, at, nil
}

// MarkSent records the provider's acceptance of the claim m (fenced by its attempts), with the
// provider's ids of it (m.ProviderIDs), and, in the same update, redacts the message unless keepText
// (development mode) or it may be redelivered (SetRedelivery; domain.Redelivery.Redeliverable): the
// text with the code is kept only until the provider has it, or, for a redelivery, until the message
// is final. It reports false if the claim was no longer current.
func (s *Store) MarkSent(ctx context.Context, m domain.Message, provider string, now time.Time, keepText bool) (bool, error) {
	ids, err := s.MarkSentAll(ctx, []domain.Message{m}, provider, now, keepText)
	return len(ids) == 1, err
}

// MarkSentAll is MarkSent for several claims in one statement: it records the acceptance of each
// claim still current (fenced by its attempts) and returns their ids. The rows are locked in
// message_id order, as Create locks them, so that it cannot deadlock with a concurrent supersede.
// A receipt that came before the mark (parked) is applied right after it (applyParked).
func (s *Store) MarkSentAll(ctx context.Context, ms []domain.Message, provider string, now time.Time, keepText bool) ([]string, error) {
	ids := make([]string, len(ms))
	attempts := make([]int32, len(ms))
	pids := make([]string, len(ms))
	for i, m := range ms {
		ids[i], attempts[i] = m.ID, int32(m.Attempts)
		b, err := json.Marshal(append([]string{}, m.ProviderIDs...))
		if err != nil {
			return nil, fmt.Errorf("mark sent: %w", err)
		}
		pids[i] = string(b)
	}
	tries, providers := 0, []string{}
	if s.redelivery.On() {
		tries, providers = s.redelivery.Tries, s.redelivery.Providers
	}
	rows, err := s.pool.Query(ctx, queries.MarkSentAll, ids, attempts, provider, now, keepText, pids, tries, providers)
	if err != nil {
		return nil, fmt.Errorf("mark sent: %w", err)
	}
	type marked struct {
		id     string
		parked bool
	}
	done, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (marked, error) {
		var m marked
		return m, r.Scan(&m.id, &m.parked)
	})
	if err != nil {
		return nil, fmt.Errorf("mark sent: %w", err)
	}
	out := make([]string, len(done))
	for i, d := range done {
		out[i] = d.id
		if d.parked {
			// Rare (a receipt overtook the mark); the sweep retries one a failure here leaves behind.
			if err := s.applyParked(ctx, d.id); err != nil {
				return out, fmt.Errorf("apply parked receipt: %w", err)
			}
		}
	}
	return out, nil
}

// SendFailed records a provider error on the claim with the given attempts: it gives the reserved
// cap slot back (nothing reached the phone) and either schedules a retry at retryAt or, when final,
// fails the message. It reports false if the claim was no longer current.
func (s *Store) SendFailed(ctx context.Context, m domain.Message, reservedAt time.Time, provider, lastErr string,
	final bool, retryAt time.Time) (bool, error) {
	var ok, reported bool
	err := pg.InTx(ctx, s.pool, func(tx pgx.Tx) error {
		reported = false
		var tag pgconn.CommandTag
		var err error
		if final {
			tag, err = tx.Exec(ctx, queries.Fail, m.ID, m.Attempts, lastErr)
		} else {
			tag, err = tx.Exec(ctx, queries.Retry, m.ID, m.Attempts, retryAt, lastErr, provider)
		}
		if err != nil {
			return err
		}
		// Only the current claim gives its slot back: a stale one's reservation is not its own.
		if ok = tag.RowsAffected() == 1; !ok {
			return nil
		}
		if _, err = tx.Exec(ctx, queries.ReleaseSend, m.ID, reservedAt); err != nil || !final {
			return err
		}
		reported, err = reportFailed(ctx, tx, s.clock.Now(), m, lastErr)
		return err
	})
	if err != nil {
		return false, fmt.Errorf("record send failure: %w", err)
	}
	if reported {
		s.wake()
	}
	return ok, nil
}

// Fail ends a claimed message without calling the provider (nothing to send, or expired with the
// caps off) and, in the same transaction, writes the delivery report it owes.
func (s *Store) Fail(ctx context.Context, m domain.Message, lastErr string) error {
	reported := false
	err := pg.InTx(ctx, s.pool, func(tx pgx.Tx) error {
		tag, err := tx.Exec(ctx, queries.Fail, m.ID, m.Attempts, lastErr)
		if err != nil || tag.RowsAffected() != 1 { // a stale claim: the message is another's to end
			reported = false
			return err
		}
		reported, err = reportFailed(ctx, tx, s.clock.Now(), m, lastErr)
		return err
	})
	if err != nil {
		return fmt.Errorf("fail message: %w", err)
	}
	if reported {
		s.wake()
	}
	return nil
}
