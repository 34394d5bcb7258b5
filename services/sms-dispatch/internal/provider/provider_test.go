package provider

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

var msg = Message{ID: "vc-s1-v1-1", Phone: "+8613812345678", Text: "【ICP备案】您的短信核验码为123456", Sender: "12381"}

func TestWebhookAccepted(t *testing.T) {
	var got webhookBody
	var hdr http.Header
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hdr = r.Header.Clone()
		if err := json.NewDecoder(r.Body).Decode(&got); err != nil {
			t.Errorf("decode: %v", err)
		}
		w.WriteHeader(http.StatusAccepted)
	}))
	defer srv.Close()
	w := NewWebhookConns(srv.URL, "s3cret", time.Second, 2)
	if err := w.Send(context.Background(), msg); err != nil {
		t.Fatalf("Send: %v", err)
	}
	if got != (webhookBody{MessageID: msg.ID, Phone: msg.Phone, Text: msg.Text, Sender: msg.Sender}) {
		t.Fatalf("body = %+v", got)
	}
	if hdr.Get("Idempotency-Key") != msg.ID || hdr.Get("Content-Type") != "application/json" || hdr.Get("Authorization") != "Bearer s3cret" {
		t.Fatalf("headers = %v", hdr)
	}
}

func TestWebhookNoTokenNoAuthorization(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Authorization") != "" {
			t.Errorf("unexpected Authorization header")
		}
	}))
	defer srv.Close()
	if err := NewWebhookConns(srv.URL, "", time.Second, 2).Send(context.Background(), msg); err != nil {
		t.Fatal(err)
	}
}

// TestWebhookRetriedWithSameKey: a 500 is an error (the dispatcher retries), and the retry carries
// the same Idempotency-Key so the gateway can dedup.
func TestWebhookRetriedWithSameKey(t *testing.T) {
	var calls atomic.Int32
	var keys []string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		keys = append(keys, r.Header.Get("Idempotency-Key"))
		if calls.Add(1) == 1 {
			w.WriteHeader(http.StatusInternalServerError)
			_, _ = w.Write([]byte("gateway secret detail +8613812345678"))
			return
		}
		w.WriteHeader(http.StatusOK)
	}))
	defer srv.Close()
	w := NewWebhookConns(srv.URL, "", time.Second, 2)
	err := w.Send(context.Background(), msg)
	if err == nil || !strings.Contains(err.Error(), "500") {
		t.Fatalf("first Send = %v, want an error naming HTTP 500", err)
	}
	for _, leak := range []string{"secret detail", "13812345678", "123456"} {
		if strings.Contains(err.Error(), leak) {
			t.Fatalf("error %q leaks %q", err, leak)
		}
	}
	if err := w.Send(context.Background(), msg); err != nil {
		t.Fatalf("retry: %v", err)
	}
	if len(keys) != 2 || keys[0] != msg.ID || keys[1] != msg.ID {
		t.Fatalf("idempotency keys = %v", keys)
	}
}

func TestWebhookTimeoutIsRetryable(t *testing.T) {
	release := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-release:
		case <-r.Context().Done():
		}
	}))
	defer srv.Close()
	defer close(release)
	err := NewWebhookConns(srv.URL, "", 50*time.Millisecond, 2).Send(context.Background(), msg)
	if err == nil {
		t.Fatal("Send succeeded against a hanging gateway")
	}
	if strings.Contains(err.Error(), msg.Phone) {
		t.Fatalf("error leaks the phone: %v", err)
	}
}

func TestWebhookTransportError(t *testing.T) {
	srv := httptest.NewServer(http.NotFoundHandler())
	url := srv.URL
	srv.Close()
	if err := NewWebhookConns(url, "", time.Second, 2).Send(context.Background(), msg); err == nil {
		t.Fatal("Send to a closed server succeeded")
	}
}

func TestConsole(t *testing.T) {
	var buf bytes.Buffer
	c := NewConsole(&buf)
	if err := c.Send(context.Background(), msg); err != nil {
		t.Fatal(err)
	}
	want := "DEV SMS to 138****5678 [vc-s1-v1-1]: 【ICP备案】您的短信核验码为123456\n"
	if buf.String() != want || c.Name() != "console" {
		t.Fatalf("console wrote %q", buf.String())
	}
}

func TestWebhookKeepsIdleConnsForEveryWorker(t *testing.T) {
	w := NewWebhookConns("http://127.0.0.1:1/sms", "", time.Second, 64)
	tr, ok := w.Client.Transport.(*http.Transport)
	if !ok || tr.MaxIdleConnsPerHost != 64 || tr.MaxIdleConns < 64 || tr.DisableKeepAlives {
		t.Fatalf("transport = %+v", w.Client.Transport)
	}
}
