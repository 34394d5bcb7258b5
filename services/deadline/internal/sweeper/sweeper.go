// Package sweeper fires due deadline timers: it claims them from the store (SKIP LOCKED + lease, so
// several replicas share the work), asks verification to close the session if it is incomplete, and
// records the outcome on the timer row, which is also the retry state (no outbox needed here).
package sweeper

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"go.uber.org/zap"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/icpverify/icpverify/pkg/clock"
	"github.com/icpverify/icpverify/pkg/errs"
	verificationv1 "github.com/icpverify/icpverify/pkg/gen/icp/verification/v1"
	"github.com/icpverify/icpverify/pkg/logging"
	"github.com/icpverify/icpverify/pkg/outbox"
	"github.com/icpverify/icpverify/pkg/rpc"
	"github.com/icpverify/icpverify/services/deadline/internal/domain"
)

// Store is what the sweeper needs from storage.
type Store interface {
	Claim(ctx context.Context, now time.Time, batch int, lease time.Duration) ([]domain.Deadline, error)
	// MarkFiredBatch records a batch's successful closes at once; fired[i] tells whether fs[i]
	// fired its timer (false: cancelled meanwhile, or re-claimed after the lease ran out).
	MarkFiredBatch(ctx context.Context, fs []domain.Firing) (fired []bool, err error)
	Rearm(ctx context.Context, k domain.Key, attempts int32, next time.Time, lastError string) (bool, error)
	NextDue(ctx context.Context) (time.Time, bool, error)
}

// Verification is the two calls the sweeper makes, one per timer kind; the generated
// verificationv1.VerificationInternalServiceClient satisfies it.
type Verification interface {
	CloseIfIncomplete(ctx context.Context, in *verificationv1.CloseIfIncompleteRequest, opts ...grpc.CallOption) (*verificationv1.CloseIfIncompleteResponse, error)
	CloseIfIncompleteBatch(ctx context.Context, in *verificationv1.CloseIfIncompleteBatchRequest, opts ...grpc.CallOption) (*verificationv1.CloseIfIncompleteBatchResponse, error)
	AutoResend(ctx context.Context, in *verificationv1.AutoResendRequest, opts ...grpc.CallOption) (*verificationv1.AutoResendResponse, error)
}

// Sweeper fires due timers. Zero fields get defaults on first use.
type Sweeper struct {
	Store        Store
	Verification Verification
	Clock        clock.Clock
	Log          *zap.Logger
	// Interval is the idle wait between claims (shortened when a timer falls due sooner).
	Interval time.Duration
	// Batch is how many timers one claim takes; Concurrency how many close calls run at once.
	Batch, Concurrency int
	// Lease hides a claimed timer from other sweepers; it must exceed CallTimeout.
	Lease, CallTimeout time.Duration
	// Metrics counts fired and re-armed timers; nil counts nothing.
	Metrics *Metrics

	once sync.Once
	// batchCalls: the close timers of a batch go in one CloseIfIncompleteBatch call (off once
	// verification answered Unimplemented).
	batchCalls atomic.Bool
}

func (s *Sweeper) init() {
	s.once.Do(func() {
		if s.Interval <= 0 {
			s.Interval = 500 * time.Millisecond
		}
		if s.Batch <= 0 {
			s.Batch = 100
		}
		if s.Concurrency <= 0 {
			s.Concurrency = 16
		}
		if s.Lease <= 0 {
			s.Lease = 30 * time.Second
		}
		if s.CallTimeout <= 0 {
			s.CallTimeout = min(10*time.Second, s.Lease/3)
		}
		if s.Log == nil {
			s.Log = zap.NewNop()
		}
		s.batchCalls.Store(true)
	})
}

// pipeline is how many claimed batches Run fires at once: the next batch is claimed as soon as the
// previous one's close calls have all started, so the Concurrency call slots (shared by the batches
// in flight) do not sit idle while a batch's last calls finish, its firings are recorded and the next
// claim runs.
const pipeline = 2

// Run sweeps until ctx ends. A full batch is followed by another claim as soon as its calls have all
// started; otherwise it waits Interval, or less when the earliest pending timer falls due sooner. It
// returns once the batches in flight are recorded.
func (s *Sweeper) Run(ctx context.Context) error {
	s.init()
	sem := make(chan struct{}, s.Concurrency)
	slots := make(chan struct{}, pipeline)
	var inflight sync.WaitGroup
	defer inflight.Wait()
	for {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case slots <- struct{}{}:
		}
		batch, err := s.Store.Claim(ctx, s.Clock.Now(), s.Batch, s.Lease)
		if err != nil && ctx.Err() == nil {
			s.Log.Warn("deadline claim failed", zap.Error(err))
		}
		if len(batch) == 0 {
			<-slots
		} else {
			started := make(chan struct{})
			inflight.Go(func() {
				defer func() { <-slots }()
				s.fireBatch(ctx, batch, sem, started)
			})
			<-started
		}
		if err == nil && len(batch) == s.Batch && ctx.Err() == nil {
			continue // more may be due; but a long backlog must not delay shutdown
		}
		wait := s.Interval
		if err == nil {
			if next, ok, nerr := s.Store.NextDue(ctx); nerr == nil && ok {
				wait = min(wait, max(next.Sub(s.Clock.Now()), 0))
			}
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(wait):
		}
	}
}

