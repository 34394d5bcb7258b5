package store

import (
	"context"
	"testing"
	"time"

	"go.uber.org/zap"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/icpverify/icpverify/pkg/clock"
	smsv1 "github.com/icpverify/icpverify/pkg/gen/icp/smsdispatch/v1"
	pb "github.com/icpverify/icpverify/pkg/gen/icp/verification/v1"
	"github.com/icpverify/icpverify/pkg/idempotency"
	"github.com/icpverify/icpverify/pkg/outbox"
	"github.com/icpverify/icpverify/pkg/pg/pgtest"
	"github.com/icpverify/icpverify/services/verification/internal/app"
	"github.com/icpverify/icpverify/services/verification/internal/convert"
	"github.com/icpverify/icpverify/services/verification/internal/domain"
	"github.com/icpverify/icpverify/services/verification/internal/store/storetest"
)

// One batch that passes one verifier of a session and locks the other (its 5th failure) ends as
// the two calls made one by one in that order would: the pass answered PASSED_WAITING_FOR_OTHERS, the
// session FAILED and its order returned, never verified; in the other order the pass is too late.
func TestVerifyBatchPassAndLockInOneSession(t *testing.T) {
	t.Parallel()
	pool := pgtest.NewSchema(t, "verification", Migrations, outbox.Migrations, idempotency.Migrations)
	eng := New(pool, clock.NewFake(storetest.T0), storetest.Hasher(t), storetest.SealKeys(), domain.DefaultLimits, zap.NewNop(), nil)
	s := app.New(eng, storetest.Hasher(t), domain.DefaultLimits, zap.NewNop())
	s.SetRand(&storetest.SeqRand{})
	ctx := context.Background()
	q := outbox.PGQueue{Pool: pool, Keys: storetest.SealKeys()}

	for _, tc := range []struct {
		order    string
		passLast bool
	}{{"o1", false}, {"o2", true}} {
		pa, pb2 := "+861380000"+tc.order[1:]+"001", "+861380000"+tc.order[1:]+"002"
		specs := []domain.VerifierSpec{{Phone: pa, Roles: []string{"PRINCIPAL"}, Tails: []string{"111111"}},
			{Phone: pb2, Roles: []string{"WEBSITE"}, Tails: []string{"222222"}}}
		req := &pb.OpenSessionRequest{RequestId: "open:" + tc.order, OrderId: tc.order, Submission: 1,
			DeadlineAt: timestamppb.New(storetest.T0.Add(time.Hour))}
		for _, v := range specs {
			req.Verifiers = append(req.Verifiers, &pb.VerifierSpec{Phone: v.Phone, Roles: v.Roles, IdTails: v.Tails})
		}
		spec, err := domain.NormalizeOpen(domain.OpenSpec{OrderID: tc.order, Submission: 1, DeadlineAt: storetest.T0.Add(time.Hour), Verifiers: specs})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := s.OpenSession(ctx, req, spec); err != nil {
			t.Fatal(err)
		}
		codes := map[string]string{}
		rows, err := q.Pending(ctx, 100)
		if err != nil {
			t.Fatal(err)
		}
		for _, r := range rows {
			m := &smsv1.SendMessageRequest{}
			if r.Target == convert.TargetSendMessage && proto.Unmarshal(r.Payload, m) == nil {
				codes[m.GetPhone()] = m.GetParams()["code"]
			}
		}
		right := domain.VerifyInput{Phone: pa, Code: codes[pa], Tail: "111111"}
		wrong := domain.VerifyInput{Phone: pb2, Code: "000000", Tail: "222222"}
		if codes[pb2] == "000000" {
			wrong.Code = "000001"
		}
		for range domain.DefaultLimits.MaxFailedAttempts - 1 {
			if _, err := s.Verify(ctx, wrong); err == nil {
				t.Fatal("a wrong code passed")
			}
		}
		ins := []domain.VerifyInput{right, wrong}
		if tc.passLast {
			ins = []domain.VerifyInput{wrong, right}
		}
		res, err := eng.verifyAll(ctx, ins)
		if err != nil {
			t.Fatal(err)
		}
		pass, lock := res[0].Value, res[1].Value
		if tc.passLast {
			pass, lock = lock, pass
		}
		switch {
		case len(lock.locked) != 1:
			t.Errorf("%s: the 5th failure locked %d verifiers, want 1", tc.order, len(lock.locked))
		case !tc.passLast && pass.resp.GetResult() != pb.VerifyResult_VERIFY_RESULT_PASSED_WAITING_FOR_OTHERS:
			t.Errorf("%s: the pass before the lock answered %v, want PASSED_WAITING_FOR_OTHERS", tc.order, pass.resp)
		case tc.passLast && pass.resp != nil:
			t.Errorf("%s: the pass after the lock answered %v, want a mismatch", tc.order, pass.resp)
		}
		st, err := s.Status(ctx, tc.order)
		if err != nil || st.GetState() != pb.SessionState_SESSION_STATE_FAILED {
			t.Errorf("%s: session %v, %v; want FAILED", tc.order, st.GetState(), err)
		}
		var marked, returned int
		rows, _ = q.Pending(ctx, 100)
		for _, r := range rows {
			switch r.Target {
			case convert.TargetMarkVerified:
				marked++
			case convert.TargetReturnOrder:
				returned++
			}
		}
		if marked != 0 || returned != 1 {
			t.Errorf("%s: %d MarkVerified and %d ReturnOrder queued, want 0 and 1", tc.order, marked, returned)
		}
		for _, r := range rows { // the next case counts its own rows
			_ = q.Delivered(ctx, r.ID)
		}
	}
}

