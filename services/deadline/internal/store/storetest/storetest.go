// Package storetest is the behaviour suite every deadline storage engine must pass: the PostgreSQL
// store and the memory engine run the same tests, through the interfaces the handlers and the sweeper
// use, so the two cannot drift apart. Concurrency tests are here too: the memory engine must be just
// as exact as row locks.
package storetest

import (
	"context"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/icpverify/icpverify/pkg/clock"
	batchv1 "github.com/icpverify/icpverify/pkg/gen/icp/batch/v1"
	deadlinev1 "github.com/icpverify/icpverify/pkg/gen/icp/deadline/v1"
	verificationv1 "github.com/icpverify/icpverify/pkg/gen/icp/verification/v1"
	"github.com/icpverify/icpverify/pkg/rpc"
	"github.com/icpverify/icpverify/services/deadline/internal/domain"
	"github.com/icpverify/icpverify/services/deadline/internal/grpcapi"
	"github.com/icpverify/icpverify/services/deadline/internal/sweeper"
)

// Store is what an engine offers: the handlers' and the sweeper's interfaces, plus GetKey for tests.
type Store interface {
	grpcapi.Store
	sweeper.Store
	sweeper.Counter
	GetKey(ctx context.Context, k domain.Key) (domain.Deadline, error)
	// MarkFired is MarkFiredBatch of one firing.
	MarkFired(ctx context.Context, k domain.Key, attempts int32, now time.Time, closed bool) (bool, error)
}

// Engine is one storage engine under test.
type Engine struct {
	Store Store
	// Replica is a second handle on the same data, as another replica of the service has: its own
	// connection pool on PostgreSQL, the same store in memory.
	Replica Store
}

// T0 is the fake clock's start in every test.
var T0 = time.Date(2026, 11, 27, 10, 0, 0, 0, time.UTC)

// env is one test's engine and the fake clock it runs on, started at T0.
type env struct {
	Engine
	clock *clock.Fake
}

// Run runs the whole suite against the engine newEngine builds (a fresh, empty one per test).
func Run(t *testing.T, newEngine func(t *testing.T, clk *clock.Fake) Engine) {
	tests := []struct {
		name string
		fn   func(t *testing.T, e *env)
	}{
		{"ScheduleIdempotentAndConflict", testScheduleIdempotentAndConflict},
		{"ScheduleConcurrentSameKey", testScheduleConcurrentSameKey},
		{"ScheduleConcurrentSubmissions", testScheduleConcurrentSubmissions},
		{"NewerSubmissionCancelsOlder", testNewerSubmissionCancelsOlder},
		{"Cancel", testCancel},
		{"CancelBatch", testCancelBatch},
		{"ConcurrentSchedulesAndCancels", testConcurrentSchedulesAndCancels},
		{"CancelOvertakesSchedule", testCancelOvertakesSchedule},
		{"ClaimHonoursNowAndLease", testClaimHonoursNowAndLease},
		{"ConcurrentClaimsDisjoint", testConcurrentClaimsDisjoint},
		{"MarkFiredBatch", testMarkFiredBatch},
		{"MarkFiredBatchRacesCancel", testMarkFiredBatchRacesCancel},
		{"List", testList},
		{"TwoSweepersFireEachTimerOnce", testTwoSweepersFireEachTimerOnce},
		{"NoonTimer", testNoonTimer},
		{"NoonTimerFollowsItsDeadline", testNoonTimerFollowsItsDeadline},
		{"TwoSweepersFireEachNoonTimerOnce", testTwoSweepersFireEachNoonTimerOnce},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			clk := clock.NewFake(T0)
			tc.fn(t, &env{Engine: newEngine(t, clk), clock: clk})
		})
	}
}

func key(order string, sub int32) domain.Key { return domain.Key{OrderID: order, Submission: sub} }

func schedule(s Store, reqID, order string, sub int32, due time.Time) (domain.Deadline, error) {
	req := &deadlinev1.ScheduleDeadlineRequest{RequestId: reqID, OrderId: order, Submission: sub}
	return s.Schedule(context.Background(), reqID, req, key(order, sub), due)
}

func mustSchedule(t *testing.T, s Store, order string, sub int32, due time.Time) domain.Deadline {
	t.Helper()
	d, err := schedule(s, "", order, sub, due)
	if err != nil {
		t.Fatalf("schedule %s/%d: %v", order, sub, err)
	}
	return d
}

func cancel(s Store, reqID string, k domain.Key) (domain.Deadline, error) {
	req := &deadlinev1.CancelDeadlineRequest{RequestId: reqID, OrderId: k.OrderID, Submission: k.Submission}
	return s.Cancel(context.Background(), reqID, req, k)
}

func mustGet(t *testing.T, s Store, k domain.Key) domain.Deadline {
	t.Helper()
	d, err := s.GetKey(context.Background(), k)
	if err != nil {
		t.Fatalf("get %v: %v", k, err)
	}
	return d
}

