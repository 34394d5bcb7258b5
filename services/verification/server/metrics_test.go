package server

import (
	"context"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/protobuf/types/known/timestamppb"

	pb "github.com/icpverify/icpverify/pkg/gen/icp/verification/v1"
	"github.com/icpverify/icpverify/pkg/rpc/rpctest"
	"github.com/icpverify/icpverify/services/verification/internal/convert"
	"github.com/icpverify/icpverify/services/verification/internal/domain"
)

func scrape(t *testing.T, url string) (int, string) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// TestRunMetrics drives real traffic through Run on the memory engine with --admin-addr and reads
// the admin endpoints: a pass, a mismatch and a lock show in the outcome counters and the
// grpc_server_* series, the outbox deliveries in the relay's.
func TestRunMetrics(t *testing.T) {
	p, peerAddr := startPeers(t)
	admin := "http://" + rpctest.FreeAddr(t)
	addr := startRun(t, "--store", "memory", "--database-url", "", "--admin-addr", strings.TrimPrefix(admin, "http://"),
		"--sms-dispatch-addr", peerAddr, "--filing-addr", peerAddr, "--deadline-addr", peerAddr)
	conn, err := grpc.NewClient(addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	internal := pb.NewVerificationInternalServiceClient(conn)
	public := pb.NewVerificationServiceClient(conn)
	ctx := context.Background()
	open := func(order, phone string) {
		eventually(t, "OpenSession", func() bool {
			_, err := internal.OpenSession(ctx, &pb.OpenSessionRequest{RequestId: "open:" + order, OrderId: order, Submission: 1,
				DeadlineAt: timestamppb.New(time.Now().Add(time.Hour)),
				Verifiers:  []*pb.VerifierSpec{{Phone: phone, Roles: []string{"PRINCIPAL"}, IdTails: []string{"12345X"}}}})
			return err == nil
		})
	}
	open("ord_metrics_1", "+8613812345678")
	eventually(t, "the code to reach sms-dispatch", func() bool { n, _, _ := p.counts(); return n == 1 })
	if code, body := scrape(t, admin+"/readyz"); code != http.StatusOK {
		t.Fatalf("/readyz: %d %s", code, body)
	}
	if code, _ := scrape(t, admin+"/healthz"); code != http.StatusOK {
		t.Fatalf("/healthz: %d", code)
	}
	p.mu.Lock()
	code := p.sms[0].GetParams()["code"]
	p.mu.Unlock()
	wrong := "000000"
	if code == wrong {
		wrong = "111111"
	}
	if _, err := public.Verify(ctx, &pb.VerifyRequest{Phone: "13812345678", Code: wrong, IdTail: "12345X"}); err == nil {
		t.Fatal("a wrong code passed")
	}
	if r, err := public.Verify(ctx, &pb.VerifyRequest{Phone: "13812345678", Code: code, IdTail: "12345X"}); err != nil ||
		r.GetResult() != pb.VerifyResult_VERIFY_RESULT_ALL_PASSED {
		t.Fatalf("verify = %v, %v", r, err)
	}
	// A second verifier fails until locked.
	open("ord_metrics_2", "+8613912345678")
	for range domain.DefaultLimits.MaxFailedAttempts {
		if _, err := public.Verify(ctx, &pb.VerifyRequest{Phone: "13912345678", Code: wrong, IdTail: "12345X"}); err == nil {
			t.Fatal("a wrong code passed")
		}
	}
	eventually(t, "MarkVerified and CancelDeadline", func() bool { _, m, c := p.counts(); return m == 1 && c == 2 })

	verify := `grpc_method="Verify",grpc_service="icp.verification.v1.VerificationService",grpc_type="unary"`
	want := []string{
		`icp_verification_outcomes_total{outcome="all_passed"} 1`,
		`icp_verification_outcomes_total{outcome="mismatch"} 6`,
		`icp_verification_outcomes_total{outcome="locked"} 1`,
		`icp_verification_outcomes_total{outcome="passed_waiting"} 0`,
		`grpc_server_handled_total{grpc_code="NotFound",` + verify + `} 6`,
		`grpc_server_handled_total{grpc_code="OK",` + verify + `} 1`,
		`grpc_server_handling_seconds_count{` + verify + `} 7`,
		`icp_outbox_delivered_total{result="delivered",target="` + convert.TargetSendMessage + `"} 2`,
		`icp_outbox_delivered_total{result="delivered",target="` + convert.TargetMarkVerified + `"} 1`,
		`icp_outbox_delivered_total{result="delivered",target="` + convert.TargetCancelDeadline + `"} 2`,
		`icp_outbox_delivered_total{result="parked",target="` + convert.TargetReturnOrder + `"} 1`, // the fake filing lacks ReturnOrder
		`icp_outbox_pending{target="` + convert.TargetSendMessage + `"} 0`,
		`icp_outbox_oldest_age_seconds{target="` + convert.TargetSendMessage + `"} 0`,
	}
	var body string
	eventually(t, "the counters", func() bool {
		_, body = scrape(t, admin+"/metrics")
		for _, w := range want {
			if !strings.Contains(body, w) {
				return false
			}
		}
		return true
	})
	for _, secret := range []string{"13812345678", code, "12345X", "ord_metrics"} {
		if strings.Contains(body, secret) {
			t.Errorf("/metrics shows %q", secret)
		}
	}
}