// Failures counted in one batch all land, each challenge written once with its last values: two
// wrong checks and then the right one on one verifier leave it PASSED with 2 failures (the pass is
// not overwritten by the counts); two wrong checks alone leave it PENDING with 2.
func TestVerifyBatchCountsEveryFailureOfOneVerifier(t *testing.T) {
	t.Parallel()
	pool := pgtest.NewSchema(t, "verification", Migrations, outbox.Migrations, idempotency.Migrations)
	eng := New(pool, clock.NewFake(storetest.T0), storetest.Hasher(t), storetest.SealKeys(), domain.DefaultLimits, zap.NewNop(), nil)
	s := app.New(eng, storetest.Hasher(t), domain.DefaultLimits, zap.NewNop())
	s.SetRand(&storetest.SeqRand{})
	ctx := context.Background()
	for _, tc := range []struct {
		order     string
		pass      bool
		wantState string
	}{{"o1", true, "PASSED"}, {"o2", false, "PENDING"}} {
		phone := "+861390000" + tc.order[1:] + "001"
		specs := []domain.VerifierSpec{{Phone: phone, Roles: []string{"PRINCIPAL"}, Tails: []string{"111111"}}}
		req := &pb.OpenSessionRequest{RequestId: "open:" + tc.order, OrderId: tc.order, Submission: 1,
			DeadlineAt: timestamppb.New(storetest.T0.Add(time.Hour)),
			Verifiers:  []*pb.VerifierSpec{{Phone: phone, Roles: specs[0].Roles, IdTails: specs[0].Tails}}}
		spec, err := domain.NormalizeOpen(domain.OpenSpec{OrderID: tc.order, Submission: 1, DeadlineAt: storetest.T0.Add(time.Hour), Verifiers: specs})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := s.OpenSession(ctx, req, spec); err != nil {
			t.Fatal(err)
		}
		var code string
		m := &smsv1.SendMessageRequest{}
		rows, _ := outbox.PGQueue{Pool: pool, Keys: storetest.SealKeys()}.Pending(ctx, 100)
		for _, r := range rows {
			if r.Target == convert.TargetSendMessage && proto.Unmarshal(r.Payload, m) == nil && m.GetPhone() == phone {
				code = m.GetParams()["code"]
			}
		}
		wrong := domain.VerifyInput{Phone: phone, Code: "000000", Tail: "111111"}
		if code == wrong.Code {
			wrong.Code = "000001"
		}
		ins := []domain.VerifyInput{wrong, wrong}
		if tc.pass {
			ins = append(ins, domain.VerifyInput{Phone: phone, Code: code, Tail: "111111"})
		}
		res, err := eng.verifyAll(ctx, ins)
		if err != nil {
			t.Fatal(err)
		}
		if tc.pass && res[2].Value.resp.GetResult() != pb.VerifyResult_VERIFY_RESULT_ALL_PASSED {
			t.Errorf("%s: the right check after two wrong ones answered %v, %v", tc.order, res[2].Value.resp, res[2].Value.err)
		}
		var failed int
		var state string
		if err := pool.QueryRow(ctx, `SELECT c.failed_attempts, c.state FROM challenges c JOIN sessions s ON s.id = c.session_id
			WHERE s.order_id = $1`, tc.order).Scan(&failed, &state); err != nil {
			t.Fatal(err)
		}
		if failed != 2 || state != tc.wantState {
			t.Errorf("%s: challenge has %d failures, state %s; want 2, %s", tc.order, failed, state, tc.wantState)
		}
	}
}
