package page

import (
	"bytes"
	"encoding/base64"
	"net/http/httptest"
	"testing"
	"time"
)

type fixedNow struct{ t time.Time }

func (f *fixedNow) now() time.Time { return f.t }

var secretA, secretB = bytes.Repeat([]byte("a"), 32), bytes.Repeat([]byte("b"), 32)

// Replicas sharing the secret check each other's captchas; one with another secret does not.
func TestCaptchaAcrossReplicas(t *testing.T) {
	clk := &fixedNow{time.Unix(1_800_000_000, 0)}
	a, b, other := newCaptchas(secretA, clk.now), newCaptchas(secretA, clk.now), newCaptchas(secretB, clk.now)
	id := a.create()
	ans := a.answer(id)
	if len(ans) != captchaLen || b.answer(id) != ans {
		t.Fatalf("answers %q / %q", ans, b.answer(id))
	}
	if other.check(id, ans) {
		t.Fatal("a replica with another secret accepted the captcha")
	}
	if !b.check(id, ans) {
		t.Fatal("a replica sharing the secret refused the right answer")
	}
	if b.check(id, ans) {
		t.Fatal("the same replica accepted one captcha twice")
	}
	// One try per captcha: a wrong answer uses it up too.
	id2 := a.create()
	if a.check(id2, "000000x") || a.check(id2, a.answer(id2)) {
		t.Fatal("a captcha answered wrong once was accepted afterwards")
	}
}

func TestCaptchaExpiresAndResistsTampering(t *testing.T) {
	clk := &fixedNow{time.Unix(1_800_000_000, 0)}
	c := newCaptchas(secretA, clk.now)
	id := c.create()
	ans := c.answer(id)
	raw, _ := base64.RawURLEncoding.DecodeString(id)
	raw[nonceLen+7]++ // a later expiry under the old tag
	if c.check(base64.RawURLEncoding.EncodeToString(raw), ans) {
		t.Fatal("a tampered id was accepted")
	}
	for _, bad := range []string{"", "x", id[:len(id)-2], id + "AA"} {
		if c.check(bad, ans) {
			t.Fatalf("id %q accepted", bad)
		}
	}
	clk.t = clk.t.Add(captchaTTL)
	if c.check(id, ans) {
		t.Fatal("an expired captcha was accepted")
	}
	w := httptest.NewRecorder()
	r := httptest.NewRequest("GET", "/captcha/"+id+".png", nil)
	r.SetPathValue("file", id+".png")
	c.serve(w, r)
	if w.Code != 404 {
		t.Fatalf("an expired captcha's picture: %d", w.Code)
	}
}

// When the memory of used ids is full of live ones, checks fail closed; expired ones make room.
func TestCaptchaUsedMemoryFailsClosed(t *testing.T) {
	clk := &fixedNow{time.Unix(1_800_000_000, 0)}
	c := newCaptchas(secretA, clk.now)
	c.maxUsed = 2
	for range 2 {
		id := c.create()
		if !c.check(id, c.answer(id)) {
			t.Fatal("check")
		}
	}
	id := c.create()
	if c.check(id, c.answer(id)) {
		t.Fatal("a check passed with the used-id memory full")
	}
	clk.t = clk.t.Add(captchaTTL)
	id = c.create()
	if !c.check(id, c.answer(id)) {
		t.Fatal("expired ids did not make room")
	}
}

// A form drawn on one replica posts to another sharing the secret.
func TestCSRFAcrossReplicas(t *testing.T) {
	a, b := &csrf{key: derive(secretA, "csrf")}, &csrf{key: derive(secretA, "csrf")}
	other := &csrf{key: derive(secretB, "csrf")}
	w := httptest.NewRecorder()
	tok := a.token(w, httptest.NewRequest("GET", "/", nil))
	ck := w.Result().Cookies()[0]
	post := func(c *csrf) bool {
		r := httptest.NewRequest("POST", "/verify", bytes.NewBufferString("csrf="+tok))
		r.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		r.AddCookie(ck)
		return c.valid(r)
	}
	if !post(b) || post(other) {
		t.Fatalf("replica sharing the secret: %v, other secret: %v", post(b), post(other))
	}
	if bytes.Equal(derive(secretA, "csrf"), derive(secretA, "captcha")) {
		t.Fatal("CSRF and captcha share a key")
	}
}
