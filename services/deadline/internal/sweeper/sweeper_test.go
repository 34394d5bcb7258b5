package sweeper_test

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"go.uber.org/zap"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/icpverify/icpverify/pkg/clock"
	"github.com/icpverify/icpverify/pkg/errs"
	deadlinev1 "github.com/icpverify/icpverify/pkg/gen/icp/deadline/v1"
	verificationv1 "github.com/icpverify/icpverify/pkg/gen/icp/verification/v1"
	"github.com/icpverify/icpverify/pkg/outbox"
	"github.com/icpverify/icpverify/pkg/rpc"
	"github.com/icpverify/icpverify/services/deadline/internal/domain"
	"github.com/icpverify/icpverify/services/deadline/internal/store/memstore"
	"github.com/icpverify/icpverify/services/deadline/internal/store/storetest"
	"github.com/icpverify/icpverify/services/deadline/internal/sweeper"
)

var t0 = time.Date(2026, 11, 27, 10, 0, 0, 0, time.UTC)

// fakeVerification records every call with the fake time it arrived at; answer decides the reply.
type fakeVerification struct {
	clk    clock.Clock
	mu     sync.Mutex
	calls  map[string]int
	early  []string
	dues   map[string]time.Time
	answer func(req *verificationv1.CloseIfIncompleteRequest, n int) (*verificationv1.CloseIfIncompleteResponse, error)
	// batches counts CloseIfIncompleteBatch calls; noBatch answers them Unimplemented.
	batches int
	noBatch bool
}

func newFake(clk clock.Clock) *fakeVerification {
	return &fakeVerification{clk: clk, calls: map[string]int{}, dues: map[string]time.Time{}}
}

// AutoResend is the noon timers' call; these tests schedule close timers only.
func (f *fakeVerification) AutoResend(context.Context, *verificationv1.AutoResendRequest, ...grpc.CallOption) (*verificationv1.AutoResendResponse, error) {
	return nil, status.Error(codes.Unimplemented, "no noon timers here")
}

func (f *fakeVerification) CloseIfIncomplete(_ context.Context, req *verificationv1.CloseIfIncompleteRequest, _ ...grpc.CallOption) (*verificationv1.CloseIfIncompleteResponse, error) {
	f.mu.Lock()
	key := fmt.Sprintf("%s:%d", req.GetOrderId(), req.GetSubmission())
	f.calls[key]++
	n := f.calls[key]
	if due, ok := f.dues[key]; ok && f.clk.Now().Before(due) {
		f.early = append(f.early, key)
	}
	want := sweeper.RequestID(domain.Key{OrderID: req.GetOrderId(), Submission: req.GetSubmission()})
	f.mu.Unlock()
	if req.GetRequestId() != want {
		return nil, status.Error(codes.InvalidArgument, "bad request id "+req.GetRequestId())
	}
	if f.answer != nil {
		return f.answer(req, n)
	}
	return &verificationv1.CloseIfIncompleteResponse{Closed: true}, nil
}

// CloseIfIncompleteBatch answers each item as CloseIfIncomplete (or Unimplemented, as an older
// verification would, when noBatch is set); batches counts the calls.
func (f *fakeVerification) CloseIfIncompleteBatch(ctx context.Context, req *verificationv1.CloseIfIncompleteBatchRequest, _ ...grpc.CallOption) (*verificationv1.CloseIfIncompleteBatchResponse, error) {
	f.mu.Lock()
	f.batches++
	f.mu.Unlock()
	if f.noBatch {
		return nil, status.Error(codes.Unimplemented, "unknown method CloseIfIncompleteBatch")
	}
	return storetest.BatchOfSingles(req, func(r *verificationv1.CloseIfIncompleteRequest) (*verificationv1.CloseIfIncompleteResponse, error) {
		return f.CloseIfIncomplete(ctx, r)
	}), nil
}

func (f *fakeVerification) count(key string) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.calls[key]
}

// statusErr builds the status a real verification server would send for a domain error.
func statusErr(e *errs.Error) error { return rpc.ToStatus(zap.NewNop(), "test", e) }

// setup runs the sweeper on the memory engine: its logic does not depend on the engine, and both
// engines' claims, leases and guards are tested by the store suite (storetest), which also runs two
// sweepers against each engine.
func setup(t *testing.T) (*memstore.Store, *clock.Fake, *fakeVerification, *sweeper.Sweeper) {
	t.Helper()
	clk := clock.NewFake(t0)
	st := memstore.New(clk)
	fake := newFake(clk)
	sw := &sweeper.Sweeper{Store: st, Verification: fake, Clock: clk, Log: zap.NewNop(), Interval: 10 * time.Millisecond,
		Batch: 100, Concurrency: 8, Lease: 30 * time.Second}
	return st, clk, fake, sw
}

