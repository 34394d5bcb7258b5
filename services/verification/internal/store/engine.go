package store

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"time"

	"github.com/jackc/pgx/v5"
	"google.golang.org/protobuf/proto"

	"github.com/icpverify/icpverify/pkg/idempotency"
	"github.com/icpverify/icpverify/pkg/outbox"
	"github.com/icpverify/icpverify/pkg/pg"
	"github.com/icpverify/icpverify/services/verification/internal/app"
	"github.com/icpverify/icpverify/services/verification/internal/domain"
)

// The use cases of package app run here: lock, load, let the use case decide on a copy, write the
// difference. Sessions are locked in id order and a challenge is only written under its session's
// lock, like every other writer (Verify, CloseIfIncomplete), so no two transactions wait in a cycle.

var _ app.Engine = (*Store)(nil)

// UpdateOrder runs fn on the locked sessions of an order (see app.Engine).
func (s *Store) UpdateOrder(ctx context.Context, op app.Op, orderID string, fn app.OrderFunc) (proto.Message, error) {
	enqueued := false
	resp, err := idempotency.Do(ctx, s.pool, s.clock.Now(), op.Method, op.RequestID, op.Req, op.NewAnswer,
		func(tx pgx.Tx) (proto.Message, error) {
			enqueued = false
			if err := lockOrder(ctx, tx, orderID); err != nil {
				return nil, err
			}
			before, err := loadOrderSessions(ctx, tx, orderID, true)
			if err != nil {
				return nil, err
			}
			fails, err := s.loadPhoneFailures(ctx, tx, op.Phones)
			if err != nil {
				return nil, err
			}
			now := s.clock.Now() // after the locks: a change that waited for another records a later time
			o := cloneOrderSessions(before)
			o.PhoneFailures = fails
			ch, err := fn(&o, now)
			if err != nil {
				return nil, err
			}
			b := &pgx.Batch{}
			queueOrderChanges(b, now, before, o)
			if err := tx.SendBatch(ctx, b).Close(); err != nil {
				return nil, fmt.Errorf("update sessions: %w", err)
			}
			if err := outbox.EnqueueAll(ctx, tx, s.keys, now, ch.Messages); err != nil {
				return nil, err
			}
			enqueued = len(ch.Messages) > 0
			return ch.Answer, nil
		})
	if err != nil {
		return nil, err
	}
	if enqueued {
		s.wake()
	}
	return resp, nil
}

// UpdatePhone runs fn on the locked pending challenges of a phone (see app.Engine). Not
// idempotency.Do: a change answered with an error must still commit, which Do would roll back; the
// lookup and the save run in this one transaction instead.
func (s *Store) UpdatePhone(ctx context.Context, op app.Op, phone string, fn app.PhoneFunc) (proto.Message, error) {
	if err := idempotency.CheckRequestID(op.RequestID); err != nil {
		return nil, err
	}
	var (
		resp      proto.Message
		answerErr error
		enqueued  bool
	)
	err := pg.InTx(ctx, s.pool, func(tx pgx.Tx) error {
		resp, answerErr, enqueued = nil, nil, false
		sessions, chs, tails, err := lockPhone(ctx, tx, phone)
		if err != nil {
			return err
		}
		// Twins of one request_id queue on the row locks above, so this lookup sees the first one's answer.
		prev := op.NewAnswer()
		if found, err := idempotency.Lookup(ctx, tx, op.Method, op.RequestID, op.Req, prev); err != nil || found {
			resp = prev
			return err
		}
		fails, err := s.loadPhoneFailures(ctx, tx, []string{phone})
		if err != nil {
			return err
		}
		now := s.clock.Now()
		p := domain.PhoneChallenges{Phone: phone, Sessions: maps.Clone(sessions), Challenges: slices.Clone(chs), Tails: tails,
			Failures: slices.Clone(fails[phone])}
		ch, err := fn(&p, now)
		if err != nil {
			return err
		}
		b := &pgx.Batch{}
		for i, c := range p.Challenges {
			if domain.ChallengeChanged(chs[i], c) {
				queueUpdateChallenge(b, c)
			}
		}
		for id, sess := range p.Sessions {
			if sess.State != sessions[id].State {
				queueSessionState(b, now, sess)
			}
		}
		var counted failureRows
		for _, f := range p.Failures[len(fails[phone]):] {
			counted.add(s, phone, f)
		}
		counted.queue(s, b, now)
		if err := tx.SendBatch(ctx, b).Close(); err != nil {
			return fmt.Errorf("update challenges: %w", err)
		}
		if err := outbox.EnqueueAll(ctx, tx, s.keys, now, ch.Messages); err != nil {
			return err
		}
		enqueued = len(ch.Messages) > 0
		if ch.Err != nil {
			answerErr = ch.Err
			return nil
		}
		resp = ch.Answer
		return idempotency.Save(ctx, tx, now, op.Method, op.RequestID, op.Req, resp)
	})
	if err != nil {
		return nil, err
	}
	if enqueued {
		s.wake()
	}
	if answerErr != nil {
		return nil, answerErr
	}
	return resp, nil
}

