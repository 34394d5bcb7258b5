package store

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/zap"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/icpverify/icpverify/pkg/clock"
	"github.com/icpverify/icpverify/pkg/errs"
	filingv1 "github.com/icpverify/icpverify/pkg/gen/icp/filing/v1"
	smsv1 "github.com/icpverify/icpverify/pkg/gen/icp/smsdispatch/v1"
	pb "github.com/icpverify/icpverify/pkg/gen/icp/verification/v1"
	"github.com/icpverify/icpverify/pkg/idempotency"
	"github.com/icpverify/icpverify/pkg/outbox"
	"github.com/icpverify/icpverify/pkg/pg/pgtest"
	"github.com/icpverify/icpverify/services/verification/internal/domain"
)

var start = time.Date(2026, 11, 26, 10, 0, 0, 0, time.UTC)

const (
	phoneA = "+8613812345678"
	phoneB = "+8613912345678"
	tailA  = "12345X"
	tailB  = "654321"
)

func testHasher(t testing.TB) *domain.Hasher {
	keys, err := domain.ParseKeys("k1:" + strings.Repeat("ab", 32))
	if err != nil {
		t.Fatal(err)
	}
	h, err := domain.NewHasher(keys)
	if err != nil {
		t.Fatal(err)
	}
	return h
}

func newPool(t *testing.T) *pgxpool.Pool {
	return pgtest.NewSchema(t, "verification", Migrations, outbox.Migrations, idempotency.Migrations)
}

func newStore(t *testing.T, pool *pgxpool.Pool, clk clock.Clock) *Store {
	return New(pool, clk, testHasher(t), domain.DefaultLimits, zap.NewNop(), nil)
}

func openReq(order string, sub int32, deadline time.Time, verifiers ...domain.VerifierSpec) (*pb.OpenSessionRequest, domain.OpenSpec) {
	req := &pb.OpenSessionRequest{RequestId: fmt.Sprintf("filing:open-session:%s:%d", order, sub), OrderId: order,
		Submission: sub, DeadlineAt: timestamppb.New(deadline)}
	for _, v := range verifiers {
		req.Verifiers = append(req.Verifiers, &pb.VerifierSpec{Phone: v.Phone, Roles: v.Roles, IdTails: v.Tails})
	}
	spec, err := domain.NormalizeOpen(domain.OpenSpec{OrderID: order, Submission: sub, DeadlineAt: deadline, Verifiers: verifiers})
	if err != nil {
		panic(err)
	}
	return req, spec
}

func vA() domain.VerifierSpec {
	return domain.VerifierSpec{Phone: phoneA, Roles: []string{"PRINCIPAL"}, Tails: []string{tailA}}
}

func vB() domain.VerifierSpec {
	return domain.VerifierSpec{Phone: phoneB, Roles: []string{"WEBSITE"}, Tails: []string{tailB, "ABCDEF"}}
}

func open(t *testing.T, s *Store, order string, sub int32, deadline time.Time, vs ...domain.VerifierSpec) *pb.VerificationStatus {
	t.Helper()
	req, spec := openReq(order, sub, deadline, vs...)
	resp, err := s.OpenSession(context.Background(), req, spec)
	if err != nil {
		t.Fatalf("open session: %v", err)
	}
	return resp.GetStatus()
}

type outboxRow struct {
	target  string
	payload []byte
}

func outboxRows(t *testing.T, pool *pgxpool.Pool, target string) []outboxRow {
	t.Helper()
	rows, err := pool.Query(context.Background(), `SELECT target, payload FROM outbox WHERE target = $1 ORDER BY id`, target)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	var out []outboxRow
	for rows.Next() {
		var r outboxRow
		if err := rows.Scan(&r.target, &r.payload); err != nil {
			t.Fatal(err)
		}
		out = append(out, r)
	}
	return out
}

// sent returns the SMS requests queued for a phone, oldest first.
func sent(t *testing.T, pool *pgxpool.Pool, phone string) []*smsv1.SendMessageRequest {
	t.Helper()
	var out []*smsv1.SendMessageRequest
	for _, r := range outboxRows(t, pool, TargetSendMessage) {
		m := &smsv1.SendMessageRequest{}
		if err := proto.Unmarshal(r.payload, m); err != nil {
			t.Fatal(err)
		}
		if m.GetPhone() == phone {
			out = append(out, m)
		}
	}
	return out
}

