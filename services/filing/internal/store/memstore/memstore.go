// Package memstore is the filing engine in memory (app.Engine), for the one-process development
// server: the same behaviour as the PostgreSQL engine (package store) and the same test suite
// (storetest); the use cases live once in package app, so the two engines differ only in storage.
// One mutex guards all state: every operation is atomic, like a transaction. Nothing survives a
// restart.
package memstore

import (
	"cmp"
	"context"
	"fmt"
	"slices"
	"sync"
	"time"

	"google.golang.org/protobuf/proto"

	"github.com/icpverify/icpverify/pkg/batch"
	"github.com/icpverify/icpverify/pkg/clock"
	filingv1 "github.com/icpverify/icpverify/pkg/gen/icp/filing/v1"
	"github.com/icpverify/icpverify/pkg/idempotency"
	"github.com/icpverify/icpverify/pkg/outbox"
	"github.com/icpverify/icpverify/services/filing/internal/app"
	"github.com/icpverify/icpverify/services/filing/internal/convert"
	"github.com/icpverify/icpverify/services/filing/internal/domain"
)

// Store is the in-memory engine.
type Store struct {
	clock clock.Clock
	queue *outbox.MemQueue
	wake  func() // after a change that queued outbox rows: the relay's Wake

	mu       sync.Mutex
	orders   map[string]*domain.Order // verifiers without ID tails, like the PostgreSQL store
	subjects map[string]domain.Subject
	idem     *idempotency.MemTable
	// phoneLocks: until when no order naming the phone is submitted (ReturnOrder's phone_locks)
	phoneLocks map[string]time.Time
	holders    map[string]map[string]bool // subject id -> the tenants that hold its record
	mismatches map[string][]mismatch      // tenant -> its record-mismatch reservations (records.go)
}

var _ app.Engine = (*Store)(nil)

// New returns an empty store that queues its outbox rows on queue (the relay's queue); wake (may be
// nil) is called after a change that queued rows.
func New(clk clock.Clock, queue *outbox.MemQueue, wake func()) *Store {
	return &Store{clock: clk, queue: queue, wake: wake, orders: map[string]*domain.Order{},
		subjects: map[string]domain.Subject{}, idem: idempotency.NewMemTable(), phoneLocks: map[string]time.Time{},
		holders: map[string]map[string]bool{}, mismatches: map[string][]mismatch{}}
}

func (s *Store) woke(enqueued bool, err error) {
	if err == nil && enqueued && s.wake != nil {
		s.wake()
	}
}

// The subject record is a live one or none: a deregistered subject is kept out of every lookup,
// like the PostgreSQL store's deregistered_at filter.
func (s *Store) record(id string) (domain.Subject, bool, error) {
	rec, ok := s.subjects[id]
	if !ok || rec.Deregistered {
		return domain.Subject{}, false, nil
	}
	rec = cloneSubject(rec)
	rec.Holders = nil
	for tenant := range s.holders[id] {
		rec.Holders = append(rec.Holders, tenant)
	}
	slices.Sort(rec.Holders)
	return rec, true, nil
}

func (s *Store) order(id string) (*domain.Order, error) {
	o, ok := s.orders[id]
	if !ok {
		return nil, domain.OrderNotFound()
	}
	return o, nil
}

// CreateOrder runs fn and stores the order it builds (see app.Engine).
func (s *Store) CreateOrder(_ context.Context, op app.Op, fn app.CreateFunc) (proto.Message, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return idempotency.DoMem(s.idem, op.Method, op.RequestID, op.Req, op.NewAnswer, func() (proto.Message, error) {
		o, err := fn(clock.Micro(s.clock), s.record)
		if err != nil {
			return nil, err
		}
		s.put(o)
		return op.Answer(cloneOrder(o)), nil
	})
}

// UpdateOrder runs fn on a copy of order id and keeps the copy when fn succeeds (see app.Engine).
func (s *Store) UpdateOrder(_ context.Context, op app.Op, id string, fn app.UpdateFunc) (proto.Message, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	enqueued := false
	resp, err := idempotency.DoMem(s.idem, op.Method, op.RequestID, op.Req, op.NewAnswer, func() (proto.Message, error) {
		stored, err := s.order(id)
		if err != nil {
			return nil, err
		}
		now := clock.Micro(s.clock)
		o := cloneOrder(*stored)
		eff, err := fn(&o, now, s.record)
		if err != nil {
			return nil, err // nothing changed: fn worked on a copy
		}
		if err := eff.Slots.CheckSlots(now, s.phoneLocks, s.pendingPerPhone(o.ID, eff.Slots.Phones)); err != nil {
			return nil, err
		}
		if err := s.queue.AddAll(now, eff.Messages); err != nil {
			return nil, err
		}
		enqueued = len(eff.Messages) > 0
		if eff.Record != nil {
			s.subjects[eff.Record.ID] = cloneSubject(*eff.Record)
		}
		if eff.Holder != nil {
			s.setHolder(*eff.Holder)
		}
		s.put(o)
		return op.Answer(cloneOrder(o)), nil
	})
	s.woke(enqueued, err)
	return resp, err
}

