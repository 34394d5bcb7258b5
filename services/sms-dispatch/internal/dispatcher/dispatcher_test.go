package dispatcher

import (
	"context"
	"sync"
	"testing"
	"time"

	"go.uber.org/zap"

	"github.com/icpverify/icpverify/pkg/clock"

	"github.com/icpverify/icpverify/services/sms-dispatch/internal/domain"
	"github.com/icpverify/icpverify/services/sms-dispatch/internal/provider"
)

// countingStore records the claims; it has nothing to claim.
type countingStore struct {
	Store
	mu     sync.Mutex
	limits []int
}

func (c *countingStore) Claim(_ context.Context, _ time.Time, _ time.Duration, limit int) ([]domain.Message, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.limits = append(c.limits, limit)
	return nil, nil
}

func (c *countingStore) claims() []int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]int(nil), c.limits...)
}

type nopProvider struct{}

func (nopProvider) Name() string { return "nop" }
func (nopProvider) Send(context.Context, provider.Message) (provider.Accepted, error) {
	return provider.Accepted{}, nil
}

// TestWakeWakesOneWorker: one stored message (one Wake) makes one worker run one claim of one
// message, not every idle worker an empty claim.
func TestWakeWakesOneWorker(t *testing.T) {
	cs := &countingStore{}
	d := &Dispatcher{Store: cs, Provider: nopProvider{}, Clock: clock.NewFake(time.Unix(0, 0)), Log: zap.NewNop(),
		Workers: 16, Poll: time.Hour, SendTimeout: time.Second}
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Go(func() { _ = d.Run(ctx) })
	defer func() { cancel(); wg.Wait() }()
	// At start every worker looks for a backlog once.
	waitUntil(t, func() bool { return len(cs.claims()) == 16 })
	waitUntil(t, d.settled)
	before := len(cs.claims())
	d.Wake()
	waitUntil(t, func() bool { return len(cs.claims()) > before })
	waitUntil(t, d.settled)
	got := cs.claims()[before:]
	if len(got) != 1 || got[0] != 1 {
		t.Fatalf("claims after one Wake: %v, want one claim of 1", got)
	}
	// Wakes that pile up while nobody claims are taken by one claim (up to Batch).
	d.pending.Add(5)
	before = len(cs.claims())
	d.Wake()
	waitUntil(t, func() bool { return len(cs.claims()) > before })
	waitUntil(t, d.settled)
	if got := cs.claims()[before:]; len(got) != 1 || got[0] != 6 {
		t.Fatalf("claims after 6 pending Wakes: %v, want one claim of 6", got)
	}
}

// settled: every worker is parked and no wake-up is waiting, so no further claim can start (the
// poll is an hour away): whatever claims a step caused have all been recorded.
func (d *Dispatcher) settled() bool {
	return d.idle.Load() == int64(d.Workers) && len(d.signal) == 0 && d.pending.Load() == 0
}

func waitUntil(t *testing.T, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal("condition not reached in time")
		}
		time.Sleep(time.Millisecond)
	}
}