func lastCode(t *testing.T, pool *pgxpool.Pool, phone string) string {
	t.Helper()
	msgs := sent(t, pool, phone)
	if len(msgs) == 0 {
		t.Fatalf("no code sent to %s", phone)
	}
	return msgs[len(msgs)-1].GetParams()["code"]
}

func countOrder(t *testing.T, pool *pgxpool.Pool, target, order string) int {
	t.Helper()
	n := 0
	for _, r := range outboxRows(t, pool, target) {
		var m interface{ GetOrderId() string }
		switch target {
		case TargetMarkVerified:
			x := &filingv1.MarkVerifiedRequest{}
			_ = proto.Unmarshal(r.payload, x)
			m = x
		case TargetReturnOrder:
			x := &filingv1.ReturnOrderRequest{}
			_ = proto.Unmarshal(r.payload, x)
			m = x
		default:
			t.Fatalf("countOrder: target %s", target)
		}
		if m.GetOrderId() == order {
			n++
		}
	}
	return n
}

func wrongCode(code string) string {
	if code == "000000" {
		return "000001"
	}
	return "000000"
}

func isNotMatched(err error) bool {
	var de *errs.Error
	return errors.As(err, &de) && de.Kind == errs.KindNotFound && de.Reason == domain.ReasonNotMatched && de.Message == domain.NotMatchedMessage
}

func TestOpenSessionIdempotentAndSuperseded(t *testing.T) {
	t.Parallel()
	pool := newPool(t)
	clk := clock.NewFake(start)
	s := newStore(t, pool, clk)
	deadline := start.Add(24 * time.Hour)

	st := open(t, s, "o1", 1, deadline, vA(), vB())
	if st.GetState() != pb.SessionState_SESSION_STATE_OPEN || len(st.GetVerifiers()) != 2 ||
		st.GetVerifiers()[0].GetVerifierId() != "v1" || st.GetVerifiers()[1].GetVerifierId() != "v2" ||
		st.GetVerifiers()[0].GetPhoneMasked() != "138****5678" {
		t.Fatalf("status = %v", st)
	}
	msgs := sent(t, pool, phoneA)
	if len(msgs) != 1 || !domain.ValidCodeShape(msgs[0].GetParams()["code"]) ||
		msgs[0].GetParams()["deadline"] != deadline.Format(time.RFC3339) || !msgs[0].GetExpireTime().AsTime().Equal(deadline) ||
		msgs[0].GetLocale() != "zh-CN" || msgs[0].GetTemplate() != smsv1.Template_TEMPLATE_VERIFICATION_CODE ||
		!strings.HasPrefix(msgs[0].GetMessageId(), "vc-") || !strings.HasSuffix(msgs[0].GetMessageId(), "-v1-1") {
		t.Fatalf("sms = %v", msgs)
	}
	// The same request again (same request id), and the same business key with another request id:
	// the same session, no new code.
	clk.Advance(time.Minute)
	again := open(t, s, "o1", 1, deadline, vA(), vB())
	req, spec := openReq("o1", 1, deadline, vA(), vB())
	req.RequestId = "another"
	other, err := s.OpenSession(context.Background(), req, spec)
	if err != nil {
		t.Fatal(err)
	}
	if !proto.Equal(again, st) || other.GetStatus().GetVerifiers()[0].GetLastSentTime().AsTime() != start {
		t.Fatalf("repeat answered differently: %v / %v", again, other)
	}
	if n := len(outboxRows(t, pool, TargetSendMessage)); n != 2 {
		t.Fatalf("%d SMS queued, want 2", n)
	}

	// A newer submission cancels the open one; the older one is then refused as stale.
	open(t, s, "o1", 2, deadline.Add(time.Hour), vA())
	old, err := s.Status(context.Background(), "o1")
	if err != nil || old.GetSubmission() != 2 {
		t.Fatalf("status = %v, %v", old, err)
	}
	var state string
	if err := pool.QueryRow(context.Background(), `SELECT state FROM sessions WHERE order_id='o1' AND submission=1`).Scan(&state); err != nil || state != "CANCELLED" {
		t.Fatalf("superseded session state = %q, %v", state, err)
	}
	req, spec = openReq("o9", 3, deadline, vA())
	open(t, s, "o9", 3, deadline, vA())
	req.RequestId, req.Submission, spec.Submission = "stale", 2, 2
	if _, err := s.OpenSession(context.Background(), req, spec); errs.Reason(err) != domain.ReasonStaleSubmission {
		t.Fatalf("stale submission: %v", err)
	}
	// A deadline in the past is refused for a new session.
	req, spec = openReq("o2", 1, clk.Now(), vA())
	if _, err := s.OpenSession(context.Background(), req, spec); errs.Reason(err) != "DEADLINE_IN_PAST" {
		t.Fatalf("past deadline: %v", err)
	}
	// The verifier's old-session code does not pass: the session was cancelled.
	if _, err := s.Verify(context.Background(), domain.VerifyInput{Phone: phoneB, Code: lastCode(t, pool, phoneB), Tail: tailB}); !isNotMatched(err) {
		t.Fatalf("verify on a cancelled session: %v", err)
	}
}