// pendingPerPhone counts, per phone, the orders other than except awaiting verification that name it
// (the engine's mutex is the lock per phone).
func (s *Store) pendingPerPhone(except string, phones []string) map[string]int {
	pending := map[string]int{}
	if len(phones) == 0 {
		return pending
	}
	for _, o := range s.orders {
		if o.ID == except || o.State != domain.StateAwaitingVerification {
			continue
		}
		for _, v := range o.Verifiers {
			if slices.Contains(phones, v.Phone) {
				pending[v.Phone]++
			}
		}
	}
	return pending
}

// put keeps a copy of o; like the PostgreSQL engine it keeps no ID tails.
func (s *Store) put(o domain.Order) {
	o = cloneOrder(o)
	for i := range o.Verifiers {
		o.Verifiers[i].IDTails = nil
	}
	s.orders[o.ID] = &o
}

// verificationOutcome applies MarkVerified or ReturnOrder: idempotent by (order_id, submission).
func (s *Store) verificationOutcome(now time.Time, id string, sub int32, ev domain.Event, reason domain.ReturnReason) (*filingv1.Order, error) {
	o, err := s.order(id)
	if err != nil {
		return nil, err
	}
	to, apply, err := domain.VerificationOutcome(cloneOrder(*o), ev, sub)
	if err != nil {
		return nil, err
	}
	if apply {
		text, reason := domain.OutcomeText(ev, reason)
		o.ReturnReason = reason
		o.Move(now, to, domain.ActorVerification, text)
	}
	return convert.Order(cloneOrder(*o)), nil
}

// VerificationOutcomes applies MarkVerified and ReturnOrder requests in order under one hold of the
// lock, which makes the batch one change (app.Engine).
func (s *Store) VerificationOutcomes(_ context.Context, reqs []proto.Message) ([]batch.Result[*filingv1.Order], error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	now := clock.Micro(s.clock)
	out := make([]batch.Result[*filingv1.Order], len(reqs))
	for i, req := range reqs {
		out[i].Value, out[i].Err = s.outcomeLocked(now, req)
	}
	return out, nil
}

// outcomeLocked applies one MarkVerified or ReturnOrder request, idempotent by its request id under
// its single method's name.
func (s *Store) outcomeLocked(now time.Time, req proto.Message) (*filingv1.Order, error) {
	switch r := req.(type) {
	case *filingv1.MarkVerifiedRequest:
		resp, err := idempotency.DoMem(s.idem, filingv1.FilingInternalService_MarkVerified_FullMethodName, r.GetRequestId(), r,
			func() *filingv1.MarkVerifiedResponse { return &filingv1.MarkVerifiedResponse{} },
			func() (*filingv1.MarkVerifiedResponse, error) {
				o, err := s.verificationOutcome(now, r.GetOrderId(), r.GetSubmission(), domain.EventVerified, domain.ReturnNone)
				if err != nil {
					return nil, err
				}
				return &filingv1.MarkVerifiedResponse{Order: o}, nil
			})
		return resp.GetOrder(), err
	case *filingv1.ReturnOrderRequest:
		resp, err := idempotency.DoMem(s.idem, filingv1.FilingInternalService_ReturnOrder_FullMethodName, r.GetRequestId(), r,
			func() *filingv1.ReturnOrderResponse { return &filingv1.ReturnOrderResponse{} },
			func() (*filingv1.ReturnOrderResponse, error) {
				for _, l := range convert.PhoneLocks(r) { // recorded whatever the call's outcome, as the PostgreSQL engine does
					if l.Until.After(s.phoneLocks[l.Phone]) {
						s.phoneLocks[l.Phone] = l.Until
					}
				}
				o, err := s.verificationOutcome(now, r.GetOrderId(), r.GetSubmission(), domain.EventReturn, domain.ReturnReason(r.GetReason()))
				if err != nil {
					return nil, err
				}
				return &filingv1.ReturnOrderResponse{Order: o}, nil
			})
		return resp.GetOrder(), err
	}
	return nil, fmt.Errorf("verification outcome: unexpected request %T", req)
}

// GetOrder reads one order.
func (s *Store) GetOrder(_ context.Context, id string) (domain.Order, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	o, err := s.order(id)
	if err != nil {
		return domain.Order{}, err
	}
	return cloneOrder(*o), nil
}

// ListOrders reads up to limit orders newest first (see app.Engine).
func (s *Store) ListOrders(_ context.Context, tenant string, state domain.State, after *domain.Position, limit int) ([]domain.Order, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	var match []*domain.Order
	for _, o := range s.orders {
		if (state == domain.StateUnspecified || o.State == state) && (tenant == "" || o.Tenant == tenant) &&
			(after == nil || after.Before(o.CreatedAt, o.ID)) {
			match = append(match, o)
		}
	}
	slices.SortFunc(match, func(a, b *domain.Order) int {
		if c := b.CreatedAt.Compare(a.CreatedAt); c != 0 {
			return c
		}
		return cmp.Compare(b.ID, a.ID)
	})
	out := make([]domain.Order, min(len(match), limit))
	for i := range out {
		out[i] = cloneOrder(*match[i])
	}
	return out, nil
}
