package store

import (
	"context"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/icpverify/icpverify/pkg/outbox"
	"github.com/icpverify/icpverify/pkg/pg"
	"github.com/icpverify/icpverify/services/sms-dispatch/internal/convert"
	"github.com/icpverify/icpverify/services/sms-dispatch/internal/domain"
)

// RecordReceipt applies a carrier's receipt (domain.ApplyReceipt) and tells what it did. The message
// is the one the provider knows by r.ProviderID, else the one r.MessageID names (if the provider
// sent it, or it is not sent yet); it is locked, so concurrent receipts for it apply one after the
// other, and a new DELIVERED or UNDELIVERED writes its report to verification in the same
// transaction, or, for a redeliverable message, an UNDELIVERED queues it again instead (redeliver).
// A receipt of a provider a redelivery barred from the message is an earlier provider's
// (domain.ApplyEarlierReceipt). A receipt for a message not yet SENT, or for ids no message has,
// is parked.
func (s *Store) RecordReceipt(ctx context.Context, r domain.Receipt) (domain.ReceiptOutcome, error) {
	var out domain.ReceiptOutcome
	reported := false
	err := pg.InTx(ctx, s.pool, func(tx pgx.Tx) error {
		reported = false
		id := ""
		if r.ProviderID != "" {
			if err := tx.QueryRow(ctx, queries.FindProviderID, r.Provider, r.ProviderID).Scan(&id); err != nil && !pg.IsNoRows(err) {
				return err
			}
		}
		if id == "" {
			id = r.MessageID
		}
		var m domain.Message
		found := false
		if id != "" {
			var err error
			m, err = s.scanMessage(tx.QueryRow(ctx, queries.LockMessage, id))
			if err != nil && !pg.IsNoRows(err) {
				return err
			}
			if err == nil && (m.State == domain.StateQueued || m.Provider != r.Provider) {
				var barred bool
				if err := tx.QueryRow(ctx, queries.Barred, m.ID, r.Provider).Scan(&barred); err != nil {
					return err
				}
				if barred {
					out, reported, err = applyEarlierReceipt(ctx, tx, &m, r)
					return err
				}
			}
			// Our message id in a receipt counts only for the provider that sent it.
			found = err == nil && (m.State == domain.StateQueued || m.Provider == r.Provider)
		}
		if !found {
			out = domain.ReceiptUnknown
			_, err := tx.Exec(ctx, queries.Park, r.Provider, domain.ParkKey(r), r.Delivered, domain.ReceiptCode(r.Code), r.At)
			return err
		}
		var err error
		out, reported, err = applyReceipt(ctx, tx, &m, r)
		return err
	})
	if err != nil {
		return "", fmt.Errorf("record receipt: %w", err)
	}
	if reported {
		s.wake()
	}
	return out, nil
}

// applyReceipt applies r to the locked message m inside tx: the new state and its report, or r parked.
func applyReceipt(ctx context.Context, tx pgx.Tx, m *domain.Message, r domain.Receipt) (domain.ReceiptOutcome, bool, error) {
	out := domain.ApplyReceipt(m, r)
	switch out {
	case domain.ReceiptParked:
		_, err := tx.Exec(ctx, queries.Park, r.Provider, domain.ParkKey(r), r.Delivered, domain.ReceiptCode(r.Code), r.At)
		return out, false, err
	case domain.ReceiptApplied:
		return settle(ctx, tx, m, r.At)
	}
	return out, false, nil
}

// settle records the state a receipt just gave the locked message m (at now) and writes its report,
// unless an UNDELIVERED m is redelivered instead.
func settle(ctx context.Context, tx pgx.Tx, m *domain.Message, now time.Time) (domain.ReceiptOutcome, bool, error) {
	if m.State == domain.StateUndelivered {
		if again, err := redeliver(ctx, tx, *m, now); err != nil || again {
			return domain.ReceiptRedelivered, false, err
		}
	}
	if _, err := tx.Exec(ctx, queries.SetDelivery, m.ID, string(m.State), m.DeliveryCode, m.ReceiptAt); err != nil {
		return domain.ReceiptApplied, false, err
	}
	reported, err := report(ctx, tx, now, *m)
	return domain.ReceiptApplied, reported, err
}

