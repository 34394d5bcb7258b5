package server_test

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"net"
	"strings"
	"testing"
	"time"

	"go.uber.org/zap"
	"google.golang.org/protobuf/types/known/timestamppb"

	smsv1 "github.com/icpverify/icpverify/pkg/gen/icp/smsdispatch/v1"
	"github.com/icpverify/icpverify/pkg/pg"
	"github.com/icpverify/icpverify/pkg/pg/pgtest"
	"github.com/icpverify/icpverify/pkg/rpc"

	"github.com/icpverify/icpverify/services/sms-dispatch/server"
)

func TestFlagValidation(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"--database-url", "postgres://x", "--sms-provider", "carrier-pigeon"}, "--sms-provider"},
		{[]string{"--database-url", "postgres://x", "--sms-provider", "webhook"}, "--webhook-url"},
		{[]string{"--database-url", "postgres://x", "--max-attempts", "0"}, "--max-attempts"},
		{[]string{"--database-url", "postgres://x", "--rate-per-hour", "-1"}, "must not be negative"},
		{[]string{}, "--database-url"},
	} {
		err := server.Run(context.Background(), tc.args)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("Run(%v) = %v, want an error about %s", tc.args, err, tc.want)
		}
	}
}

// TestRunEndToEnd starts the whole service with the console provider and checks that a message
// is stored, sent by the background dispatcher and redacted.
func TestRunEndToEnd(t *testing.T) {
	b := make([]byte, 6)
	_, _ = rand.Read(b)
	schema := "t_smsrun_" + hex.EncodeToString(b)
	t.Cleanup(func() {
		pool, err := pg.Connect(context.Background(), zap.NewNop(), pgtest.URL(), schema, time.Second)
		if err == nil {
			_, _ = pool.Exec(context.Background(), "DROP SCHEMA "+schema+" CASCADE")
			pool.Close()
		}
	})
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := lis.Addr().String()
	lis.Close()

	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		done <- server.Run(ctx, []string{"--grpc-addr", addr, "--database-url", pgtest.URL(), "--database-schema", schema,
			"--log-level", "error", "--shutdown-timeout", "2s"})
	}()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run: %v", err)
		}
	})

	conn, err := rpc.Dial(addr)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	client := smsv1.NewSmsDispatchServiceClient(conn)
	req := &smsv1.SendMessageRequest{MessageId: "vc-e2e-1", Phone: "13812345678", Template: smsv1.Template_TEMPLATE_VERIFICATION_CODE,
		Params: map[string]string{"code": "123456"}, ExpireTime: timestamppb.New(time.Now().Add(time.Hour)), OrderId: "order-e2e"}
	deadline := time.Now().Add(20 * time.Second)
	for {
		callCtx, c := context.WithTimeout(context.Background(), time.Second)
		_, err = client.SendMessage(callCtx, req)
		c()
		if err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("SendMessage never succeeded: %v", err)
		}
		time.Sleep(50 * time.Millisecond)
	}
	for {
		resp, err := client.GetMessage(context.Background(), &smsv1.GetMessageRequest{MessageId: "vc-e2e-1"})
		if err != nil {
			t.Fatal(err)
		}
		if m := resp.GetMessage(); m.GetState() == smsv1.MessageState_MESSAGE_STATE_SENT {
			if m.GetProvider() != "console" || !m.GetRedacted() || m.GetBody() != "" {
				t.Fatalf("sent message = %v", m)
			}
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("message not sent: %v", resp.GetMessage())
		}
		time.Sleep(20 * time.Millisecond)
	}
}
