// Package sweeper fires due deadline timers: it claims them from the store (SKIP LOCKED + lease, so
// several replicas share the work), asks verification to close the session if it is incomplete, and
// records the outcome on the timer row, which is also the retry state (no outbox needed here).
package sweeper

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"time"

	"go.uber.org/zap"
	"google.golang.org/grpc"
	"google.golang.org/grpc/status"

	"github.com/icpverify/icpverify/pkg/clock"
	verificationv1 "github.com/icpverify/icpverify/pkg/gen/icp/verification/v1"
	"github.com/icpverify/icpverify/pkg/logging"
	"github.com/icpverify/icpverify/pkg/outbox"
	"github.com/icpverify/icpverify/pkg/rpc"
	"github.com/icpverify/icpverify/services/deadline/internal/domain"
)

// Store is what the sweeper needs from storage.
type Store interface {
	Claim(ctx context.Context, now time.Time, batch int, lease time.Duration) ([]domain.Deadline, error)
	MarkFired(ctx context.Context, k domain.Key, attempts int32, now time.Time, closed bool) (bool, error)
	Rearm(ctx context.Context, k domain.Key, attempts int32, next time.Time, lastError string) (bool, error)
	NextDue(ctx context.Context) (time.Time, bool, error)
}

// Verification is the one call the sweeper makes; the generated
// verificationv1.VerificationInternalServiceClient satisfies it.
type Verification interface {
	CloseIfIncomplete(ctx context.Context, in *verificationv1.CloseIfIncompleteRequest, opts ...grpc.CallOption) (*verificationv1.CloseIfIncompleteResponse, error)
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
	})
}

// Run sweeps until ctx ends. A full batch is followed by another claim at once; otherwise it waits
// Interval, or less when the earliest pending timer falls due sooner.
func (s *Sweeper) Run(ctx context.Context) error {
	s.init()
	for {
		n, err := s.RunOnce(ctx)
		if err != nil && ctx.Err() == nil {
			s.Log.Warn("deadline claim failed", zap.Error(err))
		}
		if err == nil && n == s.Batch && ctx.Err() == nil {
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
	sem := make(chan struct{}, s.Concurrency)
	var wg sync.WaitGroup
	for _, d := range batch {
		sem <- struct{}{}
		wg.Go(func() {
			defer func() { <-sem }()
			s.fire(ctx, d)
		})
	}
	wg.Wait()
	return len(batch), nil
}

// RequestID is the deterministic request_id of the close call of one timer, so verification
// recognises a repeated call (after a lease expiry) as the same request.
func RequestID(k domain.Key) string {
	return fmt.Sprintf("deadline:close:%s:%d", k.OrderID, k.Submission)
}

func (s *Sweeper) fire(ctx context.Context, d domain.Deadline) {
	log := s.Log.With(logging.OrderID(d.OrderID), logging.Submission(d.Submission), zap.Int32("attempt", d.Attempts))
	callCtx, cancel := context.WithTimeout(ctx, s.CallTimeout)
	resp, err := s.Verification.CloseIfIncomplete(callCtx, &verificationv1.CloseIfIncompleteRequest{
		RequestId: RequestID(d.Key), OrderId: d.OrderID, Submission: d.Submission,
	})
	cancel()
	// The bookkeeping must land even while shutting down, or the timer waits for its lease to expire.
	bg, cancelBg := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
	defer cancelBg()
	now := s.Clock.Now()
	reason := rpc.Reason(err)
	outcome := domain.Classify(err == nil, reason)
	if outcome == domain.OutcomeFired {
		ok, err := s.Store.MarkFired(bg, d.Key, d.Attempts, now, resp.GetClosed())
		switch {
		case err != nil:
			log.Warn("deadline closed but not recorded; it will be tried again after its lease", zap.Error(err))
		case !ok:
			log.Info("deadline no longer ours (cancelled, or re-claimed after the lease ran out); left as it is")
		default:
			s.Metrics.firedOne(resp.GetClosed())
			log.Info("deadline fired", zap.Bool("closed", resp.GetClosed()))
		}
		return
	}
	next := domain.NextAttempt(outcome, d.DueAt, now, outbox.Backoff(int(d.Attempts)))
	fields := []zap.Field{zap.Time("next_attempt", next), zap.String("grpc_code", status.Code(err).String()), zap.String("reason", reason)}
	switch {
	case outcome == domain.OutcomeNotReached:
		s.Metrics.rearmedOne("not_reached")
		log.Info("verification says the deadline is not reached yet; re-armed", fields...)
	case reason == "SESSION_NOT_FOUND":
		s.Metrics.rearmedOne("error")
		log.Warn("verification has no session for this submission yet (OpenSession may lag); will retry", fields...)
	default:
		s.Metrics.rearmedOne("error")
		log.Warn("close call failed; will retry", append(fields, zap.Error(err))...)
	}
	if _, rerr := s.Store.Rearm(bg, d.Key, d.Attempts, next, lastError(err)); rerr != nil {
		log.Warn("could not re-arm deadline; it will be tried again after its lease", zap.Error(rerr))
	}
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