// report writes the report m's new state owes verification, if any (convert.DeliveryReport).
func report(ctx context.Context, tx pgx.Tx, now time.Time, m domain.Message) (bool, error) {
	msg, ok := convert.DeliveryReport(m)
	if !ok {
		return false, nil
	}
	return true, outbox.EnqueueAll(ctx, tx, nil, now, []outbox.Message{msg})
}

// applyParked applies the earliest receipt parked for the message id (just marked SENT) and drops
// the rest: once one is final, they can change nothing (domain.ApplyReceipt).
func (s *Store) applyParked(ctx context.Context, id string) error {
	reported := false
	err := pg.InTx(ctx, s.pool, func(tx pgx.Tx) error {
		reported = false
		m, err := s.scanMessage(tx.QueryRow(ctx, queries.LockMessage, id))
		if err != nil {
			return err
		}
		rows, err := tx.Query(ctx, queries.TakeParked, m.Provider, domain.ParkKeys(m))
		if err != nil {
			return err
		}
		parked, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (domain.Receipt, error) {
			r := domain.Receipt{Provider: m.Provider, MessageID: m.ID}
			err := row.Scan(&r.Delivered, &r.Code, &r.At)
			r.At = r.At.UTC()
			return r, err
		})
		if err != nil || len(parked) == 0 {
			return err
		}
		first := parked[0]
		for _, r := range parked[1:] {
			if r.At.Before(first.At) {
				first = r
			}
		}
		if domain.ApplyReceipt(&m, first) != domain.ReceiptApplied {
			return nil
		}
		_, reported, err = settle(ctx, tx, &m, first.At)
		return err
	})
	if err == nil && reported {
		s.wake()
	}
	return err
}

// MarkAtRisk is the AT_RISK sweep: up to limit messages SENT at or before sentBefore without a
// receipt become AT_RISK, their reports written in the same transaction, or, when redeliverable
// (domain.RedeliverNow), are queued again for the next provider, reporting nothing. It also applies
// receipts a crash left parked for sent messages and drops parked receipts older than
// domain.ParkedReceiptTTL before now. It returns how many messages it took, of each kind.
func (s *Store) MarkAtRisk(ctx context.Context, now, sentBefore time.Time, limit int) (domain.Swept, error) {
	var n domain.Swept
	reported := false
	err := pg.InTx(ctx, s.pool, func(tx pgx.Tx) error {
		n, reported = domain.Swept{}, false
		rows, err := tx.Query(ctx, queries.MarkAtRisk, sentBefore, limit, now, domain.ErrorRedeliverNoReceipt)
		if err != nil {
			return err
		}
		type swept struct {
			m     domain.Message
			again bool
		}
		marked, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (swept, error) {
			sw := swept{m: domain.Message{State: domain.StateAtRisk}}
			return sw, r.Scan(&sw.m.ID, &sw.m.OrderID, &sw.m.Provider, &sw.again)
		})
		if err != nil {
			return err
		}
		var (
			msgs                []outbox.Message
			again, againSenders []string
		)
		for _, sw := range marked {
			if sw.again {
				again, againSenders = append(again, sw.m.ID), append(againSenders, sw.m.Provider)
				continue
			}
			if msg, ok := convert.DeliveryReport(sw.m); ok {
				msgs = append(msgs, msg)
			}
		}
		n = domain.Swept{AtRisk: len(marked) - len(again), Redelivered: len(again)}
		if err := barHandoffs(ctx, tx, again, againSenders, now); err != nil {
			return err
		}
		if len(msgs) > 0 {
			reported = true
			if err := outbox.EnqueueAll(ctx, tx, nil, now, msgs); err != nil {
				return err
			}
		}
		_, err = tx.Exec(ctx, queries.DropParked, now.Add(-domain.ParkedReceiptTTL))
		return err
	})
	if err != nil {
		return domain.Swept{}, fmt.Errorf("mark at risk: %w", err)
	}
	if reported {
		s.wake()
	}
	rows, err := s.pool.Query(ctx, queries.StrandedParked, limit)
	if err != nil {
		return n, fmt.Errorf("find stranded receipts: %w", err)
	}
	stranded, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return n, fmt.Errorf("find stranded receipts: %w", err)
	}
	for _, id := range stranded {
		if err := s.applyParked(ctx, id); err != nil {
			return n, fmt.Errorf("apply parked receipt: %w", err)
		}
	}
	return n, nil
}
