// Package memstore keeps deadline timers in memory, for the one-process development server: nothing
// survives a restart. It behaves exactly like the PostgreSQL store (the same suite, storetest, runs
// on both): one mutex makes every operation atomic, as a transaction would, and every decision is
// the one internal/domain makes for the PostgreSQL store too, so the engines differ only in storage.
package memstore

import (
	"context"
	"slices"
	"sync"
	"time"

	"google.golang.org/protobuf/proto"

	"github.com/icpverify/icpverify/pkg/batch"
	"github.com/icpverify/icpverify/pkg/clock"
	"github.com/icpverify/icpverify/pkg/errs"
	deadlinev1 "github.com/icpverify/icpverify/pkg/gen/icp/deadline/v1"
	"github.com/icpverify/icpverify/pkg/idempotency"
	"github.com/icpverify/icpverify/services/deadline/internal/convert"
	"github.com/icpverify/icpverify/services/deadline/internal/domain"
	"github.com/icpverify/icpverify/services/deadline/internal/grpcapi"
	"github.com/icpverify/icpverify/services/deadline/internal/sweeper"
)

// The store is the engine of the handlers and of the sweeper.
var (
	_ grpcapi.Store = (*Store)(nil)
	_ sweeper.Store = (*Store)(nil)
)

// Store is the memory engine. Timers are held by value, so everything it returns is a copy.
type Store struct {
	clock  clock.Clock // Schedule and Cancel read it under the lock
	mu     sync.Mutex
	timers map[domain.Key]domain.Deadline
	idem   *idempotency.MemTable
}

// New returns an empty store on clk.
func New(clk clock.Clock) *Store {
	return &Store{clock: clk, timers: map[domain.Key]domain.Deadline{}, idem: idempotency.NewMemTable()}
}

func notFound() error {
	return errs.NotFound(domain.ReasonNotFound, "no deadline for this order submission")
}

// insert stores the new timer d as domain.Insert decides next to the order's other timers.
func (s *Store) insert(d domain.Deadline) domain.Deadline {
	var others []domain.Deadline
	for k, o := range s.timers {
		if k.OrderID == d.OrderID {
			others = append(others, o)
		}
	}
	d, superseded := domain.Insert(d, others)
	s.timers[d.Key] = d
	for _, o := range superseded {
		s.timers[o.Key] = o
	}
	return d
}

func newResp() *deadlinev1.Deadline { return &deadlinev1.Deadline{} }

// Schedule creates the timer of one submission, or returns the existing one; see store.Store.Schedule.
func (s *Store) Schedule(_ context.Context, requestID string, req proto.Message, k domain.Key, due time.Time) (domain.Deadline, error) {
	return s.schedule(deadlinev1.DeadlineService_ScheduleDeadline_FullMethodName, requestID, req, k.Close(), due)
}

// ScheduleNoon creates the noon resend timer of one submission, or returns the existing one; see
// store.Store.ScheduleNoon.
func (s *Store) ScheduleNoon(_ context.Context, requestID string, req proto.Message, k domain.Key, resend time.Time) (domain.Deadline, error) {
	return s.schedule(deadlinev1.DeadlineService_ScheduleNoonResend_FullMethodName, requestID, req, k.Noon(), resend)
}

func (s *Store) schedule(method, requestID string, req proto.Message, k domain.Key, due time.Time) (domain.Deadline, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	now := domain.NormalizeTime(s.clock.Now())
	out, err := idempotency.DoMem(s.idem, method, requestID, req, newResp, func() (*deadlinev1.Deadline, error) {
		if existing, ok := s.timers[k]; ok {
			d, err := domain.Reschedule(existing, due)
			if err != nil {
				return nil, err
			}
			return convert.ToProto(d), nil
		}
		return convert.ToProto(s.insert(domain.New(k, due, now))), nil
	})
	if err != nil {
		return domain.Deadline{}, err
	}
	return convert.FromProto(out), nil
}

// Cancel cancels a pending timer and the submission's noon resend timer, or leaves a CANCELLED
// placeholder for a submission not scheduled yet; see store.Store.Cancel.
func (s *Store) Cancel(_ context.Context, requestID string, req proto.Message, k domain.Key) (domain.Deadline, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.cancelLocked(domain.NormalizeTime(s.clock.Now()), requestID, req, k)
}

// CancelBatch cancels each request's timer as Cancel does, in order, under one hold of the lock.
func (s *Store) CancelBatch(_ context.Context, reqs []*deadlinev1.CancelDeadlineRequest) ([]batch.Result[domain.Deadline], error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	now := domain.NormalizeTime(s.clock.Now())
	out := make([]batch.Result[domain.Deadline], len(reqs))
	for i, r := range reqs {
		out[i].Value, out[i].Err = s.cancelLocked(now, r.GetRequestId(), r, domain.Key{OrderID: r.GetOrderId(), Submission: r.GetSubmission()})
	}
	return out, nil
}

