package dispatcher_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/icpverify/icpverify/services/sms-dispatch/internal/dispatcher"
	"github.com/icpverify/icpverify/services/sms-dispatch/internal/domain"
	"github.com/icpverify/icpverify/services/sms-dispatch/internal/provider"
)

// A message the gateway refuses is retried after the backoff, and FAILED once it had MaxAttempts,
// while the others of its call are SENT.
func TestBatchRefusedMessageRetriedThenFailed(t *testing.T) {
	refusal := errors.New("webhook batch: gateway refused the message: isv.MOBILE_NUMBER_ILLEGAL")
	p := &batchProvider{max: 100, refuse: func(id string) error {
		if id == "m1" {
			return refusal
		}
		return nil
	}}
	e := newBatchEnv(t, p, 4, domain.Caps{})
	e.d.MaxAttempts = 2
	release, waitLead := e.holdLead(t)
	for i := range 3 {
		e.create(t, fmt.Sprintf("m%d", i), fmt.Sprintf("1380000000%d", i))
	}
	waitRest := e.runOnceAsync(t)
	eventually(t, func() bool { return queuedSends() == 3 })
	release()
	waitLead()
	waitRest()

	if calls := p.sentCalls(); len(calls) != 2 || sorted(calls[1]) != "[m0 m1 m2]" {
		t.Fatalf("provider calls %v, want m0, m1 and m2 in one call after the held one", calls)
	}
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
	if e.st.marked() != 3 || e.counter(dispatcher.ResultRetried) != 1 || e.counter(dispatcher.ResultSent) != 3 {
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
	if calls := p.sentCalls(); len(calls) != 3 || fmt.Sprint(calls[2]) != "[m1]" {
		t.Fatalf("provider calls %v, want m1's retry alone last", calls)
	}
	if e.counter(dispatcher.ResultFailed) != 1 {
		t.Fatalf("failed counter = %v", e.counter(dispatcher.ResultFailed))
	}
}

// A provider answering the wrong number of results leaves every message of the call not accepted:
// each is retried, none SENT.
func TestBatchWrongResultCountIsRetried(t *testing.T) {
	e := newBatchEnv(t, &batchProvider{max: 100}, 4, domain.Caps{})
	e.d.Provider = shortAnswer{e.p}
	release, waitLead := e.holdLead(t)
	for i := range 3 {
		e.create(t, fmt.Sprintf("m%d", i), fmt.Sprintf("1380000000%d", i))
	}
	waitRest := e.runOnceAsync(t)
	eventually(t, func() bool { return queuedSends() == 3 })
	release()
	waitLead()
	waitRest()

	if calls := e.p.sentCalls(); len(calls) != 2 || sorted(calls[1]) != "[m0 m1 m2]" {
		t.Fatalf("provider calls %v, want m0, m1 and m2 in one call after the held one", calls)
	}
	for _, id := range []string{"lead", "m0", "m1", "m2"} {
		if got := e.get(t, id); got.State != domain.StateQueued || got.Attempts != 1 || !got.NextAttempt.Equal(t0.Add(time.Second)) ||
			!strings.Contains(got.LastError, "results for") || got.Body == "" {
			t.Fatalf("%s = %+v, want QUEUED for a retry", id, got)
		}
	}
	if e.st.marked() != 0 || e.counter(dispatcher.ResultSent) != 0 || e.counter(dispatcher.ResultRetried) != 4 {
		t.Fatalf("marks %v, sent %v, retried %v; want nothing SENT and 4 retries",
			e.st.marks, e.counter(dispatcher.ResultSent), e.counter(dispatcher.ResultRetried))
	}
}

type shortAnswer struct{ *batchProvider }

func (s shortAnswer) SendBatch(ctx context.Context, msgs []provider.Message) []provider.Outcome {
	return s.batchProvider.SendBatch(ctx, msgs)[:len(msgs)-1]
}

// The per-phone caps hold in batch mode: of three messages to one phone due at once only the first
// goes (in the same call as another phone's message), the others wait for the next minute with
// their attempts intact; the refused send of a message gives its cap slot back, to the next message
// of its phone.
func TestBatchCapsPerPhone(t *testing.T) {
	refuseB := true
	p := &batchProvider{max: 100}
	p.refuse = func(id string) error {
		if id == "b" && refuseB {
			return errors.New("webhook batch: gateway answered HTTP 503")
		}
		return nil
	}
	e := newBatchEnv(t, p, 3, domain.Caps{PerMinute: 1, PerHour: 5, PerDay: 10})
	release, waitLead := e.holdLead(t)
	for _, id := range []string{"a1", "a2", "a3"} {
		e.create(t, id, "13812345678")
	}
	for _, id := range []string{"b", "b2"} {
		e.create(t, id, "13900000000")
	}
	waitRest := e.runOnceAsync(t)
	// a1 and b wait for the held call; a2, a3 and b2 wait for a1 or b (one phone's messages go in
	// claim order).
	eventually(t, func() bool { return queuedSends() == 2 })
	release()
	waitLead()
	waitRest()

	// b's refused send gave its slot back: b2 took it at once, in a call of its own.
	if calls := p.sentCalls(); len(calls) != 3 || sorted(calls[1]) != "[a1 b]" || fmt.Sprint(calls[2]) != "[b2]" {
		t.Fatalf("provider calls %v, want one call with a1 and b after the held one, then b2", calls)
	}
	for _, id := range []string{"a1", "b2"} {
		if got := e.get(t, id); got.State != domain.StateSent {
			t.Fatalf("%s = %+v, want SENT", id, got)
		}
	}
	if got := e.get(t, "b"); got.State != domain.StateQueued || got.Attempts != 1 || !got.NextAttempt.Equal(t0.Add(time.Second)) {
		t.Fatalf("b = %+v, want QUEUED for a retry in 1s", got)
	}
	for _, id := range []string{"a2", "a3"} {
		if got := e.get(t, id); got.State != domain.StateQueued || !got.NextAttempt.Equal(t0.Add(time.Minute)) || got.Attempts != 0 {
			t.Fatalf("%s = %+v, want waiting for the next minute with its attempts intact", id, got)
		}
	}
	if e.counter(dispatcher.ResultCapped) != 2 || e.counter(dispatcher.ResultRetried) != 1 {
		t.Fatalf("capped counter = %v, retried %v; want 2 and 1", e.counter(dispatcher.ResultCapped), e.counter(dispatcher.ResultRetried))
	}
	// b's retry is due after the backoff, but b2 holds its phone's minute now.
	refuseB = false
	e.clock.Advance(time.Second)
	e.drain(t)
	if got := e.get(t, "b"); got.State != domain.StateQueued || got.Attempts != 1 || !got.NextAttempt.Equal(t0.Add(time.Minute)) {
		t.Fatalf("b = %+v, want waiting for the minute after b2 with its attempts intact", got)
	}
	e.clock.Advance(time.Minute)
	e.drain(t)
	calls := p.sentCalls()
	if len(calls) < 4 || sorted(slices.Concat(calls[3:]...)) != "[a2 b]" {
		t.Fatalf("provider calls %v, want a2 and b after a minute", calls)
	}
	if got := e.get(t, "b"); got.State != domain.StateSent || got.Attempts != 2 {
		t.Fatalf("b = %+v, want SENT on its second attempt", got)
	}
	if got := e.get(t, "a3"); got.State != domain.StateQueued || !got.NextAttempt.Equal(t0.Add(2*time.Minute+time.Second)) {
		t.Fatalf("a3 = %+v, want waiting for the minute after a2", got)
	}
}