func TestVerifyPassesAllVerifiers(t *testing.T) {
	t.Parallel()
	pool := newPool(t)
	clk := clock.NewFake(start)
	s := newStore(t, pool, clk)
	open(t, s, "o1", 1, start.Add(24*time.Hour), vA(), vB())
	ctx := context.Background()

	r, err := s.Verify(ctx, domain.VerifyInput{Phone: phoneA, Code: lastCode(t, pool, phoneA), Tail: tailA})
	if err != nil || r.GetResult() != pb.VerifyResult_VERIFY_RESULT_PASSED_WAITING_FOR_OTHERS || r.GetOrderId() != "o1" ||
		r.GetMessageZh() != domain.MessageWaitingZH {
		t.Fatalf("first verify = %v, %v", r, err)
	}
	// Passed is final: the same entry again gets the uniform answer.
	if _, err := s.Verify(ctx, domain.VerifyInput{Phone: phoneA, Code: lastCode(t, pool, phoneA), Tail: tailA}); !isNotMatched(err) {
		t.Fatalf("repeat verify = %v", err)
	}
	clk.Advance(time.Hour)
	// The second of phone B's two ID tails works too.
	r, err = s.Verify(ctx, domain.VerifyInput{Phone: phoneB, Code: lastCode(t, pool, phoneB), Tail: "ABCDEF"})
	if err != nil || r.GetResult() != pb.VerifyResult_VERIFY_RESULT_ALL_PASSED || r.GetMessageEn() != domain.MessageAllEN {
		t.Fatalf("second verify = %v, %v", r, err)
	}
	if countOrder(t, pool, TargetMarkVerified, "o1") != 1 || len(outboxRows(t, pool, TargetCancelDeadline)) != 1 ||
		len(outboxRows(t, pool, TargetReturnOrder)) != 0 {
		t.Fatal("ALL_PASSED must queue one MarkVerified and one CancelDeadline")
	}
	st, err := s.Status(ctx, "o1")
	if err != nil || st.GetState() != pb.SessionState_SESSION_STATE_PASSED ||
		!st.GetVerifiers()[1].GetPassedTime().AsTime().Equal(start.Add(time.Hour)) {
		t.Fatalf("status = %v, %v", st, err)
	}
	// A passed session cannot time out.
	clk.Advance(24 * time.Hour)
	cr, err := s.CloseIfIncomplete(ctx, &pb.CloseIfIncompleteRequest{RequestId: "d1", OrderId: "o1", Submission: 1})
	if err != nil || cr.GetClosed() || cr.GetStatus().GetState() != pb.SessionState_SESSION_STATE_PASSED {
		t.Fatalf("close after pass = %v, %v", cr, err)
	}
}