func (s *Store) cancelLocked(now time.Time, requestID string, req proto.Message, k domain.Key) (domain.Deadline, error) {
	k = k.Close()
	out, err := idempotency.DoMem(s.idem, deadlinev1.DeadlineService_CancelDeadline_FullMethodName, requestID, req, newResp, func() (*deadlinev1.Deadline, error) {
		if noon, ok := s.timers[k.Noon()]; ok {
			noon, _ = domain.Cancel(noon)
			s.timers[noon.Key] = noon
		}
		d, ok := s.timers[k]
		if !ok {
			return convert.ToProto(s.insert(domain.Placeholder(k, now))), nil
		}
		d, _ = domain.Cancel(d)
		s.timers[k] = d
		return convert.ToProto(d), nil
	})
	if err != nil {
		return domain.Deadline{}, err
	}
	return convert.FromProto(out), nil
}

// Get returns the close timer of the order's latest submission.
func (s *Store) Get(_ context.Context, orderID string) (domain.Deadline, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	var latest domain.Deadline
	found := false
	for k, d := range s.timers {
		if k.OrderID == orderID && k.Kind == domain.KindClose && (!found || k.Submission > latest.Submission) {
			latest, found = d, true
		}
	}
	if !found {
		return domain.Deadline{}, notFound()
	}
	return latest, nil
}

// GetKey returns one timer.
func (s *Store) GetKey(_ context.Context, k domain.Key) (domain.Deadline, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	d, ok := s.timers[k]
	if !ok {
		return domain.Deadline{}, notFound()
	}
	return d, nil
}

// List reads up to limit close timers in domain.ListLess order (soonest first), only those in state
// (""= all), strictly after after; see store.Store.List.
func (s *Store) List(_ context.Context, state domain.State, after *domain.Position, limit int) ([]domain.Deadline, error) {
	s.mu.Lock()
	var list []domain.Deadline
	for _, d := range s.timers {
		if d.Kind == domain.KindClose && (state == "" || d.State == state) && (after == nil || after.After(d)) {
			list = append(list, d)
		}
	}
	s.mu.Unlock()
	slices.SortFunc(list, func(a, b domain.Deadline) int {
		switch {
		case domain.ListLess(a, b):
			return -1
		case domain.ListLess(b, a):
			return 1
		}
		return 0
	})
	return list[:min(len(list), limit)], nil
}

// Claim takes up to batch timers claimable at now, soonest next attempt first, hides them until
// now+lease and counts the attempt; see store.Store.Claim.
func (s *Store) Claim(_ context.Context, now time.Time, batch int, lease time.Duration) ([]domain.Deadline, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	var due []domain.Deadline
	for _, d := range s.timers {
		if domain.Claimable(d, now) {
			due = append(due, d)
		}
	}
	slices.SortFunc(due, domain.ClaimCompare)
	if len(due) > batch {
		due = due[:batch]
	}
	for i, d := range due {
		due[i] = domain.Claim(d, now, lease)
		s.timers[d.Key] = due[i]
	}
	return due, nil
}

// MarkFired records a successful close as domain.Fire decides; see store.Store.MarkFired.
func (s *Store) MarkFired(_ context.Context, k domain.Key, attempts int32, now time.Time, closed bool) (bool, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	d, ok := s.timers[k]
	if !ok {
		return false, nil
	}
	d, changed := domain.Fire(d, attempts, now, closed)
	s.timers[k] = d
	return changed, nil
}

// MarkFiredBatch records successful closes as domain.Fire decides, each on its own; see
// store.Store.MarkFiredBatch. fired[i] tells whether fs[i] fired its timer.
func (s *Store) MarkFiredBatch(_ context.Context, fs []domain.Firing) ([]bool, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	fired := make([]bool, len(fs))
	for i, f := range fs {
		d, ok := s.timers[f.Key]
		if !ok {
			continue
		}
		d, fired[i] = domain.Fire(d, f.Attempts, f.At, f.Closed)
		s.timers[f.Key] = d
	}
	return fired, nil
}

// Rearm sets when a timer that did not fire is claimed again, as domain.Rearm decides.
func (s *Store) Rearm(_ context.Context, k domain.Key, attempts int32, next time.Time, lastError string) (bool, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	d, ok := s.timers[k]
	if !ok {
		return false, nil
	}
	d, changed, err := domain.Rearm(d, attempts, next, lastError)
	if err != nil {
		return false, err
	}
	s.timers[k] = d
	return changed, nil
}

// NextDue returns the earliest next attempt of a pending timer; ok is false when nothing is pending.
func (s *Store) NextDue(_ context.Context) (next time.Time, ok bool, err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, d := range s.timers {
		if d.State == domain.Pending && (!ok || d.NextAttemptAt.Before(next)) {
			next, ok = d.NextAttemptAt, true
		}
	}
	return next, ok, nil
}

// CountPending counts the pending timers and those due before overdueBefore (metrics).
func (s *Store) CountPending(_ context.Context, overdueBefore time.Time) (pending, overdue int, err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, d := range s.timers {
		if d.State != domain.Pending {
			continue
		}
		pending++
		if d.DueAt.Before(overdueBefore) {
			overdue++
		}
	}
	return pending, overdue, nil
}
