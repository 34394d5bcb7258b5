package dispatcher_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"

	"github.com/icpverify/icpverify/pkg/clock"

	"github.com/icpverify/icpverify/services/sms-dispatch/internal/dispatcher"
	"github.com/icpverify/icpverify/services/sms-dispatch/internal/domain"
	"github.com/icpverify/icpverify/services/sms-dispatch/internal/provider"
	"github.com/icpverify/icpverify/services/sms-dispatch/internal/store/memstore"
)

// batchProvider is a provider.BatchProvider that records each SendBatch call and refuses the
// messages refuse names.
type batchProvider struct {
	max    int
	refuse func(id string) error

	mu        sync.Mutex
	calls     [][]string
	texts     map[string]string
	deadlines []time.Duration // time left to each call's deadline when it began
	singles   int             // Send calls (never expected with a batch provider)
}

var _ provider.BatchProvider = (*batchProvider)(nil)

func (*batchProvider) Name() string { return "batch" }

func (b *batchProvider) Send(context.Context, provider.Message) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.singles++
	return errors.New("Send called on a batch provider")
}

func (b *batchProvider) MaxBatch() int { return b.max }

func (b *batchProvider) SendBatch(ctx context.Context, msgs []provider.Message) []error {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.texts == nil {
		b.texts = map[string]string{}
	}
	var ids []string
	errs := make([]error, len(msgs))
	for i, m := range msgs {
		ids = append(ids, m.ID)
		b.texts[m.ID] = m.Text
		if b.refuse != nil {
			errs[i] = b.refuse(m.ID)
		}
	}
	b.calls = append(b.calls, ids)
	if dl, ok := ctx.Deadline(); ok {
		b.deadlines = append(b.deadlines, time.Until(dl))
	} else {
		b.deadlines = append(b.deadlines, -1)
	}
	return errs
}

func (b *batchProvider) sentCalls() [][]string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return slices.Clone(b.calls)
}

// markCounter counts the MarkSentAll statements and their sizes.
type markCounter struct {
	*memstore.Store
	mu    sync.Mutex
	marks []int
}

func (m *markCounter) MarkSentAll(ctx context.Context, ms []domain.Message, provider string, now time.Time, keepText bool) ([]string, error) {
	m.mu.Lock()
	m.marks = append(m.marks, len(ms))
	m.mu.Unlock()
	return m.Store.MarkSentAll(ctx, ms, provider, now, keepText)
}

// batchEnv is a memory store with a fake clock and a dispatcher on a batch provider: caps off,
// 4 attempts, send timeout 1s, lease 30s, no jitter.
type batchEnv struct {
	st    *markCounter
	clock *clock.Fake
	p     *batchProvider
	d     *dispatcher.Dispatcher
	reg   *prometheus.Registry
}

func newBatchEnv(p *batchProvider, workers int, caps domain.Caps) *batchEnv {
	e := &batchEnv{st: &markCounter{Store: memstore.New()}, clock: clock.NewFake(t0), p: p, reg: prometheus.NewRegistry()}
	e.d = &dispatcher.Dispatcher{Store: e.st, Provider: p, Clock: e.clock, Log: zap.NewNop(), Caps: caps, Sender: "12381",
		MaxAttempts: 4, Workers: workers, SendTimeout: time.Second, Lease: 30 * time.Second, Poll: time.Hour,
		Jitter: func() float64 { return 0 }, Metrics: dispatcher.NewMetrics(e.reg, p.Name())}
	return e
}

// create stores a due message to phone, in its own order (never superseded by another).
func (e *batchEnv) create(t *testing.T, id, phone string) {
	t.Helper()
	m, err := domain.NewMessage(domain.SendInput{MessageID: id, Phone: phone, Template: domain.TemplateVerificationCode,
		Params: map[string]string{"code": "123456"}, ExpireAt: t0.Add(24 * time.Hour), OrderID: "order-" + id}, "ICP备案", e.clock.Now())
	if err != nil {
		t.Fatal(err)
	}
	if _, created, err := e.st.Create(context.Background(), m); err != nil || !created {
		t.Fatal(created, err)
	}
}

