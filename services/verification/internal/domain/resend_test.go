package domain

import (
	"bytes"
	"crypto/rand"
	"encoding/binary"
	"strings"
	"testing"
	"time"
)

// drawsOf is a random source whose 32-bit draws give the codes in order (each value < codeSpace).
func drawsOf(codes ...uint32) *bytes.Reader {
	var b bytes.Buffer
	for _, c := range codes {
		_ = binary.Write(&b, binary.BigEndian, c)
	}
	return bytes.NewReader(b.Bytes())
}

// A resend never draws the code the verifier holds (验证码不重复): a draw equal to it is drawn again.
func TestResendNeverRepeatsTheLastCode(t *testing.T) {
	keys, _ := ParseKeys("k1:" + strings.Repeat("ab", 32))
	h, _ := NewHasher(keys)
	now := time.Date(2026, 12, 3, 10, 0, 0, 0, time.UTC)
	sess := Session{State: SessionOpen, DeadlineAt: now.Add(time.Hour)}
	c := Challenge{ID: "c1", State: ChallengePending, LastSentAt: now.Add(-time.Hour), Generation: 1}
	c.CodeKeyID, c.CodeHash = h.HashCode(c.ID, "123456")

	code, err := PrepareResend(now, sess, &c, DefaultLimits, h, drawsOf(123456, 123456, 654321))
	if err != nil || code != "654321" {
		t.Fatalf("resend drew %q, %v; want 654321 (the two draws of the current code skipped)", code, err)
	}
	if !h.VerifyCode(c.CodeKeyID, c.CodeHash, c.ID, "654321") || c.Generation != 2 {
		t.Errorf("the challenge does not hold the new code (generation %d)", c.Generation)
	}
	// A source stuck on the current code is an error, never the same code again.
	stuck := make([]uint32, 20)
	for i := range stuck {
		stuck[i] = 654321
	}
	c.LastSentAt = now.Add(-time.Hour)
	if code, err := PrepareResend(now, sess, &c, DefaultLimits, h, drawsOf(stuck...)); err == nil || !strings.Contains(err.Error(), "previous code") {
		t.Fatalf("a stuck source gave %q, %v", code, err)
	}
}

// twiceEach repeats every 4-byte draw of crypto/rand once: without the rule, every second resend
// would send the verifier the code it already holds.
type twiceEach struct {
	held []byte
}

func (r *twiceEach) Read(p []byte) (int, error) {
	for i := 0; i+4 <= len(p); i += 4 {
		if r.held == nil {
			r.held = make([]byte, 4)
			if _, err := rand.Read(r.held); err != nil {
				return 0, err
			}
			copy(p[i:], r.held)
			continue
		}
		copy(p[i:], r.held)
		r.held = nil
	}
	return len(p) - len(p)%4, nil
}

// A resend storm (1,000 resends of one verifier, limits lifted) never yields the previous code, even
// from a source that offers every code twice in a row.
func TestResendStormNeverYieldsThePreviousCode(t *testing.T) {
	keys, _ := ParseKeys("k1:" + strings.Repeat("ab", 32))
	h, _ := NewHasher(keys)
	now := time.Date(2026, 12, 3, 10, 0, 0, 0, time.UTC)
	sess := Session{State: SessionOpen, DeadlineAt: now.Add(24 * time.Hour)}
	c := Challenge{ID: "c1", State: ChallengePending, Generation: 1}
	src := &twiceEach{}
	prev, err := NewCode(src)
	if err != nil {
		t.Fatal(err)
	}
	c.CodeKeyID, c.CodeHash = h.HashCode(c.ID, prev)
	limits := DefaultLimits
	limits.MaxResends, limits.ResendInterval = 1_000_000, 0
	for i := range 1000 {
		c.LastSentAt = now.Add(-time.Hour)
		code, err := PrepareResend(now, sess, &c, limits, h, src)
		if err != nil {
			t.Fatalf("resend %d: %v", i, err)
		}
		if code == prev {
			t.Fatalf("resend %d sent the previous code %s again", i, code)
		}
		prev = code
	}
}
