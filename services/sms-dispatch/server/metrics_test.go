package server_test

import (
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/icpverify/icpverify/pkg/rpc/rpctest"
)

// TestRunMetrics sends one message through Run with the console provider and --admin-addr and reads
// the dispatch counters.
func TestRunMetrics(t *testing.T) {
	admin := rpctest.FreeAddr(t)
	client := run(t, "--store", "memory", "--admin-addr", admin)
	sendAndWait(t, client)
	want := []string{
		`icp_sms_messages_total{provider="console",result="sent"} 1`,
		`icp_sms_messages_total{provider="console",result="failed"} 0`,
		`icp_sms_send_seconds_count{provider="console"} 1`,
		`grpc_server_handled_total{grpc_code="OK",grpc_method="SendMessage",grpc_service="icp.smsdispatch.v1.SmsDispatchService",grpc_type="unary"} 1`,
	}
	var body string
	for start := time.Now(); ; time.Sleep(20 * time.Millisecond) {
		resp, err := http.Get("http://" + admin + "/metrics")
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		body = string(b)
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
			t.Fatalf("/metrics lacks %s", missing)
		}
	}
	if strings.Contains(body, "13812345678") || strings.Contains(body, "123456\"") {
		t.Error("/metrics shows personal data")
	}
}
