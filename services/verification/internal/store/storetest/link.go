package storetest

import (
	"context"
	"strings"
	"time"

	"github.com/icpverify/icpverify/pkg/errs"
	pb "github.com/icpverify/icpverify/pkg/gen/icp/verification/v1"
	"github.com/icpverify/icpverify/pkg/rpc"
	"github.com/icpverify/icpverify/services/verification/internal/domain"
)

// LinkBase is the --verify-link-base every engine's Store runs with in the suite.
const LinkBase = "https://beian.example.cn/v"

// lastLink returns the token of the link in the newest SMS to phone.
func (e *env) lastLink(phone string) string {
	e.t.Helper()
	msgs := e.sent(phone)
	if len(msgs) == 0 {
		e.t.Fatalf("no SMS to %s", phone)
	}
	link := msgs[len(msgs)-1].GetParams()["link"]
	token, ok := strings.CutPrefix(link, LinkBase+"/")
	if !ok || domain.CheckLinkToken("token", token) != nil {
		e.t.Fatalf("SMS link %q is not %s/<token>", link, LinkBase)
	}
	return token
}

// unknownLink is a well-formed token no challenge has.
const unknownLink = "AAAAAAAAAAAAAAAAAAAAAA"

// deadLink fails unless GetLink of token answers exactly what an unknown link gets.
func (e *env) deadLink(ctx context.Context, what, token string) {
	e.t.Helper()
	_, err := e.Store.GetLink(ctx, token)
	_, unknown := e.Store.GetLink(ctx, unknownLink)
	if errs.Reason(unknown) != domain.ReasonLinkNotFound || err == nil || err.Error() != unknown.Error() {
		e.t.Fatalf("%s: GetLink = %v, want exactly the unknown link's %v", what, err, unknown)
	}
}

// testLinks: every challenge's SMS carries its own link; GetLink shows the masked phone while it
// is pending; a check through the link without a phone passes that challenge, and the link dies.
func testLinks(e *env) {
	t, s := e.t, e.Store
	deadline := T0.Add(24 * time.Hour)
	e.open(s, "o1", 1, deadline, vA(), vB())
	ctx := context.Background()
	a, b := e.lastLink(phoneA), e.lastLink(phoneB)
	if a == b {
		t.Fatal("two challenges share a link token")
	}
	r, err := s.GetLink(ctx, a)
	if err != nil || r.GetPhoneMasked() != "138****5678" || r.GetState() != pb.ChallengeState_CHALLENGE_STATE_PENDING ||
		!r.GetDeadlineAt().AsTime().Equal(deadline) || r.GetLocale() != domain.DefaultLocale {
		t.Fatalf("GetLink = %v, %v", r, err)
	}
	e.deadLink(ctx, "unknown token", unknownLink)
	// The link never passes without the code, and a wrong code counts as any wrong entry.
	if _, err := s.Verify(ctx, domain.VerifyInput{Code: wrongCode(e.lastCode(phoneA)), Tail: tailA, Link: domain.LinkHash(a)}); !isNotMatched(err) {
		t.Fatalf("link with a wrong code = %v", err)
	}
	if f := e.status("o1").GetVerifiers()[0].GetFailedAttempts(); f != 1 {
		t.Fatalf("failed attempts after a wrong code through the link = %d, want 1", f)
	}
	if _, err := s.Verify(ctx, domain.VerifyInput{Code: e.lastCode(phoneA), Tail: tailB, Link: domain.LinkHash(a)}); !isNotMatched(err) {
		t.Fatalf("link with a wrong ID tail = %v", err)
	}
	resp, err := s.Verify(ctx, domain.VerifyInput{Code: e.lastCode(phoneA), Tail: tailA, Link: domain.LinkHash(a)})
	if err != nil || resp.GetResult() != pb.VerifyResult_VERIFY_RESULT_PASSED_WAITING_FOR_OTHERS {
		t.Fatalf("verify through the link = %v, %v", resp, err)
	}
	e.deadLink(ctx, "passed", a)
	// A dead link with no phone counts nothing anywhere: it names no challenge that can pass.
	if _, err := s.Verify(ctx, domain.VerifyInput{Code: e.lastCode(phoneB), Tail: tailB, Link: domain.LinkHash(a)}); !isNotMatched(err) {
		t.Fatalf("dead link = %v", err)
	}
	if f := e.status("o1").GetVerifiers()[1].GetFailedAttempts(); f != 0 {
		t.Fatalf("B's failures after a dead link = %d", f)
	}
	if _, err := s.GetLink(ctx, b); err != nil {
		t.Fatalf("B's link = %v", err)
	}
	// With the phone named too, the link still decides which challenge may pass.
	resp, err = s.Verify(ctx, domain.VerifyInput{Phone: phoneB, Code: e.lastCode(phoneB), Tail: tailB, Link: domain.LinkHash(b)})
	if err != nil || resp.GetResult() != pb.VerifyResult_VERIFY_RESULT_ALL_PASSED {
		t.Fatalf("verify B through its link = %v, %v", resp, err)
	}
	e.deadLink(ctx, "passed session", b)
}

