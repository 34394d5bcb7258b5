package dispatcher_test

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/zap"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/icpverify/icpverify/pkg/clock"
	smsv1 "github.com/icpverify/icpverify/pkg/gen/icp/smsdispatch/v1"

	"github.com/icpverify/icpverify/services/sms-dispatch/internal/dispatcher"
	"github.com/icpverify/icpverify/services/sms-dispatch/internal/domain"
	"github.com/icpverify/icpverify/services/sms-dispatch/internal/grpcapi"
	"github.com/icpverify/icpverify/services/sms-dispatch/internal/provider"
	"github.com/icpverify/icpverify/services/sms-dispatch/internal/store/memstore"
)

// claimCounter counts the claim statements a dispatcher runs.
type claimCounter struct {
	*memstore.Store
	claims atomic.Int64
}

func (c *claimCounter) Claim(ctx context.Context, now time.Time, lease time.Duration, limit int) ([]domain.Message, error) {
	c.claims.Add(1)
	return c.Store.Claim(ctx, now, lease, limit)
}

type recorder struct {
	mu  sync.Mutex
	ids []string
}

func (*recorder) Name() string { return "rec" }
func (r *recorder) Send(_ context.Context, m provider.Message) (provider.Accepted, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.ids = append(r.ids, m.ID)
	return provider.Accepted{}, nil
}
func (r *recorder) sent() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]string(nil), r.ids...)
}

var t0 = time.Date(2026, 11, 26, 2, 0, 0, 0, time.UTC)

func newMessage(t *testing.T, id string) domain.Message {
	t.Helper()
	m, err := domain.NewMessage(domain.SendInput{MessageID: id, Phone: "13812345678", Template: domain.TemplateVerificationCode,
		Params: map[string]string{"code": "123456"}, ExpireAt: t0.Add(time.Hour)}, "ICP备案", t0)
	if err != nil {
		t.Fatal(err)
	}
	return m
}

func eventually(t *testing.T, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal("condition not reached in time")
		}
		time.Sleep(time.Millisecond)
	}
}

// A message handed over by SendMessage (stored claimed) is sent and marked SENT without any claim
// statement.
func TestHandedMessageIsSentWithoutClaim(t *testing.T) {
	clk := clock.NewFake(t0)
	st := &claimCounter{Store: memstore.New(clk)}
	rec := &recorder{}
	d := &dispatcher.Dispatcher{Store: st, Provider: rec, Clock: clk, Log: zap.NewNop(),
		Workers: 4, Poll: time.Hour, SendTimeout: time.Second}
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Go(func() { _ = d.Run(ctx) })
	defer func() { cancel(); wg.Wait() }()
	eventually(t, func() bool { return st.claims.Load() == 4 }) // each worker looks for a backlog at start

	until, ok := d.Reserve(t0)
	if !ok || !until.Equal(t0.Add(3*time.Second)) {
		t.Fatalf("Reserve = %v, %v; want ok with the lease (3 x SendTimeout)", until, ok)
	}
	m := newMessage(t, "m1")
	m.Attempts, m.NextAttempt = 1, until
	stored, created, err := st.Create(context.Background(), m)
	if err != nil || !created {
		t.Fatal(created, err)
	}
	d.Handoff(stored)
	eventually(t, func() bool {
		got, _ := st.Get(context.Background(), "m1")
		return got.State == domain.StateSent
	})
	if s := rec.sent(); len(s) != 1 || s[0] != "m1" {
		t.Fatalf("provider got %v, want [m1]", s)
	}
	if n := st.claims.Load(); n != 4 {
		t.Fatalf("%d claims, want only the 4 at start", n)
	}
	// Nothing is waiting for the other worker's claim: the message is not stored unclaimed.
	if msgs, _ := st.Store.Claim(context.Background(), t0.Add(time.Hour), time.Minute, 10); len(msgs) != 0 {
		t.Fatalf("claim found %d messages after the send", len(msgs))
	}
}

// Reserve holds a bounded number of slots (4 per worker); Release gives one back. When it says no,
// SendMessage stores the message unclaimed for the workers' claims.
func TestReserveIsBounded(t *testing.T) {
	clk := clock.NewFake(t0)
	d := &dispatcher.Dispatcher{Store: memstore.New(clk), Provider: &recorder{}, Clock: clk, Log: zap.NewNop(),
		Workers: 1, SendTimeout: time.Second}
	for i := range 4 {
		if _, ok := d.Reserve(t0); !ok {
			t.Fatalf("Reserve %d refused", i+1)
		}
	}
	if _, ok := d.Reserve(t0); ok {
		t.Fatal("fifth Reserve accepted with one worker")
	}
	d.Release()
	if _, ok := d.Reserve(t0); !ok {
		t.Fatal("Reserve refused after a Release")
	}
}

