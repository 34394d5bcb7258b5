package outbox_test

import (
	"bytes"
	"context"
	"sync"
	"testing"

	"go.uber.org/zap"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/wrapperspb"

	"github.com/icpverify/icpverify/pkg/clock"
	"github.com/icpverify/icpverify/pkg/outbox"
	"github.com/icpverify/icpverify/pkg/seal"
)

// recorder is a handler that keeps the payloads it was given, as strings.
type recorder struct {
	mu   sync.Mutex
	got  []string
	fail error
}

func (r *recorder) handle(_ context.Context, payload []byte) error {
	var v wrapperspb.StringValue
	if err := proto.Unmarshal(payload, &v); err != nil {
		return err
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	r.got = append(r.got, v.Value)
	return r.fail
}

// A sensitive payload is kept sealed (its key id beside it) and handed out opened: the relay delivers
// the plaintext and Pending shows it; a payload that is not sensitive is kept as it is.
func TestSensitivePayloadsSealedAtRest(t *testing.T) {
	t.Parallel()
	for name, newEngine := range engines(t) {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			e := newEngine(t)
			clk := clock.NewFake(start)
			e.add(t, clk.Now(), "sms.Send", wrapperspb.String("code 123456"), true)
			e.add(t, clk.Now(), "filing.Mark", wrapperspb.String("order o-1"), false)

			stored := e.stored(t)
			if len(stored) != 2 {
				t.Fatalf("%d rows stored, want 2", len(stored))
			}
			if bytes.Contains(stored[0].Payload, []byte("123456")) || stored[0].KeyID != "t1" {
				t.Fatalf("sensitive row at rest: key %q, payload %q; want it sealed with t1", stored[0].KeyID, stored[0].Payload)
			}
			if kid, err := seal.KeyID(stored[0].Payload); err != nil || kid != "t1" {
				t.Errorf("the sealed payload names key %q (%v), want t1", kid, err)
			}
			if !bytes.Contains(stored[1].Payload, []byte("order o-1")) || stored[1].KeyID != "" {
				t.Errorf("plain row at rest: key %q, payload %q; want it as written", stored[1].KeyID, stored[1].Payload)
			}
			pending, err := e.queue.Pending(context.Background(), 10)
			if err != nil || len(pending) != 2 || !bytes.Contains(pending[0].Payload, []byte("code 123456")) || pending[0].Unopened != nil {
				t.Fatalf("Pending = %v, %v; want the sensitive row opened", pending, err)
			}

			var sms, filing recorder
			relay := &outbox.Relay{Queue: e.queue, Log: zap.NewNop(), Clock: clk,
				Handlers: map[string]outbox.Handler{"sms.Send": sms.handle, "filing.Mark": filing.handle}}
			if n, err := relay.RunOnce(context.Background()); err != nil || n != 2 {
				t.Fatalf("RunOnce = %d, %v", n, err)
			}
			if len(sms.got) != 1 || sms.got[0] != "code 123456" || len(filing.got) != 1 || filing.got[0] != "order o-1" {
				t.Fatalf("delivered %v and %v", sms.got, filing.got)
			}
			if left := e.left(t); left != 0 {
				t.Errorf("%d rows left", left)
			}
		})
	}
}

// Rotation: rows sealed with the old key still go out once the new key seals (the old one kept
// second). A row whose key was dropped too early is retried, not parked, so it goes out once the key
// is back.
func TestSealKeyRotation(t *testing.T) {
	t.Parallel()
	oldKeys := mustKeys("k1:000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f")
	rotated := mustKeys("k2:1f1e1d1c1b1a191817161514131211100f0e0d0c0b0a09080706050403020100,k1:000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f")
	newOnly := mustKeys("k2:1f1e1d1c1b1a191817161514131211100f0e0d0c0b0a09080706050403020100")
	for name, newEngine := range enginesWith(oldKeys) {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			e := newEngine(t)
			clk := clock.NewFake(start)
			e.add(t, clk.Now(), "sms.Send", wrapperspb.String("old code 111111"), true)
			stored := e.stored(t)

			// A replica that lost k1: the row does not open and is kept for a retry.
			var sms recorder
			handlers := map[string]outbox.Handler{"sms.Send": sms.handle}
			lost := &outbox.Relay{Queue: withKeys(t, e, newOnly), Log: zap.NewNop(), Clock: clk, Handlers: handlers}
			if n, err := lost.RunOnce(context.Background()); err != nil || n != 1 {
				t.Fatalf("RunOnce = %d, %v", n, err)
			}
			if len(sms.got) != 0 || e.wipedDead(t) != 0 || e.left(t) != 1 {
				t.Fatalf("delivered %v, %d wiped, %d left; want the row kept for a retry", sms.got, e.wipedDead(t), e.left(t))
			}
			if got := e.stored(t)[0]; !bytes.Equal(got.Payload, stored[0].Payload) {
				t.Fatal("the retry changed the sealed payload")
			}

			// The rotated keyring (k2 first, k1 kept) opens it after its backoff.
			clk.Advance(outbox.Backoff(1))
			relay := &outbox.Relay{Queue: withKeys(t, e, rotated), Log: zap.NewNop(), Clock: clk, Handlers: handlers}
			if n, err := relay.RunOnce(context.Background()); err != nil || n != 1 {
				t.Fatalf("RunOnce = %d, %v", n, err)
			}
			if len(sms.got) != 1 || sms.got[0] != "old code 111111" {
				t.Fatalf("delivered %v after the rotation", sms.got)
			}
		})
	}
}