// testLinkOfAnotherChallenge: a link compares the entry with its own challenge only. Another
// challenge's right code through it fails like a wrong code and counts on the phone's challenges
// as it would without the link.
func testLinkOfAnotherChallenge(e *env) {
	t, s := e.t, e.Store
	e.open(s, "o1", 1, T0.Add(24*time.Hour), vA(), vB())
	linkA1, codeA1 := e.lastLink(phoneA), e.lastCode(phoneA)
	linkB := e.lastLink(phoneB)
	e.open(s, "o2", 1, T0.Add(24*time.Hour), vA())
	linkA2, codeA2 := e.lastLink(phoneA), e.lastCode(phoneA)
	ctx := context.Background()
	for name, in := range map[string]domain.VerifyInput{
		"o2's code through o1's link":          {Code: codeA2, Tail: tailA, Link: domain.LinkHash(linkA1)},
		"A's right entry through B's link":     {Phone: phoneA, Code: codeA1, Tail: tailA, Link: domain.LinkHash(linkB)},
		"B's link, A named, o2's right code":   {Phone: phoneA, Code: codeA2, Tail: tailA, Link: domain.LinkHash(linkB)},
		"o1's right code through o2's link":    {Code: codeA1, Tail: tailA, Link: domain.LinkHash(linkA2)},
		"an unknown link with A's right entry": {Phone: phoneA, Code: codeA1, Tail: tailA, Link: domain.LinkHash(unknownLink)},
	} {
		if _, err := s.Verify(ctx, in); !isNotMatched(err) {
			t.Fatalf("%s = %v, want the uniform mismatch", name, err)
		}
	}
	// Each of the five counted once on both of A's challenges, exactly as a wrong code would.
	if f1, f2 := e.status("o1").GetVerifiers()[0].GetFailedAttempts(), e.status("o2").GetVerifiers()[0].GetFailedAttempts(); f1 != 5 || f2 != 5 {
		t.Fatalf("failures o1 %d, o2 %d, want 5 each", f1, f2)
	}
	if st := e.status("o1"); st.GetState() != pb.SessionState_SESSION_STATE_FAILED || st.GetVerifiers()[1].GetFailedAttempts() != 0 {
		t.Fatalf("o1 after five failures of A = %v", st)
	}
	e.deadLink(ctx, "locked", linkA1)
	e.deadLink(ctx, "locked (o2)", linkA2)
	e.deadLink(ctx, "B of a failed session", linkB)
}

// testLinkDies: a resend's SMS carries a new link and the old one dies; the window's end, a cancel
// and another tenant's look all read as an unknown link.
func testLinkDies(e *env) {
	t, s, clk := e.t, e.Store, e.clk
	e.openFor("t1", "o1", 1, vA())
	e.openFor("t1", "o3", 1, vB())
	t1, t2 := tenantCtx("t1"), tenantCtx("t2")
	first, third := e.lastLink(phoneA), e.lastLink(phoneB)
	if _, err := s.GetLink(t1, first); err != nil {
		t.Fatalf("owner's GetLink = %v", err)
	}
	e.deadLink(t2, "another tenant's", first)
	cross := rpc.WithCaller(context.Background(), rpc.Caller{ID: "apikey:authority", Tenant: "authority", CrossTenant: true})
	if _, err := s.GetLink(cross, first); err != nil {
		t.Fatalf("cross-tenant GetLink = %v", err)
	}
	// Another tenant cannot verify through the link either, even with the right entry.
	if _, err := s.Verify(t2, domain.VerifyInput{Code: e.lastCode(phoneA), Tail: tailA, Link: domain.LinkHash(first)}); !isNotMatched(err) {
		t.Fatalf("other tenant's verify through the link = %v", err)
	}
	clk.Advance(time.Minute)
	if _, err := s.ResendVerifier(context.Background(), &pb.ResendVerifierCodeRequest{RequestId: "r1", OrderId: "o1", VerifierId: "v1"}); err != nil {
		t.Fatal(err)
	}
	second := e.lastLink(phoneA)
	if second == first {
		t.Fatal("a resend reused the link token")
	}
	e.deadLink(t1, "replaced by a resend", first)
	if _, err := s.GetLink(t1, second); err != nil {
		t.Fatalf("the resend's link = %v", err)
	}
	// The window's end kills it at deadline_at exactly, like a check.
	clk.Set(T0.Add(24*time.Hour - time.Nanosecond))
	if _, err := s.GetLink(t1, second); err != nil {
		t.Fatalf("link just before the deadline = %v", err)
	}
	clk.Set(T0.Add(24 * time.Hour))
	e.deadLink(t1, "window closed", second)

	if _, err := s.CancelSession(context.Background(), &pb.CancelSessionRequest{RequestId: "c3", OrderId: "o3", Submission: 1}); err != nil {
		t.Fatal(err)
	}
	e.deadLink(t1, "cancelled", third)
}