// RunOnce claims one batch and fires it; it returns how many timers it claimed.
func (s *Sweeper) RunOnce(ctx context.Context) (int, error) {
	s.init()
	batch, err := s.Store.Claim(ctx, s.Clock.Now(), s.Batch, s.Lease)
	if err != nil {
		return 0, err
	}
	s.fireBatch(ctx, batch, make(chan struct{}, s.Concurrency), nil)
	return len(batch), nil
}

// fireBatch makes the close calls of a claimed batch, at most cap(sem) at once, closes started (if
// not nil) once every call has started, re-arms the timers that did not fire one by one and records
// the fired ones together in one MarkFiredBatch.
func (s *Sweeper) fireBatch(ctx context.Context, batch []domain.Deadline, sem chan struct{}, started chan<- struct{}) {
	var wg sync.WaitGroup
	var mu sync.Mutex
	firings := make([]domain.Firing, 0, len(batch))
	keep := func(f domain.Firing, ok bool) {
		if ok {
			mu.Lock()
			firings = append(firings, f)
			mu.Unlock()
		}
	}
	// The close timers go to verification in one call (one slot); noon timers one call each.
	var closes []domain.Deadline
	for _, d := range batch {
		if d.Kind != domain.KindNoonResend && s.batchCalls.Load() {
			closes = append(closes, d)
			continue
		}
		sem <- struct{}{}
		wg.Go(func() {
			defer func() { <-sem }()
			acted, err := s.call(ctx, d)
			keep(s.settle(ctx, d, acted, err))
		})
	}
	if len(closes) > 0 {
		sem <- struct{}{}
		wg.Go(func() {
			defer func() { <-sem }()
			for i, r := range s.closeAll(ctx, closes) {
				keep(s.settle(ctx, closes[i], r.acted, r.err))
			}
		})
	}
	if started != nil {
		close(started)
	}
	wg.Wait()
	if len(firings) == 0 {
		return
	}
	// The bookkeeping must land even while shutting down, or the timers wait for their lease to expire.
	bg, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
	defer cancel()
	fired, err := s.Store.MarkFiredBatch(bg, firings)
	if err != nil {
		s.Log.Warn("deadlines closed but not recorded; they will be tried again after their lease", zap.Int("timers", len(firings)), zap.Error(err))
		return
	}
	for i, f := range firings {
		log := s.Log.With(logging.OrderID(f.Key.OrderID), logging.Submission(f.Key.Submission), zap.Int32("attempt", f.Attempts))
		if !fired[i] {
			log.Info("deadline no longer ours (cancelled, or re-claimed after the lease ran out); left as it is")
			continue
		}
		if f.Key.Kind == domain.KindNoonResend {
			s.Metrics.noonOne(f.Closed)
			log.Info("noon resend fired", zap.Bool("sent", f.Closed))
			continue
		}
		s.Metrics.firedOne(f.Closed)
		log.Info("deadline fired", zap.Bool("closed", f.Closed))
	}
}

// RequestID is the deterministic request_id of the call of one timer, so verification recognises a
// repeated call (after a lease expiry, from another replica) as the same request.
func RequestID(k domain.Key) string {
	if k.Kind == domain.KindNoonResend {
		return fmt.Sprintf("deadline:noon:%s:%d", k.OrderID, k.Submission)
	}
	return fmt.Sprintf("deadline:close:%s:%d", k.OrderID, k.Submission)
}

// call makes the verification call of one timer's kind: acted is whether it closed the session (a
// close timer) or sent automatic codes (a noon resend timer).
func (s *Sweeper) call(ctx context.Context, d domain.Deadline) (acted bool, err error) {
	ctx, cancel := context.WithTimeout(ctx, s.CallTimeout)
	defer cancel()
	if d.Kind == domain.KindNoonResend {
		resp, err := s.Verification.AutoResend(ctx, &verificationv1.AutoResendRequest{
			RequestId: RequestID(d.Key), OrderId: d.OrderID, Submission: d.Submission,
		})
		return len(resp.GetVerifierIds()) > 0, err
	}
	resp, err := s.Verification.CloseIfIncomplete(ctx, &verificationv1.CloseIfIncompleteRequest{
		RequestId: RequestID(d.Key), OrderId: d.OrderID, Submission: d.Submission,
	})
	return resp.GetClosed(), err
}

// callResult is what verification answered for one timer.
type callResult struct {
	acted bool
	err   error
}