// OrderSessions reads the sessions of an order (see app.Engine).
func (s *Store) OrderSessions(ctx context.Context, orderID string) (domain.OrderSessions, error) {
	var o domain.OrderSessions
	err := pg.InTx(ctx, s.pool, func(tx pgx.Tx) error {
		var err error
		o, err = loadOrderSessions(ctx, tx, orderID, false)
		return err
	})
	return o, err
}

// lockOrder serialises the changes of one order's sessions, including the case where no session row
// exists yet to lock.
func lockOrder(ctx context.Context, tx pgx.Tx, orderID string) error {
	_, err := tx.Exec(ctx, queries.LockOrder, orderID)
	return err
}

// loadOrderSessions reads the sessions of an order with their challenges; forUpdate locks the
// sessions, in id order, to the end of tx.
func loadOrderSessions(ctx context.Context, tx pgx.Tx, orderID string, forUpdate bool) (domain.OrderSessions, error) {
	o := domain.OrderSessions{OrderID: orderID}
	sql := queries.OrderSessions
	if forUpdate {
		sql = queries.OrderSessionsForUpdate
	}
	rows, err := tx.Query(ctx, sql, orderID)
	if err != nil {
		return o, fmt.Errorf("load sessions: %w", err)
	}
	sessions, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (domain.Session, error) { return scanOrderSession(r) })
	if err != nil || len(sessions) == 0 {
		return o, err
	}
	ids := make([]string, len(sessions))
	for i, sess := range sessions {
		ids[i] = sess.ID
	}
	chs, err := collectChallenges(tx.Query(ctx, queries.SessionChallenges, ids))
	if err != nil {
		return o, fmt.Errorf("load challenges: %w", err)
	}
	for _, sess := range sessions {
		rec := domain.SessionRecord{Session: sess}
		for _, c := range chs {
			if c.SessionID == sess.ID {
				rec.Challenges = append(rec.Challenges, c)
			}
		}
		o.Sessions = append(o.Sessions, rec)
	}
	return o, nil
}

func cloneOrderSessions(o domain.OrderSessions) domain.OrderSessions {
	o.Sessions = slices.Clone(o.Sessions)
	for i := range o.Sessions {
		o.Sessions[i].Challenges = slices.Clone(o.Sessions[i].Challenges)
	}
	return o
}

// queueOrderChanges queues what o has beyond before: new sessions with their challenges and ID-tail
// hashes, changed session states and changed challenges.
func queueOrderChanges(b *pgx.Batch, now time.Time, before, o domain.OrderSessions) {
	old := map[string]domain.SessionRecord{}
	for _, r := range before.Sessions {
		old[r.ID] = r
	}
	for _, r := range o.Sessions {
		prev, exists := old[r.ID]
		if !exists {
			queueInsertSession(b, now, r)
			continue
		}
		if r.State != prev.State {
			queueSessionState(b, now, r.Session)
		}
		if !r.AutoResentAt.Equal(prev.AutoResentAt) {
			b.Queue(queries.SetAutoResent, r.ID, r.AutoResentAt)
		}
		for i, c := range r.Challenges {
			if domain.ChallengeChanged(prev.Challenges[i], c) {
				queueUpdateChallenge(b, c)
			}
		}
	}
}

func queueInsertSession(b *pgx.Batch, now time.Time, r domain.SessionRecord) {
	var closedAt *time.Time
	if r.State != domain.SessionOpen {
		closedAt = &now
	}
	b.Queue(queries.InsertSession, r.ID, r.OrderID, r.Submission, string(r.State), r.DeadlineAt, r.Locale,
		r.CreatedAt, closedAt, r.Tenant)
	for _, c := range r.Challenges {
		b.Queue(queries.InsertChallenge, c.ID, c.SessionID, c.VerifierID, c.Phone, c.Roles, c.CodeHash, c.CodeKeyID, c.Generation, c.LastSentAt, string(c.State), c.LinkHash)
		for _, t := range r.Tails[c.ID] {
			b.Queue(queries.InsertTail, c.ID, t.KeyID, t.Hash)
		}
	}
}

// queueSessionState records a session's new state; every state but OPEN is final, so it closes it.
func queueSessionState(b *pgx.Batch, now time.Time, sess domain.Session) {
	b.Queue(queries.SetSessionState, sess.ID, string(sess.State), now)
}

// queueUpdateChallenge writes a challenge's changed fields. A new code hash replaces the old one in
// this transaction: from its commit on, only the new code passes.
func queueUpdateChallenge(b *pgx.Batch, c domain.Challenge) {
	b.Queue(queries.UpdateChallenge, c.ID, c.CodeHash, c.CodeKeyID, c.Generation, c.Failed, c.ResendsUsed, c.LastSentAt, string(c.State), c.PassedAt,
		c.LinkHash, string(c.Delivery))
}