// withKeys is e's queue reading with keys instead (another replica's configuration).
func withKeys(t *testing.T, e engine, keys *seal.Keyring) outbox.Queue {
	t.Helper()
	switch q := e.queue.(type) {
	case outbox.PGQueue:
		q.Keys = keys
		return q
	case *outbox.MemQueue:
		return q.WithKeysForTest(keys)
	}
	t.Fatalf("unknown queue %T", e.queue)
	return nil
}

// A sealed payload that was changed, or moved into a row of another target, does not open: it is
// parked (and wiped) without reaching any receiver.
func TestTamperedSealedPayloadParked(t *testing.T) {
	t.Parallel()
	for name, newEngine := range engines(t) {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			e := newEngine(t)
			clk := clock.NewFake(start)
			e.add(t, clk.Now(), "sms.Send", wrapperspb.String("code 123456"), true)
			e.add(t, clk.Now(), "sms.Send", wrapperspb.String("code 654321"), true)
			e.add(t, clk.Now(), "filing.Mark", wrapperspb.String("x"), true)
			stored := e.stored(t)
			flipped := bytes.Clone(stored[0].Payload)
			flipped[len(flipped)-1] ^= 1
			e.restore(t, stored[0].ID, stored[0].Target, flipped)
			// The second SendMessage's sealed payload put into the MarkVerified row.
			e.restore(t, stored[2].ID, stored[2].Target, stored[1].Payload)

			var sms, filing recorder
			relay := &outbox.Relay{Queue: e.queue, Log: zap.NewNop(), Clock: clk,
				Handlers: map[string]outbox.Handler{"sms.Send": sms.handle, "filing.Mark": filing.handle}}
			if n, err := relay.RunOnce(context.Background()); err != nil || n != 3 {
				t.Fatalf("RunOnce = %d, %v", n, err)
			}
			if len(sms.got) != 1 || sms.got[0] != "code 654321" || len(filing.got) != 0 {
				t.Fatalf("delivered %v and %v; want only the untouched row", sms.got, filing.got)
			}
			if got := e.wipedDead(t); got != 2 {
				t.Errorf("%d parked and wiped, want the 2 that do not open", got)
			}
		})
	}
}

// A queue without keys hands out a sealed row unopened, naming the key it needs.
func TestSealedRowWithoutKeys(t *testing.T) {
	t.Parallel()
	for name, newEngine := range engines(t) {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			e := newEngine(t)
			e.add(t, start, "sms.Send", wrapperspb.String("code 123456"), true)
			rows, err := withKeys(t, e, nil).Pending(context.Background(), 10)
			if err != nil || len(rows) != 1 {
				t.Fatalf("Pending = %v, %v", rows, err)
			}
			if rows[0].Payload != nil || rows[0].KeyID != "t1" || rows[0].Unopened == nil {
				t.Fatalf("row without keys: payload %q, key %q, unopened %v", rows[0].Payload, rows[0].KeyID, rows[0].Unopened)
			}
		})
	}
}

// With nil keys (a service that seals nothing) a sensitive payload is kept as written.
func TestNilKeysKeepPayloadsInTheClear(t *testing.T) {
	t.Parallel()
	r, err := outbox.Encode(nil, []outbox.Message{{Target: "verification.Open", Msg: wrapperspb.String("phone"), Sensitive: true}})
	if err != nil || len(r.Payloads) != 1 || r.KeyIDs[0] != "" || !r.Sensitive[0] || !bytes.Contains(r.Payloads[0], []byte("phone")) {
		t.Fatalf("Encode(nil) = %+v, %v", r, err)
	}
}
