package storetest

import (
	"context"
	"strings"
	"sync"
	"time"

	"google.golang.org/protobuf/proto"

	"github.com/icpverify/icpverify/pkg/errs"
	deadlinev1 "github.com/icpverify/icpverify/pkg/gen/icp/deadline/v1"
	pb "github.com/icpverify/icpverify/pkg/gen/icp/verification/v1"
	"github.com/icpverify/icpverify/services/verification/internal/convert"
	"github.com/icpverify/icpverify/services/verification/internal/domain"
)

// T0 is 18:00 Beijing time: the noon resend of a session opened then is due at 12:00 the next day.
var noonOfT0 = T0.Add(18 * time.Hour)

func (e *env) noonRule() domain.NoonRule {
	e.t.Helper()
	loc, err := time.LoadLocation(domain.NoonZone)
	if err != nil {
		e.t.Fatal(err)
	}
	return domain.NoonRule{Enabled: true, Hour: 12, Zone: loc}
}

func (e *env) noonSchedules(order string) []*deadlinev1.ScheduleNoonResendRequest {
	e.t.Helper()
	var out []*deadlinev1.ScheduleNoonResendRequest
	for _, p := range e.payloads(convert.TargetScheduleNoon) {
		m := &deadlinev1.ScheduleNoonResendRequest{}
		if err := proto.Unmarshal(p, m); err != nil {
			e.t.Fatal(err)
		}
		if m.GetOrderId() == order {
			out = append(out, m)
		}
	}
	return out
}

func autoResend(s Store, id, order string) (*pb.AutoResendResponse, error) {
	return s.AutoResend(context.Background(), &pb.AutoResendRequest{RequestId: id, OrderId: order, Submission: 1})
}

// OpenSession schedules the noon resend; at noon every pending verifier (not one already passed)
// gets one new code through the outbox, once whatever the request id or replica, without using up
// the manual resends; the new code passes and the old one no longer does.
func testAutoResend(e *env) {
	t, s, clk := e.t, e.Store, e.clk
	s.SetNoon(e.noonRule())
	deadline := T0.Add(24 * time.Hour)
	e.open(s, "o1", 1, deadline, vA(), vB())
	if sch := e.noonSchedules("o1"); len(sch) != 1 || !sch[0].GetResendTime().AsTime().Equal(noonOfT0) || sch[0].GetSubmission() != 1 ||
		sch[0].GetRequestId() != domain.ScheduleNoonRequestID("o1", 1) {
		t.Fatalf("noon schedules = %v; want one at %v", sch, noonOfT0)
	}
	firstA := e.lastCode(phoneA)
	if _, err := e.check(phoneB, e.lastCode(phoneB), tailB); err != nil {
		t.Fatalf("B passes: %v", err)
	}
	clk.Set(noonOfT0.Add(-time.Microsecond))
	if _, err := autoResend(s, "deadline:noon:o1:1", "o1"); errs.Reason(err) != domain.ReasonDeadlineNotReached {
		t.Fatalf("early auto resend = %v, want %s", err, domain.ReasonDeadlineNotReached)
	}
	clk.Set(noonOfT0)
	r, err := autoResend(s, "deadline:noon:o1:1", "o1")
	if err != nil || r.GetOutcome() != pb.AutoResendOutcome_AUTO_RESEND_OUTCOME_SENT || strings.Join(r.GetVerifierIds(), ",") != "v1" {
		t.Fatalf("auto resend = %v, %v; want SENT to v1 only", r, err)
	}
	if again, err := autoResend(s, "deadline:noon:o1:1", "o1"); err != nil || !proto.Equal(again, r) {
		t.Fatalf("retry = %v, %v; want the first answer", again, err)
	}
	for _, st := range []Store{s, e.replica(clk, Hasher(t))} {
		st.SetNoon(e.noonRule())
		if again, err := autoResend(st, "another-request", "o1"); err != nil || again.GetOutcome() != pb.AutoResendOutcome_AUTO_RESEND_OUTCOME_ALREADY_SENT ||
			len(again.GetVerifierIds()) != 0 {
			t.Fatalf("another request = %v, %v; want ALREADY_SENT", again, err)
		}
	}
	msgsA, msgsB := e.sent(phoneA), e.sent(phoneB)
	if len(msgsA) != 2 || len(msgsB) != 1 || !strings.HasSuffix(msgsA[1].GetMessageId(), "-v1-2") || msgsA[1].GetSequence() != 2 {
		t.Fatalf("messages: A %v, B %v; want one automatic code to A (generation 2), none to B", msgsA, msgsB)
	}
	// Not a manual resend: both remain.
	for _, v := range e.status("o1").GetVerifiers() {
		if v.GetVerifierId() == "v1" && v.GetResendsUsed() != 0 {
			t.Fatalf("v1 resends used %d after the automatic code, want 0", v.GetResendsUsed())
		}
	}
	if _, err := e.check(phoneA, firstA, tailA); !isNotMatched(err) {
		t.Fatalf("the replaced code = %v", err)
	}
	if r, err := e.check(phoneA, msgsA[1].GetParams()["code"], tailA); err != nil || r.GetResult() != pb.VerifyResult_VERIFY_RESULT_ALL_PASSED {
		t.Fatalf("the automatic code = %v, %v", r, err)
	}
	if r, err := autoResend(s, "late", "o1"); err != nil || r.GetOutcome() != pb.AutoResendOutcome_AUTO_RESEND_OUTCOME_ALREADY_SENT {
		t.Fatalf("after all passed = %v, %v", r, err)
	}
	if _, err := autoResend(s, "x", "nope"); errs.Reason(err) != domain.ReasonSessionNotFound {
		t.Fatalf("unknown order = %v", err)
	}
}