// closeAll makes the close calls of a batch's close timers in one CloseIfIncompleteBatch call, each
// item answered as its own CloseIfIncomplete call would be. A verification without the batch method
// (an older replica during a rolling upgrade) answers Unimplemented: then, and from then on, the
// timers are called one by one.
func (s *Sweeper) closeAll(ctx context.Context, ds []domain.Deadline) []callResult {
	if len(ds) > errs.MaxBatchItems { // a --sweep-batch above what one call may carry
		return append(s.closeAll(ctx, ds[:errs.MaxBatchItems]), s.closeAll(ctx, ds[errs.MaxBatchItems:])...)
	}
	out := make([]callResult, len(ds))
	req := &verificationv1.CloseIfIncompleteBatchRequest{Requests: make([]*verificationv1.CloseIfIncompleteRequest, len(ds))}
	for i, d := range ds {
		req.Requests[i] = &verificationv1.CloseIfIncompleteRequest{RequestId: RequestID(d.Key), OrderId: d.OrderID, Submission: d.Submission}
	}
	callCtx, cancel := context.WithTimeout(ctx, s.CallTimeout)
	resp, err := s.Verification.CloseIfIncompleteBatch(callCtx, req)
	cancel()
	switch {
	case status.Code(err) == codes.Unimplemented:
		s.batchCalls.Store(false)
		s.Log.Warn("verification has no CloseIfIncompleteBatch (an older version?): closing deadlines one call each")
		for i, d := range ds { // this once in the one slot the batch holds; later batches call in parallel
			out[i].acted, out[i].err = s.call(ctx, d)
		}
	case err != nil:
		for i := range out {
			out[i].err = err
		}
	case len(resp.GetResults()) != len(ds):
		err = status.Errorf(codes.Internal, "CloseIfIncompleteBatch answered %d results for %d requests", len(resp.GetResults()), len(ds))
		for i := range out {
			out[i].err = err
		}
	default:
		for i, r := range resp.GetResults() {
			if e := r.GetError(); e != nil {
				out[i].err = rpc.ItemErr(e)
			} else {
				out[i].acted = r.GetResponse().GetClosed()
			}
		}
	}
	return out
}

// settle records what verification answered for one claimed timer. A timer that fired is returned
// (ok) for the batch to record; one that did not is re-armed here.
func (s *Sweeper) settle(ctx context.Context, d domain.Deadline, acted bool, err error) (f domain.Firing, ok bool) {
	log := s.Log.With(logging.OrderID(d.OrderID), logging.Submission(d.Submission), zap.Int32("attempt", d.Attempts))
	if d.Kind == domain.KindNoonResend {
		log = log.With(zap.String("timer", "noon_resend"))
	}
	// The bookkeeping must land even while shutting down, or the timer waits for its lease to expire.
	bg, cancelBg := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
	defer cancelBg()
	now := s.Clock.Now()
	reason := rpc.Reason(err)
	outcome := domain.Classify(err == nil, rpc.HasReason(err, verificationv1.ErrorReason_ERROR_REASON_DEADLINE_NOT_REACHED))
	if outcome == domain.OutcomeFired {
		return domain.Firing{Key: d.Key, Attempts: d.Attempts, At: now, Closed: acted}, true
	}
	next := domain.NextAttempt(outcome, d.DueAt, now, outbox.Backoff(int(d.Attempts)))
	fields := []zap.Field{zap.Time("next_attempt", next), zap.String("grpc_code", status.Code(err).String()), zap.String("reason", reason)}
	switch {
	case outcome == domain.OutcomeNotReached:
		s.Metrics.rearmedOne("not_reached")
		log.Info("verification says the timer's time is not reached yet; re-armed", fields...)
	case rpc.HasReason(err, verificationv1.ErrorReason_ERROR_REASON_SESSION_NOT_FOUND):
		s.Metrics.rearmedOne("error")
		log.Warn("verification has no session for this submission yet (OpenSession may lag); will retry", fields...)
	default:
		s.Metrics.rearmedOne("error")
		log.Warn("verification call failed; will retry", append(fields, zap.Error(err))...)
	}
	if _, rerr := s.Store.Rearm(bg, d.Key, d.Attempts, next, lastError(err)); rerr != nil {
		log.Warn("could not re-arm deadline; it will be tried again after its lease", zap.Error(rerr))
	}
	return domain.Firing{}, false
}

// lastError is what the timer row keeps of a failure: the code, the reason and the status message,
// which services never fill with personal data; cut short so a huge message cannot bloat the row.
func lastError(err error) string {
	st := status.Convert(err)
	msg := st.Code().String()
	if r := rpc.Reason(err); r != "" {
		msg += " " + r
	}
	if m := st.Message(); m != "" {
		msg += ": " + m
	}
	if len(msg) > 256 {
		msg = strings.ToValidUTF8(msg[:256], "") // a cut rune would make PostgreSQL refuse the text
	}
	return msg
}
