package dispatcher_test

import (
	"context"
	"net/http"
	"testing"
	"time"

	"go.uber.org/zap"

	"github.com/icpverify/icpverify/pkg/clock"

	"github.com/icpverify/icpverify/services/sms-dispatch/internal/dispatcher"
	"github.com/icpverify/icpverify/services/sms-dispatch/internal/domain"
	"github.com/icpverify/icpverify/services/sms-dispatch/internal/provider"
	"github.com/icpverify/icpverify/services/sms-dispatch/internal/store/memstore"
	"github.com/icpverify/icpverify/services/sms-dispatch/providertest"
)

const classPhone = "+8613812345678"

type classEnv struct {
	st    *memstore.Store
	clock *clock.Fake
	fake  *providertest.Aliyun
	d     *dispatcher.Dispatcher
}

// newClassEnv runs the dispatcher with the aliyun provider against its fake (caps off, 4 attempts).
func newClassEnv(t *testing.T) *classEnv {
	t.Helper()
	clk := clock.NewFake(t0)
	fake := providertest.NewAliyun("LTAI5tDispatcherTest", "Qm8Rt3Yz6Kp1Wn4Lb7Xc2Vd5", "ICP备案", "SMS_100200300", "code", "time")
	t.Cleanup(fake.Close)
	params, err := provider.ParseNamedParams("code=code,time=deadline")
	if err != nil {
		t.Fatal(err)
	}
	p := &provider.Aliyun{Endpoint: fake.URL(), AccessKeyID: "LTAI5tDispatcherTest", AccessKeySecret: "Qm8Rt3Yz6Kp1Wn4Lb7Xc2Vd5",
		SignName: "ICP备案", TemplateCode: "SMS_100200300", Params: params, Client: &http.Client{Timeout: 5 * time.Second}}
	st := memstore.New(clk)
	d := &dispatcher.Dispatcher{Store: st, Provider: p, Clock: clk, Log: zap.NewNop(), Sender: "12381", MaxAttempts: 4,
		SendTimeout: 5 * time.Second, Lease: 30 * time.Second, Poll: time.Hour, Jitter: func() float64 { return 0 }}
	e := &classEnv{st: st, clock: clk, fake: fake, d: d}
	m, err := domain.NewMessage(domain.SendInput{MessageID: "m-1", Phone: classPhone, Template: domain.TemplateVerificationCode,
		Params: map[string]string{"code": "482913"}, ExpireAt: t0.Add(24 * time.Hour), OrderID: "order-1"}, "ICP备案", clk.Now())
	if err != nil {
		t.Fatal(err)
	}
	if _, created, err := st.Create(context.Background(), m); err != nil || !created {
		t.Fatal(created, err)
	}
	return e
}

func (e *classEnv) drain(t *testing.T) int {
	t.Helper()
	n, err := e.d.Drain(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return n
}

func (e *classEnv) get(t *testing.T) domain.Message {
	t.Helper()
	m, err := e.st.Get(context.Background(), "m-1")
	if err != nil {
		t.Fatal(err)
	}
	return m
}

// An invalid number FAILS the message at its first attempt (not after --max-attempts), and the
// failure's delivery report is queued for verification at once.
func TestPermanentRefusalFailsAtOnce(t *testing.T) {
	e := newClassEnv(t)
	e.fake.FailPhone(classPhone, "isv.MOBILE_NUMBER_ILLEGAL")
	e.drain(t)
	m := e.get(t)
	if m.State != domain.StateFailed || m.Attempts != 1 || !m.Redacted {
		t.Fatalf("message %s after %d attempts (redacted %v), want FAILED after 1", m.State, m.Attempts, m.Redacted)
	}
	if e.st.Outbox().Len() != 1 {
		t.Fatalf("outbox holds %d rows, want the delivery report", e.st.Outbox().Len())
	}
	if n := e.fake.Requests(); n != 1 {
		t.Fatalf("the gateway was called %d times", n)
	}
}

// A transient refusal retries after the usual backoff (1s), then goes, with the template's values.
func TestTransientRefusalRetries(t *testing.T) {
	e := newClassEnv(t)
	e.fake.FailNext(1, "isp.SYSTEM_ERROR")
	e.drain(t)
	m := e.get(t)
	if m.State != domain.StateQueued || !m.NextAttempt.Equal(t0.Add(time.Second)) {
		t.Fatalf("message %s due %s, want QUEUED due in 1s", m.State, m.NextAttempt.Sub(t0))
	}
	e.clock.Advance(time.Second)
	e.drain(t)
	if m := e.get(t); m.State != domain.StateSent {
		t.Fatalf("message %s, want SENT", m.State)
	}
	got := e.fake.Accepted()
	if len(got) != 1 || got[0].MessageID != "m-1" || got[0].Params["code"] != "482913" ||
		got[0].Params["time"] != t0.Add(24*time.Hour).In(domain.CST).Format(domain.DeadlineLayout) {
		t.Fatalf("accepted %+v", got)
	}
}

// The gateway's per-number flow control: the message waits at least a minute, not the 1s backoff.
func TestPerNumberLimitWaits(t *testing.T) {
	e := newClassEnv(t)
	e.fake.FailNext(1, "isv.BUSINESS_LIMIT_CONTROL")
	e.drain(t)
	if m := e.get(t); m.State != domain.StateQueued || !m.NextAttempt.Equal(t0.Add(domain.PerNumberLimitWait)) {
		t.Fatalf("message %s due %s, want QUEUED due in %s", m.State, m.NextAttempt.Sub(t0), domain.PerNumberLimitWait)
	}
	e.clock.Advance(30 * time.Second)
	if n := e.drain(t); n != 0 {
		t.Fatalf("handled %d messages before the wait ended", n)
	}
	e.clock.Advance(30 * time.Second)
	e.drain(t)
	if m := e.get(t); m.State != domain.StateSent {
		t.Fatalf("message %s, want SENT", m.State)
	}
}

// An account refusal retries (it is no reason to fail the message) with the usual backoff.
func TestAccountRefusalRetries(t *testing.T) {
	e := newClassEnv(t)
	e.fake.FailNext(1, "isv.AMOUNT_NOT_ENOUGH")
	e.drain(t)
	if m := e.get(t); m.State != domain.StateQueued || m.Attempts != 1 || !m.NextAttempt.Equal(t0.Add(time.Second)) {
		t.Fatalf("message %s due %s, want QUEUED due in 1s", m.State, m.NextAttempt.Sub(t0))
	}
}
