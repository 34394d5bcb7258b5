// Package store is the PostgreSQL engine of filing (app.Engine): orders, their verifiers and
// history, and the subjects' approved records. Every change runs in one transaction with its
// idempotency record and the outbox rows it owes other services, so a retry returns the first
// answer and no call is lost or doubled. The use cases themselves live in package app.
package store

import (
	"context"
	"embed"
	"encoding/json"
	"fmt"
	"slices"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"google.golang.org/protobuf/proto"

	"github.com/icpverify/icpverify/pkg/batch"
	"github.com/icpverify/icpverify/pkg/clock"
	filingv1 "github.com/icpverify/icpverify/pkg/gen/icp/filing/v1"
	"github.com/icpverify/icpverify/pkg/idempotency"
	"github.com/icpverify/icpverify/pkg/outbox"
	"github.com/icpverify/icpverify/pkg/pg"
	"github.com/icpverify/icpverify/services/filing/internal/app"
	"github.com/icpverify/icpverify/services/filing/internal/domain"
)

//go:embed migrations/*.sql
var fs embed.FS

// Migrations creates the filing tables.
var Migrations = pg.Source{Name: "filing", FS: fs}

//go:embed queries.sql
var queriesSQL string

// queries holds the store's statements, one field per "-- name:" block of queries.sql.
var queries = pg.MustQueries[struct {
	LoadOrder, LoadOrderForUpdate, LoadVerifiers, History, ListOrders        string
	InsertOrder, UpdateOrder, InsertVerifier, InsertHistoryEntry, SaveRecord string
	ReadSubject, ReadSubjectForUpdate, AddHolder, RemoveHolder               string
	LockTenantMismatches, ForgetMismatches, TenantMismatches                 string
	InsertMismatch, ReleaseMismatch                                          string
	LockOrders, CurrentVerifiers, UpdateOrders, InsertHistory                string
	LockPhones, PendingPerPhone, PhoneLocks, SavePhoneLocks                  string
}]("filing/internal/store/queries.sql", queriesSQL)

// Store is the PostgreSQL engine of the filing use cases (app.Engine).
type Store struct {
	pool  *pgxpool.Pool
	clock clock.Clock
	wake  func() // after a commit that wrote outbox rows: the relay's Wake
	// outcomes commits concurrent MarkVerified and ReturnOrder calls together (see outcome.go).
	outcomes *batch.Group[outcomeCall, *filingv1.Order]
}

var _ app.Engine = (*Store)(nil)

// New returns a store on pool; wake (may be nil) is called after a commit that wrote outbox rows.
func New(pool *pgxpool.Pool, clk clock.Clock, wake func()) *Store {
	s := &Store{pool: pool, clock: clk, wake: wake}
	s.outcomes = &batch.Group[outcomeCall, *filingv1.Order]{Run: s.outcomeBatch, Flights: outcomeFlights, MaxBatch: outcomeMaxBatch}
	return s
}

type querier interface {
	Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error)
	QueryRow(ctx context.Context, sql string, args ...any) pgx.Row
}

// scanOrder reads the order columns of queries.sql's statements (LoadOrder's).
func scanOrder(row pgx.Row) (domain.Order, error) {
	var (
		o        domain.Order
		spec     []byte
		state    string
		deadline *time.Time
		reason   int32
	)
	if err := row.Scan(&o.ID, &spec, &state, &o.Submission, &deadline, &reason, &o.CreatedAt, &o.UpdatedAt, &o.Tenant); err != nil {
		return o, err
	}
	if err := json.Unmarshal(spec, &o.Spec); err != nil {
		return o, fmt.Errorf("order %s: decode spec: %w", o.ID, err)
	}
	st, err := domain.ParseState(state)
	if err != nil {
		return o, err
	}
	o.State, o.ReturnReason = st, domain.ReturnReason(reason)
	if deadline != nil {
		o.DeadlineAt = deadline.UTC()
	}
	o.CreatedAt, o.UpdatedAt = o.CreatedAt.UTC(), o.UpdatedAt.UTC()
	return o, nil
}

// loadOrder reads an order with its current verifiers and history; forUpdate locks the order row
// for the rest of tx, which serialises every transition of one order.
func loadOrder(ctx context.Context, q querier, id string, forUpdate bool) (domain.Order, error) {
	sql := queries.LoadOrder
	if forUpdate {
		sql = queries.LoadOrderForUpdate
	}
	o, err := scanOrder(q.QueryRow(ctx, sql, id))
	if pg.IsNoRows(err) {
		return o, domain.OrderNotFound()
	}
	if err != nil {
		return o, fmt.Errorf("load order: %w", err)
	}
	orders := []*domain.Order{&o}
	if err := loadDetails(ctx, q, orders); err != nil {
		return o, err
	}
	return o, nil
}

