package store

import (
	"context"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/icpverify/icpverify/pkg/outbox"
	"github.com/icpverify/icpverify/services/sms-dispatch/internal/convert"
	"github.com/icpverify/icpverify/services/sms-dispatch/internal/domain"
)

// receiptBatch applies receipts to messages locked in tx, one after the other on the messages as
// they are in memory, and keeps the writes that can wait (the final states, their reports, the
// parked receipts) for one statement each at flush. A redelivery is written at once: it is rare, and
// it changes which providers are barred from the message for the receipts that follow.
type receiptBatch struct {
	tx pgx.Tx
	// barred holds (message id, provider) for each provider a redelivery barred from a locked message.
	barred map[[2]string]bool
	// settled are the messages receipts made final, at most once each (a final state never changes).
	settled []domain.Message
	// reportAt is the latest arrival of a receipt that made a message final: its reports' time.
	reportAt time.Time
	parked   []domain.Receipt
}

// loadBarred reads the providers barred from the locked messages ids.
func (b *receiptBatch) loadBarred(ctx context.Context, ids []string) error {
	if b.barred == nil {
		b.barred = map[[2]string]bool{}
	}
	rows, err := b.tx.Query(ctx, queries.BarredOf, ids)
	if err != nil {
		return err
	}
	var id, provider string
	_, err = pgx.ForEachRow(rows, []any{&id, &provider}, func() error {
		b.barred[[2]string{id, provider}] = true
		return nil
	})
	return err
}

// record applies r to its locked message m (nil: no message has its ids).
func (b *receiptBatch) record(ctx context.Context, m *domain.Message, r domain.Receipt) (domain.ReceiptOutcome, error) {
	if m != nil && (m.State == domain.StateQueued || m.Provider != r.Provider) && b.barred[[2]string{m.ID, r.Provider}] {
		out := domain.ApplyEarlierReceipt(m, r)
		if out == domain.ReceiptApplied {
			b.final(*m, r.At)
		}
		return out, nil
	}
	// Our message id in a receipt counts only for the provider that sent it.
	if m == nil || (m.State != domain.StateQueued && m.Provider != r.Provider) {
		b.parked = append(b.parked, r)
		return domain.ReceiptUnknown, nil
	}
	before := *m
	out := domain.ApplyReceipt(m, r)
	switch out {
	case domain.ReceiptParked:
		b.parked = append(b.parked, r)
	case domain.ReceiptApplied:
		return b.settle(ctx, m, before, r.At)
	}
	return out, nil
}

// settle keeps the state a receipt just gave the locked message m (before: m until then), at now,
// unless an UNDELIVERED m is redelivered instead: then m is QUEUED again, its providers barred.
func (b *receiptBatch) settle(ctx context.Context, m *domain.Message, before domain.Message, now time.Time) (domain.ReceiptOutcome, error) {
	if m.State == domain.StateUndelivered {
		again, err := redeliver(ctx, b.tx, *m, now)
		if err != nil {
			return "", err
		}
		if again {
			*m = before
			m.State = domain.StateQueued
			return domain.ReceiptRedelivered, b.loadBarred(ctx, []string{m.ID})
		}
	}
	b.final(*m, now)
	return domain.ReceiptApplied, nil
}

func (b *receiptBatch) final(m domain.Message, at time.Time) {
	b.settled = append(b.settled, m)
	if at.After(b.reportAt) {
		b.reportAt = at
	}
}

// flush writes the parked receipts, the final states and the reports they owe verification (any
// written: the caller wakes the relay after the commit).
func (b *receiptBatch) flush(ctx context.Context) (bool, error) {
	if n := len(b.parked); n > 0 {
		providers, keys, codes := make([]string, n), make([]string, n), make([]string, n)
		delivered, at := make([]bool, n), make([]time.Time, n)
		for i, r := range b.parked {
			providers[i], keys[i], codes[i] = r.Provider, domain.ParkKey(r), domain.ReceiptCode(r.Code)
			delivered[i], at[i] = r.Delivered, r.At
		}
		if _, err := b.tx.Exec(ctx, queries.ParkAll, providers, keys, delivered, codes, at); err != nil {
			return false, err
		}
	}
	n := len(b.settled)
	if n == 0 {
		return false, nil
	}
	ids, states, codes, at := make([]string, n), make([]string, n), make([]string, n), make([]time.Time, n)
	var reports []outbox.Message
	for i, m := range b.settled {
		ids[i], states[i], codes[i], at[i] = m.ID, string(m.State), m.DeliveryCode, m.ReceiptAt
		if msg, ok := convert.DeliveryReport(m); ok {
			reports = append(reports, msg)
		}
	}
	if _, err := b.tx.Exec(ctx, queries.SetDeliveries, ids, states, codes, at); err != nil {
		return false, err
	}
	return len(reports) > 0, outbox.EnqueueAll(ctx, b.tx, nil, b.reportAt, reports)
}