func TestConcurrentWrongVerifiesLockExactlyOnce(t *testing.T) {
	t.Parallel()
	pool := newPool(t)
	s := newStore(t, pool, clock.NewFake(start))
	open(t, s, "o1", 1, start.Add(24*time.Hour), vA(), vB())
	bad := domain.VerifyInput{Phone: phoneA, Code: wrongCode(lastCode(t, pool, phoneA)), Tail: tailA}

	const n = 20
	errsCh := make(chan error, n)
	var wg sync.WaitGroup
	for range n {
		wg.Go(func() {
			_, err := s.Verify(context.Background(), bad)
			errsCh <- err
		})
	}
	wg.Wait()
	close(errsCh)
	for err := range errsCh {
		if !isNotMatched(err) {
			t.Fatalf("answer = %v, want the uniform NotFound", err)
		}
	}
	var failed int
	var chState, sessState string
	if err := pool.QueryRow(context.Background(), `SELECT c.failed_attempts, c.state, s.state FROM challenges c
		JOIN sessions s ON s.id = c.session_id WHERE c.phone = $1`, phoneA).Scan(&failed, &chState, &sessState); err != nil {
		t.Fatal(err)
	}
	if failed != domain.DefaultLimits.MaxFailedAttempts || chState != "LOCKED" || sessState != "FAILED" {
		t.Fatalf("failed_attempts=%d challenge=%s session=%s", failed, chState, sessState)
	}
	if got := outboxRows(t, pool, TargetReturnOrder); len(got) != 1 {
		t.Fatalf("%d ReturnOrder rows, want 1", len(got))
	} else {
		m := &filingv1.ReturnOrderRequest{}
		_ = proto.Unmarshal(got[0].payload, m)
		if m.GetReason() != filingv1.ReturnReason_RETURN_REASON_TOO_MANY_FAILED_ATTEMPTS || m.GetRequestId() != "verification:return:o1:1" {
			t.Fatalf("return = %v", m)
		}
	}
	if len(outboxRows(t, pool, TargetCancelDeadline)) != 1 {
		t.Fatal("want one CancelDeadline")
	}
	// The locked verifier's right code no longer passes, and phone B's session is failed too.
	if _, err := s.Verify(context.Background(), domain.VerifyInput{Phone: phoneA, Code: lastCode(t, pool, phoneA), Tail: tailA}); !isNotMatched(err) {
		t.Fatalf("verify after lock = %v", err)
	}
	if _, err := s.Verify(context.Background(), domain.VerifyInput{Phone: phoneB, Code: lastCode(t, pool, phoneB), Tail: tailB}); !isNotMatched(err) {
		t.Fatalf("verify other verifier of a failed session = %v", err)
	}
}

// TestDeadlineRace runs the last Verify and CloseIfIncomplete at once around the deadline, each with
// its own clock: whatever the interleaving, the order is either verified or returned, never both.
func TestDeadlineRace(t *testing.T) {
	t.Parallel()
	pool := newPool(t)
	deadline := start.Add(24 * time.Hour)
	opener := newStore(t, pool, clock.NewFake(start))
	cases := []struct {
		name            string
		verifyAt        time.Time
		closeAt         time.Time
		wantMark, wantR int // -1: either, as long as exactly one
	}{
		{"verify 1ns before, close at the deadline", deadline.Add(-time.Nanosecond), deadline, -1, -1},
		{"both at the deadline", deadline, deadline, 0, 1},
		{"both 1ns before", deadline.Add(-time.Nanosecond), deadline.Add(-time.Nanosecond), 1, 0},
	}
	for ci, tc := range cases {
		for i := range 15 {
			order := fmt.Sprintf("race-%d-%d", ci, i)
			// Each order's verifier has a distinct phone so the codes do not mix.
			ph := fmt.Sprintf("+86139%08d", ci*100+i)
			open(t, opener, order, 1, deadline, domain.VerifierSpec{Phone: ph, Tails: []string{tailA}})
			code := lastCode(t, pool, ph)
			v := newStore(t, pool, clock.NewFake(tc.verifyAt))
			c := newStore(t, pool, clock.NewFake(tc.closeAt))
			var wg sync.WaitGroup
			var verr, cerr error
			var cresp *pb.CloseIfIncompleteResponse
			wg.Go(func() {
				_, verr = v.Verify(context.Background(), domain.VerifyInput{Phone: ph, Code: code, Tail: tailA})
			})
			wg.Go(func() {
				cresp, cerr = c.CloseIfIncomplete(context.Background(), &pb.CloseIfIncompleteRequest{
					RequestId: "deadline:close:" + order + ":1", OrderId: order, Submission: 1})
			})
			wg.Wait()
			mark, ret := countOrder(t, pool, TargetMarkVerified, order), countOrder(t, pool, TargetReturnOrder, order)
			if mark+ret != 1 {
				t.Fatalf("%s #%d: MarkVerified=%d ReturnOrder=%d (verify err %v, close %v/%v)", tc.name, i, mark, ret, verr, cresp, cerr)
			}
			if tc.wantMark >= 0 && (mark != tc.wantMark || ret != tc.wantR) {
				t.Fatalf("%s #%d: MarkVerified=%d ReturnOrder=%d, want %d/%d", tc.name, i, mark, ret, tc.wantMark, tc.wantR)
			}
			if mark == 1 && (verr != nil || (cerr == nil && cresp.GetClosed())) {
				t.Fatalf("%s #%d: verified but verify=%v close=%v", tc.name, i, verr, cresp)
			}
			if ret == 1 && (!isNotMatched(verr) || !cresp.GetClosed()) {
				t.Fatalf("%s #%d: returned but verify=%v close=%v/%v", tc.name, i, verr, cresp, cerr)
			}
			if tc.closeAt.Before(deadline) && errs.Reason(cerr) != domain.ReasonDeadlineNotReached {
				t.Fatalf("%s #%d: early close answered %v", tc.name, i, cerr)
			}
		}
	}
}