// loadDetails fills the verifiers of each order's current submission and its history, in two queries.
func loadDetails(ctx context.Context, q querier, orders []*domain.Order) error {
	if len(orders) == 0 {
		return nil
	}
	ids := make([]string, len(orders))
	subs := make([]int32, len(orders))
	byID := make(map[string]*domain.Order, len(orders))
	for i, o := range orders {
		ids[i], subs[i] = o.ID, o.Submission
		byID[o.ID] = o
		o.Verifiers, o.History = nil, nil
	}
	rows, err := q.Query(ctx, queries.LoadVerifiers, ids, subs)
	if err != nil {
		return fmt.Errorf("load verifiers: %w", err)
	}
	if err := scanVerifiers(rows, byID); err != nil {
		return fmt.Errorf("load verifiers: %w", err)
	}
	rows, err = q.Query(ctx, queries.History, ids) // one index scan per order
	if err != nil {
		return fmt.Errorf("load history: %w", err)
	}
	if err := scanHistory(rows, byID); err != nil {
		return fmt.Errorf("load history: %w", err)
	}
	return nil
}

// scanVerifiers appends rows of (order_id, phone, roles) to the verifiers of their orders in byID.
func scanVerifiers(rows pgx.Rows, byID map[string]*domain.Order) error {
	defer rows.Close()
	for rows.Next() {
		var id string
		var v domain.Verifier
		if err := rows.Scan(&id, &v.Phone, &v.Roles); err != nil {
			return err
		}
		byID[id].Verifiers = append(byID[id].Verifiers, v)
	}
	return rows.Err()
}

// scanHistory appends rows of History to the history of their orders in byID.
func scanHistory(rows pgx.Rows, byID map[string]*domain.Order) error {
	defer rows.Close()
	for rows.Next() {
		var (
			id, from, to string
			c            domain.StateChange
			err          error
		)
		if err := rows.Scan(&id, &c.At, &from, &to, &c.Actor, &c.Reason); err != nil {
			return err
		}
		c.At = c.At.UTC()
		c.From, _ = domain.ParseState(from) // "UNSPECIFIED" for the creation
		if c.To, err = domain.ParseState(to); err != nil {
			return err
		}
		byID[id].History = append(byID[id].History, c)
	}
	return rows.Err()
}

// CreateOrder runs fn and stores the order it builds, with its history (see app.Engine).
func (s *Store) CreateOrder(ctx context.Context, op app.Op, fn app.CreateFunc) (proto.Message, error) {
	return idempotency.Do(ctx, s.pool, clock.Micro(s.clock), op.Method, op.RequestID, op.Req, op.NewAnswer,
		func(tx pgx.Tx) (proto.Message, error) {
			o, err := fn(clock.Micro(s.clock), s.records(ctx, tx, false))
			if err != nil {
				return nil, err
			}
			b := &pgx.Batch{}
			if err := queueInsertOrder(b, o); err != nil {
				return nil, err
			}
			queueChanges(b, domain.Order{ID: o.ID}, o)
			if err := tx.SendBatch(ctx, b).Close(); err != nil {
				return nil, fmt.Errorf("create order: %w", err)
			}
			return op.Answer(o), nil
		})
}

// UpdateOrder locks order id, runs fn on it and writes what fn changed (see app.Engine).
func (s *Store) UpdateOrder(ctx context.Context, op app.Op, id string, fn app.UpdateFunc) (proto.Message, error) {
	enqueued := false
	resp, err := idempotency.Do(ctx, s.pool, clock.Micro(s.clock), op.Method, op.RequestID, op.Req, op.NewAnswer,
		func(tx pgx.Tx) (proto.Message, error) {
			enqueued = false
			before, err := loadOrder(ctx, tx, id, true)
			if err != nil {
				return nil, err
			}
			// The clock is read after the lock: a change that waited for another records a later time.
			now := clock.Micro(s.clock)
			o := before
			o.History = slices.Clip(o.History) // fn's appends never reach before's array
			eff, err := fn(&o, now, s.records(ctx, tx, true))
			if err != nil {
				return nil, err
			}
			if err := takeSlots(ctx, tx, now, o.ID, eff.Slots); err != nil {
				return nil, err
			}
			b := &pgx.Batch{}
			if err := queueUpdateOrder(b, o); err != nil {
				return nil, err
			}
			queueChanges(b, before, o)
			if eff.Record != nil {
				if err := queueSaveRecord(b, now, *eff.Record); err != nil {
					return nil, err
				}
			}
			if eff.Holder != nil {
				queueHolder(b, now, *eff.Holder)
			}
			if err := tx.SendBatch(ctx, b).Close(); err != nil {
				return nil, fmt.Errorf("update order: %w", err)
			}
			if err := outbox.EnqueueAll(ctx, tx, nil, now, eff.Messages); err != nil {
				return nil, err
			}
			enqueued = len(eff.Messages) > 0
			return op.Answer(o), nil
		})
	if err == nil && enqueued && s.wake != nil {
		s.wake()
	}
	return resp, err
}