func (e *batchEnv) get(t *testing.T, id string) domain.Message {
	t.Helper()
	m, err := e.st.Get(context.Background(), id)
	if err != nil {
		t.Fatal(err)
	}
	return m
}

func (e *batchEnv) drain(t *testing.T) int {
	t.Helper()
	n, err := e.d.Drain(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return n
}

// counter returns icp_sms_messages_total of one result.
func (e *batchEnv) counter(result string) float64 {
	mfs, _ := e.reg.Gather()
	for _, mf := range mfs {
		if mf.GetName() != "icp_sms_messages_total" {
			continue
		}
		for _, m := range mf.GetMetric() {
			for _, l := range m.GetLabel() {
				if l.GetName() == "result" && l.GetValue() == result {
					return m.GetCounter().GetValue()
				}
			}
		}
	}
	return -1
}

// histogram returns the sample count and sum of a histogram of the registry.
func (e *batchEnv) histogram(name string) (uint64, float64) {
	mfs, _ := e.reg.Gather()
	for _, mf := range mfs {
		if mf.GetName() == name && len(mf.GetMetric()) > 0 {
			h := mf.GetMetric()[0].GetHistogram()
			return h.GetSampleCount(), h.GetSampleSum()
		}
	}
	return 0, 0
}

// The messages of one claim go to the gateway in one SendBatch call, in claim order, and are
// marked SENT (and redacted) in one statement; a batch call takes one send slot (one worker here).
func TestBatchSendsClaimInOneCallAndMarksSent(t *testing.T) {
	p := &batchProvider{max: 100}
	e := newBatchEnv(p, 1, domain.Caps{})
	for i := range 5 {
		e.create(t, fmt.Sprintf("m%d", i), fmt.Sprintf("1380000000%d", i))
	}
	if n := e.drain(t); n != 5 {
		t.Fatalf("drained %d, want 5", n)
	}
	if calls := p.sentCalls(); len(calls) != 1 || fmt.Sprint(calls[0]) != "[m0 m1 m2 m3 m4]" || p.singles != 0 {
		t.Fatalf("provider calls %v (and %d single sends), want one batch of m0..m4 in claim order", calls, p.singles)
	}
	if !strings.Contains(p.texts["m3"], "123456") {
		t.Fatalf("text handed to the provider: %q", p.texts["m3"])
	}
	for i := range 5 {
		got := e.get(t, fmt.Sprintf("m%d", i))
		if got.State != domain.StateSent || got.Provider != "batch" || !got.Redacted || got.Body != "" || got.Attempts != 1 {
			t.Fatalf("m%d = %+v, want SENT and redacted", i, got)
		}
	}
	if fmt.Sprint(e.st.marks) != "[5]" {
		t.Fatalf("MarkSentAll statements of sizes %v, want one of 5", e.st.marks)
	}
	// One timeout per call, at most SendTimeout.
	if dl := p.deadlines[0]; dl <= 0 || dl > time.Second {
		t.Fatalf("the call had %v left, want a deadline within the send timeout", dl)
	}
	if n, sum := e.histogram("icp_sms_send_batch_messages"); n != 1 || sum != 5 {
		t.Fatalf("batch size histogram: %d calls, %v messages", n, sum)
	}
	if n, _ := e.histogram("icp_sms_send_seconds"); n != 1 {
		t.Fatalf("send duration histogram: %d calls, want 1", n)
	}
	if sent := e.counter(dispatcher.ResultSent); sent != 5 {
		t.Fatalf("sent counter = %v, want 5", sent)
	}
}

// A claim larger than the provider's MaxBatch goes in several calls, each at most MaxBatch, in
// claim order.
func TestBatchChunksAtMaxBatch(t *testing.T) {
	p := &batchProvider{max: 2}
	e := newBatchEnv(p, 4, domain.Caps{})
	for i := range 5 {
		e.create(t, fmt.Sprintf("m%d", i), fmt.Sprintf("1380000000%d", i))
	}
	e.drain(t)
	if calls := fmt.Sprint(p.sentCalls()); calls != "[[m0 m1] [m2 m3] [m4]]" {
		t.Fatalf("provider calls %s", calls)
	}
	for i := range 5 {
		if got := e.get(t, fmt.Sprintf("m%d", i)); got.State != domain.StateSent {
			t.Fatalf("m%d = %s", i, got.State)
		}
	}
}

// A message the gateway refuses is retried after the backoff, and FAILED once it had MaxAttempts,
// while the others of its batch are SENT.
func TestBatchRefusedMessageRetriedThenFailed(t *testing.T) {
	refusal := errors.New("webhook batch: gateway refused the message: isv.MOBILE_NUMBER_ILLEGAL")
	p := &batchProvider{max: 100, refuse: func(id string) error {
		if id == "m1" {
			return refusal
		}
		return nil
	}}
	e := newBatchEnv(p, 2, domain.Caps{})
	e.d.MaxAttempts = 2
	for i := range 3 {
		e.create(t, fmt.Sprintf("m%d", i), fmt.Sprintf("1380000000%d", i))
	}
	e.drain(t)
	for _, id := range []string{"m0", "m2"} {
		if got := e.get(t, id); got.State != domain.StateSent || !got.Redacted {
			t.Fatalf("%s = %+v, want SENT", id, got)
		}
	}
	got := e.get(t, "m1")
	if got.State != domain.StateQueued || got.Attempts != 1 || !got.NextAttempt.Equal(t0.Add(time.Second)) ||
		got.LastError != refusal.Error() || got.Provider != "batch" || got.Body == "" {
		t.Fatalf("m1 after the refusal = %+v, want QUEUED for a retry in 1s", got)
	}
	if fmt.Sprint(e.st.marks) != "[2]" || e.counter(dispatcher.ResultRetried) != 1 || e.counter(dispatcher.ResultSent) != 2 {
		t.Fatalf("marks %v, retried %v, sent %v", e.st.marks, e.counter(dispatcher.ResultRetried), e.counter(dispatcher.ResultSent))
	}

	e.clock.Advance(999 * time.Millisecond)
	if n := e.drain(t); n != 0 {
		t.Fatal("retried before the backoff")
	}
	e.clock.Advance(time.Millisecond)
	e.drain(t)
	got = e.get(t, "m1")
	if got.State != domain.StateFailed || got.Attempts != 2 || !got.Redacted || got.LastError != refusal.Error() {
		t.Fatalf("m1 after MaxAttempts = %+v, want FAILED", got)
	}
	if calls := fmt.Sprint(p.sentCalls()); calls != "[[m0 m1 m2] [m1]]" {
		t.Fatalf("provider calls %s", calls)
	}
	if e.counter(dispatcher.ResultFailed) != 1 {
		t.Fatalf("failed counter = %v", e.counter(dispatcher.ResultFailed))
	}
}

// A provider answering the wrong number of results leaves every message of the call not accepted.
func TestBatchWrongResultCountIsRetried(t *testing.T) {
	e := newBatchEnv(&batchProvider{max: 100}, 1, domain.Caps{})
	e.d.Provider = shortAnswer{e.p}
	e.create(t, "m0", "13800000000")
	e.create(t, "m1", "13800000001")
	e.drain(t)
	for _, id := range []string{"m0", "m1"} {
		if got := e.get(t, id); got.State != domain.StateQueued || got.LastError == "" {
			t.Fatalf("%s = %+v, want QUEUED for a retry", id, got)
		}
	}
}

type shortAnswer struct{ *batchProvider }

func (s shortAnswer) SendBatch(ctx context.Context, msgs []provider.Message) []error {
	return s.batchProvider.SendBatch(ctx, msgs)[:len(msgs)-1]
}

// The per-phone caps hold in batch mode: of three messages to one phone due at once only the first
// goes (in the same call as another phone's message), the others wait for the next minute; the
// refused send of a message gives its cap slot back.
func TestBatchCapsPerPhone(t *testing.T) {
	refuseB := true
	p := &batchProvider{max: 100}
	p.refuse = func(id string) error {
		if id == "b" && refuseB {
			return errors.New("webhook batch: gateway answered HTTP 503")
		}
		return nil
	}
	e := newBatchEnv(p, 2, domain.Caps{PerMinute: 1, PerHour: 5, PerDay: 10})
	for _, id := range []string{"a1", "a2", "a3"} {
		e.create(t, id, "13812345678")
	}
	e.create(t, "b", "13900000000")
	e.drain(t)
	if calls := fmt.Sprint(p.sentCalls()); calls != "[[a1 b]]" {
		t.Fatalf("provider calls %s, want one call with a1 and b", calls)
	}
	if got := e.get(t, "a1"); got.State != domain.StateSent {
		t.Fatalf("a1 = %s", got.State)
	}
	for _, id := range []string{"a2", "a3"} {
		if got := e.get(t, id); got.State != domain.StateQueued || !got.NextAttempt.Equal(t0.Add(time.Minute)) || got.Attempts != 0 {
			t.Fatalf("%s = %+v, want waiting for the next minute with its attempts intact", id, got)
		}
	}
	if e.counter(dispatcher.ResultCapped) != 2 {
		t.Fatalf("capped counter = %v, want 2", e.counter(dispatcher.ResultCapped))
	}
	// b's refused send gave its slot back: its retry goes after the backoff, not a minute later.
	refuseB = false
	e.clock.Advance(time.Second)
	e.drain(t)
	if got := e.get(t, "b"); got.State != domain.StateSent || got.Attempts != 2 {
		t.Fatalf("b = %+v, want SENT on its retry after 1s", got)
	}
	e.clock.Advance(time.Minute)
	e.drain(t)
	if calls := fmt.Sprint(p.sentCalls()); calls != "[[a1 b] [b] [a2]]" {
		t.Fatalf("provider calls %s, want a2 alone after a minute", calls)
	}
	if got := e.get(t, "a3"); got.State != domain.StateQueued || !got.NextAttempt.Equal(t0.Add(2*time.Minute+time.Second)) {
		t.Fatalf("a3 = %+v, want waiting for the minute after a2", got)
	}
}

// Messages SendMessage handed over go to the gateway together too.
func TestBatchHandedMessagesGoTogether(t *testing.T) {
	p := &batchProvider{max: 100}
	e := newBatchEnv(p, 1, domain.Caps{})
	for i := range 3 {
		until, ok := e.d.Reserve(t0)
		if !ok {
			t.Fatal("Reserve refused")
		}
		m, err := domain.NewMessage(domain.SendInput{MessageID: fmt.Sprintf("h%d", i), Phone: fmt.Sprintf("1380000000%d", i),
			Template: domain.TemplateVerificationCode, Params: map[string]string{"code": "123456"}, ExpireAt: t0.Add(time.Hour)}, "ICP备案", t0)
		if err != nil {
			t.Fatal(err)
		}
		m.Attempts, m.NextAttempt = 1, until
		stored, _, err := e.st.Create(context.Background(), m)
		if err != nil {
			t.Fatal(err)
		}
		e.d.Handoff(stored)
	}
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Go(func() { _ = e.d.Run(ctx) })
	defer func() { cancel(); wg.Wait() }()
	eventually(t, func() bool { return e.get(t, "h2").State == domain.StateSent })
	if calls := fmt.Sprint(p.sentCalls()); calls != "[[h0 h1 h2]]" {
		t.Fatalf("provider calls %s, want the three handed messages in one call", calls)
	}
}
