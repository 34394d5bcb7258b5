package server_test

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/zap"
	"google.golang.org/protobuf/types/known/timestamppb"

	smsv1 "github.com/icpverify/icpverify/pkg/gen/icp/smsdispatch/v1"
	"github.com/icpverify/icpverify/pkg/pg"
	"github.com/icpverify/icpverify/pkg/pg/pgtest"
	"github.com/icpverify/icpverify/pkg/rpc/rpctest"

	"github.com/icpverify/icpverify/services/sms-dispatch/server"
)

func TestFlagValidation(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"--database-url", "postgres://x", "--sms-provider", "carrier-pigeon"}, "--sms-provider"},
		{[]string{"--database-url", "postgres://x", "--sms-provider", "webhook"}, "--webhook-url"},
		{[]string{"--database-url", "postgres://x", "--sms-provider", "webhook", "--webhook-url", "http://gw/sms",
			"--webhook-batch-url", "gw/batch"}, "--webhook-batch-url"},
		{[]string{"--database-url", "postgres://x", "--sms-provider", "webhook", "--webhook-url", "http://gw/sms",
			"--webhook-batch-url", "http://gw/batch", "--webhook-batch-max", "0"}, "--webhook-batch-max"},
		{[]string{"--database-url", "postgres://x", "--max-attempts", "0"}, "--max-attempts"},
		{[]string{"--database-url", "postgres://x", "--rate-per-hour", "-1"}, "must not be negative"},
		{[]string{}, "--database-url"},
		{[]string{"--store", "sqlite"}, "--store"},
		// 17 characters: the text with the longest verification link would take three segments.
		{[]string{"--store", "memory", "--sms-signature", "ICP备案" + strings.Repeat("号", 12)}, "shorten the signature"},
		{[]string{"--database-url", "postgres://x"}, `--seal-keys (SEAL_KEYS) is required with --store=postgres`},
		{[]string{"--database-url", "postgres://x", "--seal-keys", "s1:abcd"}, "want exactly 32"},
		{[]string{"--store", "memory", "--seal-keys", "s1"}, "want kid:hexkey"},
		{[]string{"--database-url", "postgres://x", "--sms-provider", "webhook", "--webhook-url", "http://gw/sms",
			"--seal-keys", "s1:" + strings.Repeat("7", 64)}, "seal key is a placeholder"},
	} {
		err := server.Run(context.Background(), tc.args)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("Run(%v) = %v, want an error about %s", tc.args, err, tc.want)
		}
	}
}

// TestRunEndToEnd starts the whole service on PostgreSQL with the console provider (development
// mode) and checks that a message is stored and sent by the background dispatcher, and that the API
// still shows its text afterwards, as the CLI needs; the text kept is sealed with --seal-keys.
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
	client := run(t, "--insecure-dev", "--database-url", pgtest.URL(), "--database-schema", schema,
		"--seal-keys", "s1:"+strings.Repeat("3c", 32))
	m := sendAndWait(t, client)
	if m.GetProvider() != "console" || m.GetRedacted() || !strings.Contains(m.GetBody(), "123456") {
		t.Fatalf("sent message = %v", m)
	}
	pool, err := pg.Connect(context.Background(), zap.NewNop(), pgtest.URL(), schema, time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer pool.Close()
	var sealed []byte
	var kid string
	if err := pool.QueryRow(context.Background(), `SELECT sealed_text, key_id FROM messages WHERE message_id = $1`,
		m.GetMessageId()).Scan(&sealed, &kid); err != nil {
		t.Fatal(err)
	}
	if kid != "s1" || len(sealed) == 0 || strings.Contains(string(sealed), "123456") {
		t.Fatalf("the kept text at rest: key %q, %d bytes, code in the clear %v; want it sealed with s1",
			kid, len(sealed), strings.Contains(string(sealed), "123456"))
	}
}

// TestRunMemory starts the service with --store=memory (no database) and the webhook provider: the
// message is sent to the gateway, and no response carries its text.
func TestRunMemory(t *testing.T) {
	var posts atomic.Int32
	gateway := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		posts.Add(1)
		w.WriteHeader(http.StatusOK)
	}))
	t.Cleanup(gateway.Close)
	client := run(t, "--store", "memory", "--sms-provider", "webhook", "--webhook-url", gateway.URL)
	m := sendAndWait(t, client)
	if m.GetProvider() != "webhook" || !m.GetRedacted() || m.GetBody() != "" || posts.Load() != 1 {
		t.Fatalf("sent message = %v, gateway posts %d", m, posts.Load())
	}
}

// TestRunMemoryBatch: with --webhook-batch-url the message goes to the gateway's batch endpoint
// (and nothing to the single one), and is SENT once the gateway's result accepts it.
func TestRunMemoryBatch(t *testing.T) {
	var single, batches atomic.Int32
	gateway := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/batch" {
			single.Add(1)
			w.WriteHeader(http.StatusOK)
			return
		}
		batches.Add(1)
		var req struct {
			Messages []struct {
				MessageID string `json:"message_id"`
			} `json:"messages"`
		}
		if err := json.NewDecoder(r.Body).Decode(&req); err != nil {
			http.Error(w, "bad request", http.StatusBadRequest)
			return
		}
		type result struct {
			MessageID string `json:"message_id"`
			Accepted  bool   `json:"accepted"`
		}
		var res struct {
			Results []result `json:"results"`
		}
		for _, m := range req.Messages {
			res.Results = append(res.Results, result{MessageID: m.MessageID, Accepted: true})
		}
		_ = json.NewEncoder(w).Encode(res)
	}))
	t.Cleanup(gateway.Close)
	client := run(t, "--store", "memory", "--sms-provider", "webhook", "--webhook-url", gateway.URL+"/sms",
		"--webhook-batch-url", gateway.URL+"/batch", "--webhook-batch-max", "50")
	m := sendAndWait(t, client)
	if m.GetProvider() != "webhook" || !m.GetRedacted() || batches.Load() != 1 || single.Load() != 0 {
		t.Fatalf("sent message = %v, gateway batch posts %d, single posts %d", m, batches.Load(), single.Load())
	}
}

// run starts server.Run with args on a free port until the test ends and returns a client.
func run(t *testing.T, args ...string) smsv1.SmsDispatchServiceClient {
	t.Helper()
	addr := rpctest.FreeAddr(t)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		done <- server.Run(ctx, append([]string{"--grpc-addr", addr, "--log-level", "error", "--shutdown-timeout", "2s"}, args...))
	}()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run: %v", err)
		}
	})
	return smsv1.NewSmsDispatchServiceClient(rpctest.Dial(t, addr))
}

// sendAndWait sends one message (retrying until the server is up) and waits until it is SENT.
func sendAndWait(t *testing.T, client smsv1.SmsDispatchServiceClient) *smsv1.Message {
	t.Helper()
	req := &smsv1.SendMessageRequest{MessageId: "vc-e2e-1", Phone: "13812345678", Template: smsv1.Template_TEMPLATE_VERIFICATION_CODE,
		Params: map[string]string{"code": "123456"}, ExpireTime: timestamppb.New(time.Now().Add(time.Hour)), OrderId: "order-e2e"}
	deadline := time.Now().Add(20 * time.Second)
	for {
		callCtx, c := context.WithTimeout(context.Background(), time.Second)
		_, err := client.SendMessage(callCtx, req)
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
			return m
		}
		if time.Now().After(deadline) {
			t.Fatalf("message not sent: %v", resp.GetMessage())
		}
		time.Sleep(20 * time.Millisecond)
	}
}
