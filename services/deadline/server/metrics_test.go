package server_test

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

	deadlinev1 "github.com/icpverify/icpverify/pkg/gen/icp/deadline/v1"
	verificationv1 "github.com/icpverify/icpverify/pkg/gen/icp/verification/v1"
	"github.com/icpverify/icpverify/pkg/rpc/rpctest"
	"github.com/icpverify/icpverify/services/deadline/server"
)

type closer struct {
	verificationv1.UnimplementedVerificationInternalServiceServer
}

func (closer) CloseIfIncomplete(context.Context, *verificationv1.CloseIfIncompleteRequest) (*verificationv1.CloseIfIncompleteResponse, error) {
	return &verificationv1.CloseIfIncompleteResponse{Closed: true}, nil
}

// TestRunMetrics schedules two timers through Run with --admin-addr, lets the sweeper fire the one
// that falls due against a fake verification, and reads the deadline metrics.
func TestRunMetrics(t *testing.T) {
	t.Parallel()
	verificationAddr := rpctest.Peer(t, func(s grpc.ServiceRegistrar) {
		verificationv1.RegisterVerificationInternalServiceServer(s, closer{})
	})

	addr, admin := rpctest.FreeAddr(t), rpctest.FreeAddr(t)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		done <- server.Run(ctx, []string{"--store=memory", "--grpc-addr=" + addr, "--verification-addr=" + verificationAddr,
			"--admin-addr=" + admin, "--sweep-interval=20ms", "--log-level=error", "--shutdown-timeout=1s"})
	}()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run: %v", err)
		}
	})
	conn, err := grpc.NewClient(addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	c := deadlinev1.NewDeadlineServiceClient(conn)
	for i, due := range []time.Duration{200 * time.Millisecond, 24 * time.Hour} {
		order := []string{"ord_soon", "ord_later"}[i]
		req := &deadlinev1.ScheduleDeadlineRequest{RequestId: "schedule:" + order, OrderId: order, Submission: 1,
			DueTime: timestamppb.New(time.Now().Add(due))}
		callCtx, callCancel := context.WithTimeout(ctx, 5*time.Second)
		_, err := c.ScheduleDeadline(callCtx, req, grpc.WaitForReady(true))
		callCancel()
		if err != nil {
			t.Fatal(err)
		}
	}
	want := []string{
		`icp_deadlines_fired_total{closed="true"} 1`,
		`icp_deadlines_pending 1`,
		`icp_deadlines_overdue 0`,
		`grpc_server_handled_total{grpc_code="OK",grpc_method="ScheduleDeadline",grpc_service="icp.deadline.v1.DeadlineService",grpc_type="unary"} 2`,
	}
	var body string
	for start := time.Now(); ; time.Sleep(20 * time.Millisecond) {
		resp, err := http.Get("http://" + admin + "/metrics")
		if err == nil {
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			body = string(b)
		}
		missing := ""
		for _, w := range want {
			if !strings.Contains(body, w) {
				missing = w
			}
		}
		if missing == "" {
			break
		}
		if time.Since(start) > 10*time.Second {
			t.Fatalf("/metrics lacks %s:\n%s", missing, body)
		}
	}
	resp, err := http.Get("http://" + admin + "/readyz")
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("/readyz: %v %v", resp, err)
	}
	resp.Body.Close()
}
