package server_test

import (
	"context"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/protobuf/types/known/timestamppb"

	deadlinev1 "github.com/icpverify/icpverify/pkg/gen/icp/deadline/v1"
	"github.com/icpverify/icpverify/pkg/rpc/rpctest"
	"github.com/icpverify/icpverify/services/deadline/server"
)

// TestRunInMemory starts the whole service on the memory engine (no database) and calls it.
func TestRunInMemory(t *testing.T) {
	t.Parallel()
	addr := rpctest.FreeAddr(t)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		done <- server.Run(ctx, []string{"--store=memory", "--grpc-addr=" + addr, "--verification-addr=" + rpctest.FreeAddr(t),
			"--log-level=error", "--shutdown-timeout=1s"})
	}()
	conn, err := grpc.NewClient(addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	c := deadlinev1.NewDeadlineServiceClient(conn)
	req := &deadlinev1.ScheduleDeadlineRequest{RequestId: "filing:schedule-deadline:o1:1", OrderId: "o1", Submission: 1,
		DueTime: timestamppb.New(time.Now().Add(24 * time.Hour))}
	var resp *deadlinev1.ScheduleDeadlineResponse
	for start := time.Now(); time.Since(start) < 10*time.Second; time.Sleep(20 * time.Millisecond) {
		callCtx, callCancel := context.WithTimeout(ctx, time.Second)
		resp, err = c.ScheduleDeadline(callCtx, req, grpc.WaitForReady(true))
		callCancel()
		if err == nil {
			break
		}
	}
	if err != nil || resp.GetDeadline().GetState() != deadlinev1.DeadlineState_DEADLINE_STATE_PENDING {
		t.Fatalf("schedule: %v %v", resp, err)
	}
	g, err := c.GetDeadline(ctx, &deadlinev1.GetDeadlineRequest{OrderId: "o1"})
	if err != nil || g.GetDeadline().GetSubmission() != 1 {
		t.Fatalf("get: %v %v", g, err)
	}
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("Run: %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Run did not return after its context ended")
	}
}