// listAll pages through every timer in state ("" = all), pageSize at a time, each page resuming
// after the position of the last timer of the one before, as ListDeadlines does.
func listAll(t *testing.T, s Store, state domain.State, pageSize int) []domain.Deadline {
	t.Helper()
	var all []domain.Deadline
	var after *domain.Position
	for {
		page, err := s.List(context.Background(), state, after, pageSize)
		if err != nil {
			t.Fatal(err)
		}
		all = append(all, page...)
		if len(page) < pageSize {
			return all
		}
		p := domain.PositionOf(page[len(page)-1])
		after = &p
	}
}

// fakeVerification answers CloseIfIncomplete and records, per timer, the calls, the failures it
// injected and any call before the due time.
type fakeVerification struct {
	clk      clock.Clock
	calls    atomic.Int64
	mu       sync.Mutex
	perKey   map[domain.Key]int
	failures map[domain.Key]int
	dues     map[domain.Key]time.Time
	early    []domain.Key
}

func (f *fakeVerification) CloseIfIncomplete(_ context.Context, req *verificationv1.CloseIfIncompleteRequest, _ ...grpc.CallOption) (*verificationv1.CloseIfIncompleteResponse, error) {
	if err := f.call(key(req.GetOrderId(), req.GetSubmission()), req.GetRequestId()); err != nil {
		return nil, err
	}
	return &verificationv1.CloseIfIncompleteResponse{Closed: true}, nil
}

// CloseIfIncompleteBatch answers each item as CloseIfIncomplete, as verification does.
func (f *fakeVerification) CloseIfIncompleteBatch(ctx context.Context, req *verificationv1.CloseIfIncompleteBatchRequest, _ ...grpc.CallOption) (*verificationv1.CloseIfIncompleteBatchResponse, error) {
	return BatchOfSingles(req, func(r *verificationv1.CloseIfIncompleteRequest) (*verificationv1.CloseIfIncompleteResponse, error) {
		return f.CloseIfIncomplete(ctx, r)
	}), nil
}

// BatchOfSingles answers a CloseIfIncompleteBatch as verification does: each item by single, its
// error carried as the item's code, reason and message. For the test fakes of verification.
func BatchOfSingles(req *verificationv1.CloseIfIncompleteBatchRequest,
	single func(*verificationv1.CloseIfIncompleteRequest) (*verificationv1.CloseIfIncompleteResponse, error)) *verificationv1.CloseIfIncompleteBatchResponse {
	out := &verificationv1.CloseIfIncompleteBatchResponse{}
	for _, r := range req.GetRequests() {
		resp, err := single(r)
		if err != nil {
			st := status.Convert(err) // the fakes' errors are statuses already
			out.Results = append(out.Results, &verificationv1.CloseIfIncompleteResult{Error: &batchv1.ItemError{
				Code: int32(st.Code()), Reason: rpc.Reason(err), Message: st.Message()}})
			continue
		}
		out.Results = append(out.Results, &verificationv1.CloseIfIncompleteResult{Response: resp})
	}
	return out
}

// AutoResend is the noon resend timers' call, recorded like CloseIfIncomplete under the noon key.
func (f *fakeVerification) AutoResend(_ context.Context, req *verificationv1.AutoResendRequest, _ ...grpc.CallOption) (*verificationv1.AutoResendResponse, error) {
	if err := f.call(key(req.GetOrderId(), req.GetSubmission()).Noon(), req.GetRequestId()); err != nil {
		return nil, err
	}
	return &verificationv1.AutoResendResponse{Outcome: verificationv1.AutoResendOutcome_AUTO_RESEND_OUTCOME_SENT, VerifierIds: []string{"v1"}}, nil
}

func (f *fakeVerification) call(k domain.Key, requestID string) error {
	c := f.calls.Add(1)
	time.Sleep(time.Millisecond) // slow enough for the two sweepers to overlap
	f.mu.Lock()
	defer f.mu.Unlock()
	f.perKey[k]++
	if f.clk.Now().Before(f.dues[k]) {
		f.early = append(f.early, k)
	}
	if requestID != sweeper.RequestID(k) {
		return status.Error(codes.InvalidArgument, "bad request id")
	}
	if c%17 == 0 {
		f.failures[k]++
		return status.Error(codes.Unavailable, "flaky")
	}
	return nil
}

// countingStore counts successful firings per timer across sweepers.
type countingStore struct {
	sweeper.Store
	mu    *sync.Mutex
	fired map[domain.Key]int
}

func (c countingStore) MarkFiredBatch(ctx context.Context, fs []domain.Firing) ([]bool, error) {
	ok, err := c.Store.MarkFiredBatch(ctx, fs)
	c.mu.Lock()
	defer c.mu.Unlock()
	for i, f := range fs {
		if err == nil && ok[i] {
			c.fired[f.Key]++
		}
	}
	return ok, err
}