func TestCloseIfIncomplete(t *testing.T) {
	t.Parallel()
	pool := newPool(t)
	clk := clock.NewFake(start)
	s := newStore(t, pool, clk)
	deadline := start.Add(24 * time.Hour)
	open(t, s, "o1", 1, deadline, vA())
	ctx := context.Background()
	req := &pb.CloseIfIncompleteRequest{RequestId: "deadline:close:o1:1", OrderId: "o1", Submission: 1}

	clk.Set(deadline.Add(-time.Nanosecond))
	if _, err := s.CloseIfIncomplete(ctx, req); errs.Reason(err) != domain.ReasonDeadlineNotReached {
		t.Fatalf("early close = %v", err)
	}
	clk.Set(deadline)
	r, err := s.CloseIfIncomplete(ctx, req)
	if err != nil || !r.GetClosed() || r.GetStatus().GetState() != pb.SessionState_SESSION_STATE_TIMED_OUT {
		t.Fatalf("close = %v, %v", r, err)
	}
	// Again, with the same and with another request id: closed, no second return.
	if r, err := s.CloseIfIncomplete(ctx, req); err != nil || !r.GetClosed() {
		t.Fatalf("repeat = %v, %v", r, err)
	}
	req2 := proto.Clone(req).(*pb.CloseIfIncompleteRequest)
	req2.RequestId = "other"
	if r, err := s.CloseIfIncomplete(ctx, req2); err != nil || !r.GetClosed() {
		t.Fatalf("repeat = %v, %v", r, err)
	}
	rows := outboxRows(t, pool, TargetReturnOrder)
	if len(rows) != 1 {
		t.Fatalf("%d returns", len(rows))
	}
	m := &filingv1.ReturnOrderRequest{}
	_ = proto.Unmarshal(rows[0].payload, m)
	if m.GetReason() != filingv1.ReturnReason_RETURN_REASON_VERIFICATION_TIMEOUT || m.GetSubmission() != 1 {
		t.Fatalf("return = %v", m)
	}
	if _, err := s.CloseIfIncomplete(ctx, &pb.CloseIfIncompleteRequest{OrderId: "nope", Submission: 1}); errs.Reason(err) != domain.ReasonSessionNotFound {
		t.Fatalf("unknown = %v", err)
	}
	// The right code after the deadline fails uniformly.
	if _, err := s.Verify(ctx, domain.VerifyInput{Phone: phoneA, Code: lastCode(t, pool, phoneA), Tail: tailA}); !isNotMatched(err) {
		t.Fatalf("late verify = %v", err)
	}
}

