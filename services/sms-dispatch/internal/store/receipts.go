package store

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/icpverify/icpverify/pkg/outbox"
	"github.com/icpverify/icpverify/pkg/pg"
	"github.com/icpverify/icpverify/services/sms-dispatch/internal/convert"
	"github.com/icpverify/icpverify/services/sms-dispatch/internal/domain"
)

// RecordReceipt applies one carrier's receipt: RecordReceipts of one.
func (s *Store) RecordReceipt(ctx context.Context, r domain.Receipt) (domain.ReceiptOutcome, error) {
	outs, err := s.RecordReceipts(ctx, []domain.Receipt{r})
	if err != nil {
		return "", err
	}
	return outs[0], nil
}

// RecordReceipts applies carriers' receipts (domain.ApplyReceipt) in one transaction and tells what
// each did, in order. A receipt's message is the one the provider knows by r.ProviderID, else the
// one r.MessageID names (if the provider sent it, or it is not sent yet). The messages are locked in
// message_id order, so concurrent batches (and single receipts) apply one after the other without
// deadlocking, and the receipts of one message apply in arrival order. A new DELIVERED or
// UNDELIVERED writes its report to verification in the same transaction, or, for a redeliverable
// message, an UNDELIVERED queues it again instead (redeliver). A receipt of a provider a redelivery
// barred from the message is an earlier provider's (domain.ApplyEarlierReceipt). A receipt for a
// message not yet SENT, or for ids no message has, is parked.
func (s *Store) RecordReceipts(ctx context.Context, rs []domain.Receipt) ([]domain.ReceiptOutcome, error) {
	if len(rs) == 0 {
		return nil, nil
	}
	var outs []domain.ReceiptOutcome
	reported := false
	err := pg.InTx(ctx, s.pool, func(tx pgx.Tx) error {
		outs, reported = make([]domain.ReceiptOutcome, len(rs)), false
		ids, err := messageIDs(ctx, tx, rs)
		if err != nil {
			return err
		}
		locked, err := s.lockMessages(ctx, tx, ids)
		if err != nil {
			return err
		}
		b := &receiptBatch{tx: tx}
		if err := b.loadBarred(ctx, slices.Collect(maps.Keys(locked))); err != nil {
			return err
		}
		for i, r := range rs {
			if outs[i], err = b.record(ctx, locked[ids[i]], r); err != nil {
				return err
			}
		}
		reported, err = b.flush(ctx)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("record receipts: %w", err)
	}
	if reported {
		s.wake()
	}
	return outs, nil
}

// messageIDs names the message of each receipt of rs: the one its provider knows by its provider id,
// else its message id.
func messageIDs(ctx context.Context, tx pgx.Tx, rs []domain.Receipt) ([]string, error) {
	var providers, pids []string
	for _, r := range rs {
		if r.ProviderID != "" {
			providers, pids = append(providers, r.Provider), append(pids, r.ProviderID)
		}
	}
	known := map[[2]string]string{}
	if len(pids) > 0 {
		rows, err := tx.Query(ctx, queries.FindProviderIDs, providers, pids)
		if err != nil {
			return nil, err
		}
		var provider, pid, id string
		if _, err := pgx.ForEachRow(rows, []any{&provider, &pid, &id}, func() error {
			known[[2]string{provider, pid}] = id
			return nil
		}); err != nil {
			return nil, err
		}
	}
	ids := make([]string, len(rs))
	for i, r := range rs {
		if ids[i] = known[[2]string{r.Provider, r.ProviderID}]; r.ProviderID == "" || ids[i] == "" {
			ids[i] = r.MessageID
		}
	}
	return ids, nil
}

// lockMessages locks the stored messages of ids (in message_id order) and returns them by id.
func (s *Store) lockMessages(ctx context.Context, tx pgx.Tx, ids []string) (map[string]*domain.Message, error) {
	want := slices.DeleteFunc(slices.Clone(ids), func(id string) bool { return id == "" })
	slices.Sort(want)
	rows, err := tx.Query(ctx, queries.LockMessages, slices.Compact(want))
	if err != nil {
		return nil, err
	}
	ms, err := s.collectMessages(rows)
	if err != nil {
		return nil, err
	}
	locked := make(map[string]*domain.Message, len(ms))
	for i := range ms {
		locked[ms[i].ID] = &ms[i]
	}
	return locked, nil
}

// applyParked applies the earliest receipt parked for the message id (just marked SENT) and drops
// the rest: once one is final, they can change nothing (domain.ApplyReceipt).
func (s *Store) applyParked(ctx context.Context, id string) error {
	reported := false
	err := pg.InTx(ctx, s.pool, func(tx pgx.Tx) error {
		reported = false
		locked, err := s.lockMessages(ctx, tx, []string{id})
		if err != nil {
			return err
		}
		m, ok := locked[id]
		if !ok {
			return pgx.ErrNoRows
		}
		rows, err := tx.Query(ctx, queries.TakeParked, m.Provider, domain.ParkKeys(*m))
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
		before := *m
		if domain.ApplyReceipt(m, first) != domain.ReceiptApplied {
			return nil
		}
		b := &receiptBatch{tx: tx}
		if _, err := b.settle(ctx, m, before, first.At); err != nil {
			return err
		}
		reported, err = b.flush(ctx)
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