// Nothing is sent for a session already passed, failed (a verifier locked) or timed out, nor when the
// rule is off; a session whose window ends before its noon gets no timer at all; with
// --noon-resend-counts the automatic code uses up a manual resend.
func testAutoResendSkips(e *env) {
	t, s, clk := e.t, e.Store, e.clk
	rule := e.noonRule()
	s.SetNoon(rule)
	deadline := T0.Add(24 * time.Hour)
	e.open(s, "passed", 1, deadline, vA())
	if _, err := e.check(phoneA, e.lastCode(phoneA), tailA); err != nil {
		t.Fatal(err)
	}
	e.open(s, "locked", 1, deadline, vB())
	for range domain.DefaultLimits.MaxFailedAttempts {
		_, _ = e.check(phoneB, wrongCode(e.lastCode(phoneB)), tailB)
	}
	e.open(s, "short", 1, noonOfT0, vA())
	if sch := e.noonSchedules("short"); len(sch) != 0 {
		t.Fatalf("a window ending at the noon got a noon timer: %v", sch)
	}
	const phoneC = "+8613712345678"
	e.open(s, "timedout", 1, noonOfT0.Add(time.Hour), domain.VerifierSpec{Phone: phoneC, Roles: []string{"PRINCIPAL"}, Tails: []string{tailA}})
	clk.Set(noonOfT0.Add(time.Hour))
	if _, err := s.CloseIfIncomplete(context.Background(), &pb.CloseIfIncompleteRequest{RequestId: "c", OrderId: "timedout", Submission: 1}); err != nil {
		t.Fatal(err)
	}
	before := len(e.sent(phoneA)) + len(e.sent(phoneB)) + len(e.sent(phoneC))
	for _, order := range []string{"passed", "locked", "timedout"} {
		if r, err := autoResend(s, "n-"+order, order); err != nil || r.GetOutcome() != pb.AutoResendOutcome_AUTO_RESEND_OUTCOME_SESSION_CLOSED {
			t.Errorf("%s: %v, %v; want SESSION_CLOSED", order, r, err)
		}
	}
	if after := len(e.sent(phoneA)) + len(e.sent(phoneB)) + len(e.sent(phoneC)); after != before {
		t.Fatalf("%d codes sent for decided sessions", after-before)
	}

	clk.Set(T0)
	e.open(s, "off", 1, deadline, vA())
	e.open(s, "counts", 1, deadline, domain.VerifierSpec{Phone: phoneC, Roles: []string{"PRINCIPAL"}, Tails: []string{tailA}})
	clk.Set(noonOfT0)
	s.SetNoon(domain.NoonRule{Hour: 12})
	if r, err := autoResend(s, "n-off", "off"); err != nil || r.GetOutcome() != pb.AutoResendOutcome_AUTO_RESEND_OUTCOME_DISABLED {
		t.Fatalf("rule off: %v, %v", r, err)
	}
	rule.Counts = true
	s.SetNoon(rule)
	if r, err := autoResend(s, "n-counts", "counts"); err != nil || len(r.GetVerifierIds()) != 1 {
		t.Fatalf("counted: %v, %v", r, err)
	}
	if v := e.status("counts").GetVerifiers()[0]; v.GetResendsUsed() != 1 {
		t.Fatalf("resends used %d with --noon-resend-counts, want 1", v.GetResendsUsed())
	}
}

// Calls of two replicas at once (a lease that ran out while the first call was slow) draw one
// automatic code per verifier between them.
func testConcurrentAutoResends(e *env) {
	t, s, clk := e.t, e.Store, e.clk
	s.SetNoon(e.noonRule())
	e.open(s, "o1", 1, T0.Add(24*time.Hour), vA(), vB())
	clk.Set(noonOfT0)
	r2 := e.replica(clk, Hasher(t))
	r2.SetNoon(e.noonRule())
	var wg sync.WaitGroup
	var mu sync.Mutex
	sent := 0
	for i := range 8 {
		st := s
		if i%2 == 1 {
			st = r2
		}
		wg.Go(func() {
			r, err := autoResend(st, "req-"+string(rune('a'+i)), "o1")
			if err != nil {
				t.Errorf("auto resend: %v", err)
				return
			}
			mu.Lock()
			sent += len(r.GetVerifierIds())
			mu.Unlock()
		})
	}
	wg.Wait()
	if sent != 2 || len(e.sent(phoneA)) != 2 || len(e.sent(phoneB)) != 2 {
		t.Fatalf("answers name %d codes; messages A %d, B %d; want 2, 2, 2", sent, len(e.sent(phoneA)), len(e.sent(phoneB)))
	}
}