func TestResendReplacesCodeKeepsFailuresAndLimits(t *testing.T) {
	t.Parallel()
	pool := newPool(t)
	clk := clock.NewFake(start)
	s := newStore(t, pool, clk)
	deadline := start.Add(24 * time.Hour)
	open(t, s, "o1", 1, deadline, vA(), vB())
	ctx := context.Background()
	first := lastCode(t, pool, phoneA)

	// One wrong entry before the resend.
	if _, err := s.Verify(ctx, domain.VerifyInput{Phone: phoneA, Code: wrongCode(first), Tail: tailA}); !isNotMatched(err) {
		t.Fatal(err)
	}
	resend := func(id string) (*pb.Resend, error) {
		r, err := s.ResendVerifier(ctx, &pb.ResendVerifierCodeRequest{RequestId: id, OrderId: "o1", VerifierId: "v1"})
		return r.GetResend(), err
	}
	_, err := resend("r0")
	var de *errs.Error
	if !errors.As(err, &de) || de.Reason != domain.ReasonResendTooSoon || de.RetryAfter != time.Minute {
		t.Fatalf("immediate resend = %v", err)
	}
	clk.Advance(time.Minute)
	r, err := resend("r1")
	if err != nil || r.GetResendsLeft() != 1 || r.GetVerifierId() != "v1" || !r.GetDeadlineAt().AsTime().Equal(deadline) ||
		!r.GetNextResendTime().AsTime().Equal(clk.Now().Add(time.Minute)) {
		t.Fatalf("resend = %v, %v", r, err)
	}
	// A retry of the same request id answers the same and sends nothing more.
	if again, err := resend("r1"); err != nil || !proto.Equal(again, r) {
		t.Fatalf("retry = %v, %v", again, err)
	}
	msgs := sent(t, pool, phoneA)
	if len(msgs) != 2 || !strings.HasSuffix(msgs[1].GetMessageId(), "-v1-2") {
		t.Fatalf("messages = %v", msgs)
	}
	second := msgs[1].GetParams()["code"]
	if second == first {
		// One chance in a million: draw again rather than make the test flaky.
		t.Skip("resend drew the same code")
	}
	// The old code fails from the resend on, and counts as a failure (2 now).
	if _, err := s.Verify(ctx, domain.VerifyInput{Phone: phoneA, Code: first, Tail: tailA}); !isNotMatched(err) {
		t.Fatalf("old code = %v", err)
	}
	st, _ := s.Status(ctx, "o1")
	if v := st.GetVerifiers()[0]; v.GetFailedAttempts() != 2 || v.GetResendsUsed() != 1 || !st.GetDeadlineAt().AsTime().Equal(deadline) {
		t.Fatalf("verifier = %v", v)
	}
	// Second resend allowed, third refused.
	clk.Advance(time.Minute)
	if r, err := resend("r2"); err != nil || r.GetResendsLeft() != 0 || r.GetNextResendTime() != nil {
		t.Fatalf("second resend = %v, %v", r, err)
	}
	clk.Advance(time.Hour)
	if _, err := resend("r3"); !errors.As(err, &de) || de.Reason != domain.ReasonResendLimit || de.RetryAfter != 0 {
		t.Fatalf("third resend = %v", err)
	}
	newest := lastCode(t, pool, phoneA)
	if r, err := s.Verify(ctx, domain.VerifyInput{Phone: phoneA, Code: newest, Tail: tailA}); err != nil ||
		r.GetResult() != pb.VerifyResult_VERIFY_RESULT_PASSED_WAITING_FOR_OTHERS {
		t.Fatalf("new code = %v, %v", r, err)
	}
	// A passed verifier cannot get a new code; unknown verifiers are NotFound.
	if _, err := s.ResendVerifier(ctx, &pb.ResendVerifierCodeRequest{OrderId: "o1", VerifierId: "v1"}); errs.Reason(err) != domain.ReasonVerifierNotPending {
		t.Fatalf("resend passed = %v", err)
	}
	for _, q := range []*pb.ResendVerifierCodeRequest{{OrderId: "o1", VerifierId: "v9"}, {OrderId: "nope", VerifierId: "v1"}} {
		if _, err := s.ResendVerifier(ctx, q); errs.Reason(err) != domain.ReasonVerifierNotFound {
			t.Fatalf("resend %v = %v", q, err)
		}
	}
	// Public resend by phone + ID tail: a wrong tail is the uniform answer; the right one sends.
	if _, err := s.ResendByPhone(ctx, &pb.ResendCodeRequest{RequestId: "p1"}, phoneB, "000000"); !isNotMatched(err) {
		t.Fatalf("wrong tail = %v", err)
	}
	if _, err := s.ResendByPhone(ctx, &pb.ResendCodeRequest{RequestId: "p2"}, "+8613700000000", tailB); !isNotMatched(err) {
		t.Fatalf("unknown phone = %v", err)
	}
	pr, err := s.ResendByPhone(ctx, &pb.ResendCodeRequest{RequestId: "p3"}, phoneB, tailB)
	if err != nil || pr.GetResend().GetVerifierId() != "v2" || pr.GetResend().GetOrderId() != "o1" {
		t.Fatalf("resend by phone = %v, %v", pr, err)
	}
	// Past the deadline the verifier is no longer pending.
	clk.Set(deadline)
	if _, err := s.ResendVerifier(ctx, &pb.ResendVerifierCodeRequest{OrderId: "o1", VerifierId: "v2"}); errs.Reason(err) != domain.ReasonVerifierNotPending {
		t.Fatalf("resend after deadline = %v", err)
	}
}