// takeSlots locks the phones of slots and decides (PhoneSlots.CheckSlots) on their locks and the
// other orders awaiting verification of each, in one round trip.
func takeSlots(ctx context.Context, tx pgx.Tx, now time.Time, orderID string, slots domain.PhoneSlots) error {
	if len(slots.Phones) == 0 {
		return nil
	}
	pending, locked := map[string]int{}, map[string]time.Time{}
	b := &pgx.Batch{}
	b.Queue(queries.LockPhones, slots.Phones)
	b.Queue(queries.PhoneLocks, slots.Phones, now).Query(func(rows pgx.Rows) error {
		for rows.Next() {
			var phone string
			var until time.Time
			if err := rows.Scan(&phone, &until); err != nil {
				return err
			}
			locked[phone] = until
		}
		return rows.Err()
	})
	b.Queue(queries.PendingPerPhone, slots.Phones, orderID).Query(func(rows pgx.Rows) error {
		for rows.Next() {
			var phone string
			var n int
			if err := rows.Scan(&phone, &n); err != nil {
				return err
			}
			pending[phone] = n
		}
		return rows.Err()
	})
	if err := tx.SendBatch(ctx, b).Close(); err != nil {
		return fmt.Errorf("phone slots: %w", err)
	}
	return slots.CheckSlots(now, locked, pending)
}

// records is the engine's domain.RecordLookup inside tx; forUpdate locks the record it reads to the
// end of tx (a submission is checked against it, an approval writes it).
func (s *Store) records(ctx context.Context, tx pgx.Tx, forUpdate bool) domain.RecordLookup {
	return func(id string) (domain.Subject, bool, error) { return readSubject(ctx, tx, id, forUpdate) }
}

func queueInsertOrder(b *pgx.Batch, o domain.Order) error {
	spec, err := json.Marshal(o.Spec)
	if err != nil {
		return err
	}
	b.Queue(queries.InsertOrder, o.ID, int32(o.Spec.FilingType), o.Spec.SubjectID, spec, o.State.String(), o.CreatedAt, o.UpdatedAt, o.Tenant)
	return nil
}

func queueUpdateOrder(b *pgx.Batch, o domain.Order) error {
	spec, err := json.Marshal(o.Spec)
	if err != nil {
		return err
	}
	var deadline *time.Time
	if !o.DeadlineAt.IsZero() {
		deadline = &o.DeadlineAt
	}
	b.Queue(queries.UpdateOrder, o.ID, spec, int32(o.Spec.FilingType), o.Spec.SubjectID,
		o.State.String(), o.Submission, deadline, int32(o.ReturnReason), o.UpdatedAt)
	return nil
}

// queueChanges queues the rows o has beyond before: the verifiers of a new submission (phones and
// roles; the ID tails are never stored here) and the history entries added.
func queueChanges(b *pgx.Batch, before, o domain.Order) {
	if o.Submission != before.Submission {
		for i, v := range o.Verifiers {
			b.Queue(queries.InsertVerifier, o.ID, o.Submission, i, v.Phone, v.Roles)
		}
	}
	for _, c := range o.History[len(before.History):] {
		b.Queue(queries.InsertHistoryEntry, o.ID, c.At, c.From.String(), c.To.String(), c.Actor, c.Reason)
	}
}

// queueSaveRecord creates or replaces a subject's approved record.
func queueSaveRecord(b *pgx.Batch, now time.Time, rec domain.Subject) error {
	js, err := json.Marshal(rec)
	if err != nil {
		return err
	}
	var deregistered *time.Time
	if rec.Deregistered {
		deregistered = &now
	}
	b.Queue(queries.SaveRecord, rec.ID, rec.Name, js, deregistered, now)
	return nil
}

// readSubject reads a live subject's approved record with its holders; forUpdate locks it for the
// rest of tx (an approval writes it, a submission is checked against it).
func readSubject(ctx context.Context, q querier, id string, forUpdate bool) (domain.Subject, bool, error) {
	var rec domain.Subject
	var b []byte
	var holders []string
	sql := queries.ReadSubject
	if forUpdate {
		sql = queries.ReadSubjectForUpdate
	}
	err := q.QueryRow(ctx, sql, id).Scan(&b, &holders)
	if pg.IsNoRows(err) {
		return rec, false, nil
	}
	if err != nil {
		return rec, false, fmt.Errorf("load subject: %w", err)
	}
	if err := json.Unmarshal(b, &rec); err != nil {
		return rec, false, fmt.Errorf("decode subject: %w", err)
	}
	rec.Holders = holders
	return rec, true, nil
}

// GetOrder reads one order.
func (s *Store) GetOrder(ctx context.Context, id string) (domain.Order, error) {
	return loadOrder(ctx, s.pool, id, false)
}