// Stopping the dispatcher still sends what was reserved before the stop and handed over after it,
// and refuses new reservations: nothing handed over waits for its lease.
func TestStopSendsWhatWasHandedOver(t *testing.T) {
	clk := clock.NewFake(t0)
	st := memstore.New(clk)
	rec := &recorder{}
	d := &dispatcher.Dispatcher{Store: st, Provider: rec, Clock: clk, Log: zap.NewNop(),
		Workers: 2, Poll: time.Hour, SendTimeout: time.Second}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- d.Run(ctx) }()

	until, ok := d.Reserve(t0)
	if !ok {
		t.Fatal("Reserve refused")
	}
	cancel() // the stop begins while SendMessage is between Reserve and Handoff
	m := newMessage(t, "late")
	m.Attempts, m.NextAttempt = 1, until
	stored, _, err := st.Create(context.Background(), m)
	if err != nil {
		t.Fatal(err)
	}
	// The workers have stopped once Reserve refuses: the drain must wait for the Handoff.
	eventually(t, func() bool {
		if _, ok := d.Reserve(t0); ok {
			d.Release()
			return false
		}
		return true
	})
	d.Handoff(stored)
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("Run did not return")
	}
	if s := rec.sent(); len(s) != 1 || s[0] != "late" {
		t.Fatalf("provider got %v, want [late]", s)
	}
	if _, ok := d.Reserve(t0); ok {
		t.Fatal("Reserve accepted after the stop")
	}
}

// A process that dies holding a handed message loses nothing: after the lease a claim takes it
// (attempt 2) and it is sent.
func TestHandedMessageOfDeadProcessComesBack(t *testing.T) {
	clk := clock.NewFake(t0)
	st := memstore.New(clk)
	dead := &dispatcher.Dispatcher{Store: st, Provider: &recorder{}, Clock: clk, Log: zap.NewNop(),
		Workers: 1, SendTimeout: time.Second}
	until, _ := dead.Reserve(t0)
	m := newMessage(t, "orphan")
	m.Attempts, m.NextAttempt = 1, until
	if _, _, err := st.Create(context.Background(), m); err != nil {
		t.Fatal(err)
	}
	// (the process dies here, before Handoff)
	clk.Advance(time.Second)
	rec := &recorder{}
	other := &dispatcher.Dispatcher{Store: st, Provider: rec, Clock: clk, Log: zap.NewNop(), Workers: 1, SendTimeout: time.Second}
	if n, _ := other.Drain(context.Background()); n != 0 {
		t.Fatalf("another worker took the message within its lease (%d)", n)
	}
	clk.Advance(3 * time.Second)
	if n, err := other.Drain(context.Background()); n != 1 || err != nil {
		t.Fatalf("Drain after the lease = %d, %v", n, err)
	}
	got, _ := st.Get(context.Background(), "orphan")
	if got.State != domain.StateSent || got.Attempts != 2 || len(rec.sent()) != 1 {
		t.Fatalf("after the lease: %s attempt %d, sent %v", got.State, got.Attempts, rec.sent())
	}
}

// gate is a provider that reports each send and waits to be let go.
type gate struct {
	sending chan string
	proceed chan struct{}
}

func (*gate) Name() string { return "gate" }
func (g *gate) Send(_ context.Context, m provider.Message) (provider.Accepted, error) {
	g.sending <- m.ID
	<-g.proceed
	return provider.Accepted{}, nil
}

// Under load the local queue fills and later messages are stored unclaimed with a Wake; the handed
// ones, stored first, must still go first instead of waiting behind the Wakes for their lease.
func TestHandedMessagesGoBeforeWokenOnes(t *testing.T) {
	clk := clock.NewFake(t0)
	st := &claimCounter{Store: memstore.New(clk)}
	g := &gate{sending: make(chan string), proceed: make(chan struct{})}
	d := &dispatcher.Dispatcher{Store: st, Provider: g, Clock: clk, Log: zap.NewNop(),
		Workers: 1, Poll: time.Hour, SendTimeout: time.Second}
	srv := &grpcapi.Server{Store: st, Clock: clock.NewFake(t0), Log: zap.NewNop(), Dispatcher: d, Signature: "ICP备案"}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { _ = d.Run(ctx); close(done) }()
	eventually(t, func() bool { return st.claims.Load() == 1 })
	send := func(id string, k int) {
		t.Helper()
		if _, err := srv.SendMessage(context.Background(), &smsv1.SendMessageRequest{MessageId: id, Phone: fmt.Sprintf("138%08d", k),
			Template: smsv1.Template_TEMPLATE_VERIFICATION_CODE, Params: map[string]string{"code": "123456"},
			ExpireTime: timestamppb.New(t0.Add(time.Hour))}); err != nil {
			t.Fatal(err)
		}
	}
	send("m0", 0)
	if id := <-g.sending; id != "m0" { // the only worker is now busy with m0
		t.Fatalf("first send %s", id)
	}
	for i := range 4 { // handed: the local queue (4 per worker) is full
		send(fmt.Sprintf("h%d", i), 1+i)
	}
	for i := range 3 { // stored unclaimed, each with a Wake
		send(fmt.Sprintf("w%d", i), 10+i)
	}
	var order []string
	for range 7 {
		g.proceed <- struct{}{}
		order = append(order, <-g.sending)
	}
	// (a batch sends different phones at once: any order among the handed ones)
	if got := fmt.Sprint(slices.Sorted(slices.Values(order[:4]))); got != "[h0 h1 h2 h3]" {
		t.Errorf("send order %v: want the 4 handed messages first", order)
	}
	cancel()
	go func() {
		for range g.sending {
		}
	}()
	close(g.proceed)
	<-done
	close(g.sending) // Run waited for its sends: nothing sends any more, and the loop above ends
}