func TestCancelSession(t *testing.T) {
	t.Parallel()
	pool := newPool(t)
	clk := clock.NewFake(start)
	s := newStore(t, pool, clk)
	deadline := start.Add(24 * time.Hour)
	ctx := context.Background()
	open(t, s, "o1", 1, deadline, vA())
	before := len(outboxRows(t, pool, TargetSendMessage))

	r, err := s.CancelSession(ctx, &pb.CancelSessionRequest{RequestId: "c1", OrderId: "o1", Submission: 1})
	if err != nil || r.GetStatus().GetState() != pb.SessionState_SESSION_STATE_CANCELLED {
		t.Fatalf("cancel = %v, %v", r, err)
	}
	if r, err := s.CancelSession(ctx, &pb.CancelSessionRequest{RequestId: "c2", OrderId: "o1", Submission: 1}); err != nil ||
		r.GetStatus().GetState() != pb.SessionState_SESSION_STATE_CANCELLED {
		t.Fatalf("repeat cancel = %v, %v", r, err)
	}
	var n int
	if err := pool.QueryRow(ctx, `SELECT count(*) FROM outbox`).Scan(&n); err != nil || n != before {
		t.Fatalf("cancel wrote outbox rows: %d -> %d", before, n)
	}
	// A cancel that overtakes OpenSession leaves a tombstone: the late open sends nothing.
	if _, err := s.CancelSession(ctx, &pb.CancelSessionRequest{OrderId: "o2", Submission: 1}); err != nil {
		t.Fatal(err)
	}
	st := open(t, s, "o2", 1, deadline, vB())
	if st.GetState() != pb.SessionState_SESSION_STATE_CANCELLED || len(sent(t, pool, phoneB)) != 0 {
		t.Fatalf("open after cancel = %v", st)
	}
	// A passed session stays passed.
	open(t, s, "o3", 1, deadline, vB())
	if _, err := s.Verify(ctx, domain.VerifyInput{Phone: phoneB, Code: lastCode(t, pool, phoneB), Tail: tailB}); err != nil {
		t.Fatal(err)
	}
	if r, err := s.CancelSession(ctx, &pb.CancelSessionRequest{OrderId: "o3", Submission: 1}); err != nil ||
		r.GetStatus().GetState() != pb.SessionState_SESSION_STATE_PASSED {
		t.Fatalf("cancel passed = %v, %v", r, err)
	}
	if _, err := s.Status(ctx, "nope"); errs.Reason(err) != domain.ReasonSessionNotFound {
		t.Fatalf("status unknown = %v", err)
	}
}

// TestKeyRotation: codes hashed under an old key still verify after a new key becomes active.
func TestKeyRotation(t *testing.T) {
	t.Parallel()
	pool := newPool(t)
	clk := clock.NewFake(start)
	oldKeys, _ := domain.ParseKeys("old:" + strings.Repeat("cd", 32))
	oldH, _ := domain.NewHasher(oldKeys)
	s := New(pool, clk, oldH, domain.DefaultLimits, zap.NewNop(), nil)
	open(t, s, "o1", 1, start.Add(time.Hour), vA())
	rotKeys, _ := domain.ParseKeys("new:" + strings.Repeat("ef", 32) + ",old:" + strings.Repeat("cd", 32))
	rotH, _ := domain.NewHasher(rotKeys)
	s2 := New(pool, clk, rotH, domain.DefaultLimits, zap.NewNop(), nil)
	if r, err := s2.Verify(context.Background(), domain.VerifyInput{Phone: phoneA, Code: lastCode(t, pool, phoneA), Tail: tailA}); err != nil ||
		r.GetResult() != pb.VerifyResult_VERIFY_RESULT_ALL_PASSED {
		t.Fatalf("verify after rotation = %v, %v", r, err)
	}
}
