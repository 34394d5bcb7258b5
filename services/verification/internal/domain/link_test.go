package domain

import (
	"strings"
	"testing"
	"time"
)

func TestLinkToken(t *testing.T) {
	seen := map[string]bool{}
	for range 1000 {
		tok, err := NewLinkToken()
		if err != nil || len(tok) != LinkTokenLength || CheckLinkToken("token", tok) != nil {
			t.Fatalf("token %q: %v", tok, err)
		}
		if seen[tok] {
			t.Fatalf("token %q drawn twice", tok)
		}
		seen[tok] = true
	}
	var c Challenge
	tok, _ := DrawLink(&c)
	if !LinkAllows(LinkHash(tok), c) || LinkAllows(LinkHash("B"+tok[1:]), c) || !LinkAllows(nil, c) {
		t.Fatal("a link allows its own challenge only; no link allows any")
	}
	if strings.Contains(string(c.LinkHash), tok) || len(c.LinkHash) != 32 {
		t.Fatal("the stored form is the token's SHA-256")
	}
	for _, bad := range []string{"", strings.Repeat("A", 21), strings.Repeat("A", 23), strings.Repeat("A", 21) + "+", strings.Repeat("A", 21) + "="} {
		if CheckLinkToken("token", bad) == nil {
			t.Errorf("token %q accepted", bad)
		}
	}
}

func TestCheckLinkBase(t *testing.T) {
	for in, want := range map[string]string{
		"": "", "https://beian.example.cn/v": "https://beian.example.cn/v", "https://beian.example.cn/v/": "https://beian.example.cn/v",
		"http://127.0.0.1:8080/v": "http://127.0.0.1:8080/v", "https://a.b/" + strings.Repeat("x", MaxLinkBaseLength-12): "https://a.b/" + strings.Repeat("x", MaxLinkBaseLength-12),
	} {
		if got, err := CheckLinkBase(in); err != nil || got != want {
			t.Errorf("CheckLinkBase(%q) = %q, %v; want %q", in, got, err, want)
		}
	}
	for _, bad := range []string{"beian.example.cn/v", "ftp://x.cn/v", "https://x.cn/v?a=1", "https://x.cn/v#f", "https://u:p@x.cn/v",
		"https:///v", "https://例子.cn/v", "https://a.b/" + strings.Repeat("x", MaxLinkBaseLength-11)} {
		if _, err := CheckLinkBase(bad); err == nil {
			t.Errorf("CheckLinkBase(%q) accepted", bad)
		}
	}
	if MaxLinkBaseLength+1+LinkTokenLength != MaxLinkLength {
		t.Fatal("the longest base and a token make the longest link")
	}
}

func TestLinkLive(t *testing.T) {
	now := time.Date(2026, 11, 26, 10, 0, 0, 0, time.UTC)
	rec := LinkRecord{Found: true, Session: Session{State: SessionOpen, DeadlineAt: now.Add(time.Hour), Tenant: "a"},
		Challenge: Challenge{State: ChallengePending}}
	mine, other, all := Scope{Tenant: "a"}, Scope{Tenant: "b"}, Scope{Tenant: "x", All: true}
	if !LinkLive(now, mine, rec) || !LinkLive(now, all, rec) || LinkLive(now, other, rec) {
		t.Fatal("a live link is its tenant's and the cross-tenant caller's only")
	}
	dead := map[string]func(r *LinkRecord){
		"unknown": func(r *LinkRecord) { r.Found = false }, "passed": func(r *LinkRecord) { r.Challenge.State = ChallengePassed },
		"locked": func(r *LinkRecord) { r.Challenge.State = ChallengeLocked }, "cancelled": func(r *LinkRecord) { r.Session.State = SessionCancelled },
		"timed out": func(r *LinkRecord) { r.Session.State = SessionTimedOut }, "at the deadline": func(r *LinkRecord) { r.Session.DeadlineAt = now },
	}
	for name, mod := range dead {
		r := rec
		mod(&r)
		if LinkLive(now, mine, r) {
			t.Errorf("%s link is live", name)
		}
	}
}