func schedule(t *testing.T, st *memstore.Store, fake *fakeVerification, order string, sub int32, due time.Time) {
	t.Helper()
	req := &deadlinev1.ScheduleDeadlineRequest{OrderId: order, Submission: sub}
	if _, err := st.Schedule(context.Background(), "", req, domain.Key{OrderID: order, Submission: sub}, due); err != nil {
		t.Fatal(err)
	}
	fake.mu.Lock()
	fake.dues[fmt.Sprintf("%s:%d", order, sub)] = due
	fake.mu.Unlock()
}

func get(t *testing.T, st *memstore.Store, order string, sub int32) domain.Deadline {
	t.Helper()
	d, err := st.GetKey(context.Background(), domain.Key{OrderID: order, Submission: sub})
	if err != nil {
		t.Fatal(err)
	}
	return d
}

func runOnce(t *testing.T, sw *sweeper.Sweeper) int {
	t.Helper()
	n, err := sw.RunOnce(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return n
}

func TestNeverEarly(t *testing.T) {
	t.Parallel()
	st, clk, fake, sw := setup(t)
	due := t0.Add(time.Hour)
	schedule(t, st, fake, "o1", 1, due)
	if n := runOnce(t, sw); n != 0 || fake.count("o1:1") != 0 {
		t.Fatalf("fired an hour early: claimed %d", n)
	}
	clk.Set(due.Add(-time.Microsecond))
	if n := runOnce(t, sw); n != 0 || fake.count("o1:1") != 0 {
		t.Fatalf("fired a microsecond early: claimed %d", n)
	}
	clk.Set(due)
	if n := runOnce(t, sw); n != 1 || fake.count("o1:1") != 1 {
		t.Fatalf("did not fire at due: claimed %d", n)
	}
	d := get(t, st, "o1", 1)
	if d.State != domain.Fired || !d.Closed || !d.FiredAt.Equal(due) || d.Attempts != 1 {
		t.Fatalf("after firing: %+v", d)
	}
	clk.Advance(time.Hour)
	if n := runOnce(t, sw); n != 0 || fake.count("o1:1") != 1 {
		t.Fatal("fired again")
	}
	if len(fake.early) != 0 {
		t.Fatalf("early calls: %v", fake.early)
	}
}

func TestNotReachedRearms(t *testing.T) {
	t.Parallel()
	st, clk, fake, sw := setup(t)
	fake.answer = func(_ *verificationv1.CloseIfIncompleteRequest, n int) (*verificationv1.CloseIfIncompleteResponse, error) {
		if n == 1 {
			return nil, statusErr(errs.FailedPrecondition(rpc.ReasonName(verificationv1.ErrorReason_ERROR_REASON_DEADLINE_NOT_REACHED), "not yet"))
		}
		return &verificationv1.CloseIfIncompleteResponse{Closed: false}, nil
	}
	schedule(t, st, fake, "o1", 1, t0)
	if n := runOnce(t, sw); n != 1 {
		t.Fatalf("claimed %d", n)
	}
	d := get(t, st, "o1", 1)
	if d.State != domain.Pending || !d.NextAttemptAt.Equal(t0.Add(domain.NotReachedDelay)) || d.LastError == "" {
		t.Fatalf("after DEADLINE_NOT_REACHED: %+v", d)
	}
	clk.Advance(domain.NotReachedDelay - time.Millisecond)
	if n := runOnce(t, sw); n != 0 {
		t.Fatal("re-armed timer claimed before its delay")
	}
	clk.Advance(time.Millisecond)
	if n := runOnce(t, sw); n != 1 {
		t.Fatal("re-armed timer not claimed")
	}
	d = get(t, st, "o1", 1)
	if d.State != domain.Fired || d.Closed || d.Attempts != 2 || d.LastError != "" {
		t.Fatalf("after second attempt: %+v", d)
	}
}

func TestTransientErrorRetriedWithBackoff(t *testing.T) {
	t.Parallel()
	st, clk, fake, sw := setup(t)
	fake.answer = func(req *verificationv1.CloseIfIncompleteRequest, n int) (*verificationv1.CloseIfIncompleteResponse, error) {
		switch {
		case req.GetOrderId() == "lag" && n == 1:
			return nil, statusErr(errs.NotFound(rpc.ReasonName(verificationv1.ErrorReason_ERROR_REASON_SESSION_NOT_FOUND), "no session"))
		case n <= 2:
			return nil, status.Error(codes.Unavailable, "connection refused")
		}
		return &verificationv1.CloseIfIncompleteResponse{Closed: true}, nil
	}
	schedule(t, st, fake, "o1", 1, t0)
	schedule(t, st, fake, "lag", 1, t0)
	runOnce(t, sw)
	for _, o := range []string{"o1", "lag"} {
		d := get(t, st, o, 1)
		if d.State != domain.Pending || d.Attempts != 1 || !d.NextAttemptAt.Equal(t0.Add(outbox.Backoff(1))) || d.LastError == "" {
			t.Fatalf("%s after first failure: %+v", o, d)
		}
	}
	if d := get(t, st, "lag", 1); d.LastError != "NotFound SESSION_NOT_FOUND: no session" {
		t.Fatalf("last_error %q", d.LastError)
	}
	clk.Advance(outbox.Backoff(1))
	if n := runOnce(t, sw); n != 2 {
		t.Fatalf("claimed %d after first backoff", n)
	}
	// The backoff grows with the attempts.
	d := get(t, st, "o1", 1)
	if d.State != domain.Pending || d.Attempts != 2 || !d.NextAttemptAt.Equal(clk.Now().Add(outbox.Backoff(2))) {
		t.Fatalf("after second failure: %+v", d)
	}
	clk.Advance(outbox.Backoff(2))
	runOnce(t, sw)
	for _, o := range []string{"o1", "lag"} {
		if d := get(t, st, o, 1); d.State != domain.Fired || d.Attempts != 3 || !d.Closed {
			t.Fatalf("%s not fired after retries: %+v", o, d)
		}
	}
}

func TestLateWorkerAfterLeaseExpiryCannotOverwrite(t *testing.T) {
	t.Parallel()
	st, clk, fake, slow := setup(t)
	started, release := make(chan struct{}), make(chan struct{})
	fake.answer = func(_ *verificationv1.CloseIfIncompleteRequest, n int) (*verificationv1.CloseIfIncompleteResponse, error) {
		if n == 1 { // the first worker hangs past its lease
			close(started)
			<-release
			return &verificationv1.CloseIfIncompleteResponse{Closed: false}, nil
		}
		return &verificationv1.CloseIfIncompleteResponse{Closed: true}, nil
	}
	schedule(t, st, fake, "o1", 1, t0)
	done := make(chan int)
	go func() { n, _ := slow.RunOnce(context.Background()); done <- n }()
	<-started
	clk.Advance(slow.Lease)
	other := &sweeper.Sweeper{Store: st, Verification: fake, Clock: clk, Log: zap.NewNop(), Lease: slow.Lease}
	if n := runOnce(t, other); n != 1 {
		t.Fatalf("second sweeper claimed %d after the lease expired", n)
	}
	close(release)
	<-done
	d := get(t, st, "o1", 1)
	if d.State != domain.Fired || !d.Closed || d.Attempts != 2 || fake.count("o1:1") != 2 {
		t.Fatalf("late worker overwrote the result: %+v, calls %d", d, fake.count("o1:1"))
	}
}

// backlogStore always has another full batch due, like a huge backlog.
type backlogStore struct{ sweeper.Store }

func (backlogStore) Claim(context.Context, time.Time, int, time.Duration) ([]domain.Deadline, error) {
	return []domain.Deadline{{Key: domain.Key{OrderID: "o", Submission: 1}, DueAt: t0, State: domain.Pending, Attempts: 1}}, nil
}

func (backlogStore) MarkFiredBatch(_ context.Context, fs []domain.Firing) ([]bool, error) {
	fired := make([]bool, len(fs))
	for i := range fired {
		fired[i] = true
	}
	return fired, nil
}

func (backlogStore) NextDue(context.Context) (time.Time, bool, error) { return t0, true, nil }

func TestRunStopsDuringBacklog(t *testing.T) {
	t.Parallel()
	clk := clock.NewFake(t0)
	sw := &sweeper.Sweeper{Store: backlogStore{}, Verification: newFake(clk), Clock: clk, Log: zap.NewNop(), Batch: 1}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- sw.Run(ctx) }()
	cancel()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("Run kept claiming full batches after its context ended")
	}
}
