package server_test

import (
	"context"
	"strings"
	"testing"
	"time"

	smsv1 "github.com/icpverify/icpverify/pkg/gen/icp/smsdispatch/v1"
	"github.com/icpverify/icpverify/services/sms-dispatch/providertest"
	"github.com/icpverify/icpverify/services/sms-dispatch/server"
)

func TestCMPPFlagValidation(t *testing.T) {
	base := []string{"--database-url", "postgres://x", "--sms-provider", "cmpp"}
	ok := append(append([]string(nil), base...), "--cmpp-addr", "127.0.0.1:7890", "--cmpp-source-addr", "901234",
		"--cmpp-secret", "Qx7Vb2Nm9Lk4", "--cmpp-src-id", "10690001")
	for _, tc := range []struct {
		args []string
		want string
	}{
		{base, "--cmpp-addr must be host:port"},
		{base, "--cmpp-source-addr must be 1 to 6 characters"},
		{base, "--cmpp-secret and --cmpp-src-id are required"},
		{append(append([]string(nil), ok...), "--cmpp-source-addr", "9012345"), "--cmpp-source-addr must be 1 to 6"},
		{append(append([]string(nil), ok...), "--cmpp-window", "0"), "--cmpp-conns and --cmpp-window must be at least 1"},
		{append(append([]string(nil), ok...), "--cmpp-heartbeat", "0s"), "--cmpp-submit-timeout and --cmpp-heartbeat must be positive"},
	} {
		err := server.Run(context.Background(), tc.args)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("Run(%v) = %v, want an error about %s", tc.args, err, tc.want)
		}
		if err != nil && strings.Contains(err.Error(), "Qx7Vb2Nm9Lk4") {
			t.Errorf("Run(%v) error names the secret: %v", tc.args, err)
		}
	}
}

// The service sends through the cmpp provider to the fake ISMG by flags alone, and the gateway's
// status report makes the message DELIVERED.
func TestRunMemoryCMPP(t *testing.T) {
	fake := providertest.NewCMPP("901234", "Qx7Vb2Nm9Lk4")
	t.Cleanup(fake.Close)
	fake.Reports(200*time.Millisecond, false)
	client := run(t, "--store", "memory", "--sms-provider", "cmpp", "--cmpp-addr", fake.Addr(), "--cmpp-source-addr", "901234",
		"--cmpp-secret", "Qx7Vb2Nm9Lk4", "--cmpp-src-id", "10690001", "--cmpp-service-id", "ICPSMS")
	m := sendAndWait(t, client)
	got := fake.Messages()
	if m.GetProvider() != "cmpp" || len(got) != 1 || got[0].Phone != "+8613812345678" || !strings.Contains(got[0].Text, "123456") {
		t.Fatalf("sent message = %v, accepted %+v", m, got)
	}
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		resp, err := client.GetMessage(context.Background(), &smsv1.GetMessageRequest{MessageId: "vc-e2e-1"})
		if err != nil {
			t.Fatal(err)
		}
		if resp.GetMessage().GetState() == smsv1.MessageState_MESSAGE_STATE_DELIVERED {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("never DELIVERED: %v", resp.GetMessage())
		}
	}
}
