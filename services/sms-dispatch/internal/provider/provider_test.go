package provider

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"
	"unicode/utf8"
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
	if _, err := w.Send(context.Background(), msg); err != nil {
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
	if _, err := NewWebhookConns(srv.URL, "", time.Second, 2).Send(context.Background(), msg); err != nil {
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
	_, err := w.Send(context.Background(), msg)
	if err == nil || !strings.Contains(err.Error(), "500") {
		t.Fatalf("first Send = %v, want an error naming HTTP 500", err)
	}
	for _, leak := range []string{"secret detail", "13812345678", "123456"} {
		if strings.Contains(err.Error(), leak) {
			t.Fatalf("error %q leaks %q", err, leak)
		}
	}
	if _, err := w.Send(context.Background(), msg); err != nil {
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
	_, err := NewWebhookConns(srv.URL, "", 50*time.Millisecond, 2).Send(context.Background(), msg)
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
	if _, err := NewWebhookConns(url, "", time.Second, 2).Send(context.Background(), msg); err == nil {
		t.Fatal("Send to a closed server succeeded")
	}
}

func TestConsole(t *testing.T) {
	var buf bytes.Buffer
	c := NewConsole(&buf)
	if _, err := c.Send(context.Background(), msg); err != nil {
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

var batchMsgs = []Message{
	{ID: "vc-b-1", Phone: "+8613800000001", Text: "【ICP备案】您的短信核验码为111111", Sender: "12381"},
	{ID: "vc-b-2", Phone: "+8613800000002", Text: "【ICP备案】您的短信核验码为222222", Sender: "12381"},
	{ID: "vc-b-3", Phone: "+8613800000003", Text: "【ICP备案】您的短信核验码为333333", Sender: "12381"},
}

// batchGateway serves the batch endpoint with answer and records the request.
type batchGateway struct {
	srv   *httptest.Server
	calls atomic.Int32
	got   batchRequest
	hdr   http.Header
	path  string
}

func newBatchGateway(t *testing.T, answer func(w http.ResponseWriter, req batchRequest)) *batchGateway {
	t.Helper()
	g := &batchGateway{}
	g.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		g.calls.Add(1)
		g.hdr, g.path = r.Header.Clone(), r.URL.Path
		if err := json.NewDecoder(r.Body).Decode(&g.got); err != nil {
			t.Errorf("decode: %v", err)
		}
		answer(w, g.got)
	}))
	t.Cleanup(g.srv.Close)
	return g
}

func (g *batchGateway) provider(token string) *WebhookBatch {
	return NewWebhookConns(g.srv.URL+"/sms", token, time.Second, 2).WithBatch(g.srv.URL+"/sms/batch", 10)
}

func results(w http.ResponseWriter, rs ...batchResult) {
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(batchResponse{Results: rs})
}

// noLeak fails when an error names a phone, a text, a code or the response body.
func noLeak(t *testing.T, outs []Outcome, body ...string) {
	t.Helper()
	for _, o := range outs {
		err := o.Err
		if err == nil {
			continue
		}
		leaks := append([]string{"13800000001", "13800000002", "13800000003", "111111", "222222", "333333", "核验码"}, body...)
		for _, leak := range leaks {
			if strings.Contains(err.Error(), leak) {
				t.Errorf("error %q leaks %q", err, leak)
			}
		}
	}
}

func TestWebhookBatchAllAccepted(t *testing.T) {
	g := newBatchGateway(t, func(w http.ResponseWriter, req batchRequest) {
		var rs []batchResult
		for i := len(req.Messages) - 1; i >= 0; i-- { // any order
			rs = append(rs, batchResult{MessageID: req.Messages[i].MessageID, Accepted: true})
		}
		results(w, rs...)
	})
	p := g.provider("s3cret")
	var _ BatchProvider = p
	errs := p.SendBatch(context.Background(), batchMsgs)
	if len(errs) != 3 || errs[0].Err != nil || errs[1].Err != nil || errs[2].Err != nil {
		t.Fatalf("SendBatch = %v", errs)
	}
	if g.calls.Load() != 1 || g.path != "/sms/batch" {
		t.Fatalf("%d calls to %s, want one to /sms/batch", g.calls.Load(), g.path)
	}
	want := []webhookBody{
		{MessageID: "vc-b-1", Phone: "+8613800000001", Text: batchMsgs[0].Text, Sender: "12381"},
		{MessageID: "vc-b-2", Phone: "+8613800000002", Text: batchMsgs[1].Text, Sender: "12381"},
		{MessageID: "vc-b-3", Phone: "+8613800000003", Text: batchMsgs[2].Text, Sender: "12381"},
	}
	if !slices.Equal(g.got.Messages, want) {
		t.Fatalf("messages = %+v", g.got.Messages)
	}
	if g.hdr.Get("Content-Type") != "application/json" || g.hdr.Get("Authorization") != "Bearer s3cret" {
		t.Fatalf("headers = %v", g.hdr)
	}
	if p.Name() != "webhook" || p.MaxBatch() != 10 {
		t.Fatalf("Name %q, MaxBatch %d", p.Name(), p.MaxBatch())
	}
	if (&WebhookBatch{}).MaxBatch() != DefaultBatchMax {
		t.Fatal("MaxBatch without Max is not the default")
	}
}

func TestWebhookBatchNothingToSend(t *testing.T) {
	g := newBatchGateway(t, func(w http.ResponseWriter, _ batchRequest) { results(w) })
	if errs := g.provider("").SendBatch(context.Background(), nil); len(errs) != 0 || g.calls.Load() != 0 {
		t.Fatalf("SendBatch(nil) = %v after %d calls", errs, g.calls.Load())
	}
}

// A refused message and one the answer leaves out are not accepted (retry); the others are. The
// gateway's own error is kept, cut short, with digit runs masked.
func TestWebhookBatchPartial(t *testing.T) {
	long := strings.Repeat("流控", 100)
	g := newBatchGateway(t, func(w http.ResponseWriter, _ batchRequest) {
		results(w,
			batchResult{MessageID: "vc-b-1", Accepted: true},
			batchResult{MessageID: "vc-b-2", Accepted: false, Error: "isv.BUSINESS_LIMIT_CONTROL +8613800000002 code 222222\n" + long},
			batchResult{MessageID: "vc-unknown", Accepted: true}, // not in the request: ignored
		)
	})
	errs := g.provider("").SendBatch(context.Background(), batchMsgs)
	if len(errs) != 3 || errs[0].Err != nil || errs[1].Err == nil || errs[2].Err == nil {
		t.Fatalf("SendBatch = %v, want [nil refused missing]", errs)
	}
	if !strings.Contains(errs[1].Err.Error(), "isv.BUSINESS_LIMIT_CONTROL +# code #") || len(errs[1].Err.Error()) > 300 ||
		strings.Contains(errs[1].Err.Error(), "\n") {
		t.Errorf("refusal = %q, want the gateway's error masked and short", errs[1].Err)
	}
	if !utf8.ValidString(errs[1].Err.Error()) {
		t.Errorf("refusal %q is not valid UTF-8", errs[1].Err)
	}
	if !strings.Contains(errs[2].Err.Error(), "without a result") {
		t.Errorf("missing = %q", errs[2].Err)
	}
	noLeak(t, errs)
}

// A message listed twice is accepted only if no entry refuses it.
func TestWebhookBatchConflictingResults(t *testing.T) {
	g := newBatchGateway(t, func(w http.ResponseWriter, _ batchRequest) {
		results(w,
			batchResult{MessageID: "vc-b-1", Accepted: false},
			batchResult{MessageID: "vc-b-1", Accepted: true},
			batchResult{MessageID: "vc-b-2", Accepted: true},
			batchResult{MessageID: "vc-b-3", Accepted: true},
			batchResult{MessageID: "vc-b-3", Accepted: false, Error: "dup"},
		)
	})
	errs := g.provider("").SendBatch(context.Background(), batchMsgs)
	if errs[0].Err == nil || errs[1].Err != nil || errs[2].Err == nil {
		t.Fatalf("SendBatch = %v, want [refused nil refused]", errs)
	}
}

// A non-2xx answer, an answer that does not parse, a timeout and a transport error leave every
// message not accepted, with errors that name the status or cause, never the body, phone or text.
func TestWebhookBatchWholeBatchNotAccepted(t *testing.T) {
	const secret = "gateway secret detail"
	for _, tc := range []struct {
		name   string
		answer func(w http.ResponseWriter)
		want   string
	}{
		{"503", func(w http.ResponseWriter) { http.Error(w, secret+" +8613800000001", http.StatusServiceUnavailable) }, "HTTP 503"},
		{"400", func(w http.ResponseWriter) { http.Error(w, secret, http.StatusBadRequest) }, "HTTP 400"},
		{"not JSON", func(w http.ResponseWriter) { _, _ = w.Write([]byte(secret + " 13800000001")) }, "not a batch result"},
		{"wrong shape", func(w http.ResponseWriter) { _, _ = w.Write([]byte(`{"results":{"vc-b-1":"` + secret + `"}}`)) }, "not a batch result"},
		{"empty", func(w http.ResponseWriter) { w.WriteHeader(http.StatusAccepted) }, "not a batch result"},
		{"no results", func(w http.ResponseWriter) { _, _ = w.Write([]byte(`{"ok":true}`)) }, "without a result"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			g := newBatchGateway(t, func(w http.ResponseWriter, _ batchRequest) { tc.answer(w) })
			errs := g.provider("").SendBatch(context.Background(), batchMsgs)
			if len(errs) != 3 {
				t.Fatalf("%d errors for 3 messages", len(errs))
			}
			for i, o := range errs {
				err := o.Err
				if err == nil || !strings.Contains(err.Error(), tc.want) {
					t.Errorf("message %d: %v, want an error naming %q", i, err, tc.want)
				}
			}
			noLeak(t, errs, secret)
		})
	}
}

func TestWebhookBatchTimeoutAndTransportError(t *testing.T) {
	release := make(chan struct{})
	hang := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-release:
		case <-r.Context().Done():
		}
	}))
	defer hang.Close()
	defer close(release)
	errs := NewWebhookConns(hang.URL, "", 50*time.Millisecond, 2).WithBatch(hang.URL+"/batch", 10).SendBatch(context.Background(), batchMsgs)
	for i, o := range errs {
		err := o.Err
		if err == nil {
			t.Fatalf("message %d accepted by a hanging gateway", i)
		}
	}
	noLeak(t, errs)

	closed := httptest.NewServer(http.NotFoundHandler())
	url := closed.URL
	closed.Close()
	errs = NewWebhookConns(url, "", time.Second, 2).WithBatch(url+"/batch?key=s3cret", 10).SendBatch(context.Background(), batchMsgs)
	for i, o := range errs {
		err := o.Err
		if err == nil {
			t.Fatalf("message %d accepted by a closed server", i)
		}
		if strings.Contains(err.Error(), "s3cret") {
			t.Fatalf("error %q repeats the URL", err)
		}
	}
	noLeak(t, errs)
}

func TestGatewayError(t *testing.T) {
	for in, want := range map[string]string{
		"isv.MOBILE_NUMBER_ILLEGAL":    "isv.MOBILE_NUMBER_ILLEGAL",
		"号码 13800000001 触发天级流控":        "号码 # 触发天级流控",
		"code １２３４５６ E12":              "code # E12",
		"a\x00b\nc\xff":                "a b c?",
		strings.Repeat("é", 100) + "x": strings.Repeat("é", 60) + "…",
	} {
		if got := gatewayError(in); got != want {
			t.Errorf("gatewayError(%q) = %q, want %q", in, got, want)
		}
	}
}

// A webhook gateway may answer its own id of the message; an answer without one is still acceptance.
func TestWebhookProviderID(t *testing.T) {
	for body, want := range map[string]string{`{"provider_id":"gw-42"}`: "gw-42", ``: "", `not json`: "",
		`{"provider_id":"` + strings.Repeat("x", 200) + `"}`: ""} {
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { _, _ = io.WriteString(w, body) }))
		acc, err := NewWebhookConns(srv.URL, "", time.Second, 2).Send(context.Background(), msg)
		srv.Close()
		got := ""
		if len(acc.ProviderIDs) == 1 {
			got = acc.ProviderIDs[0]
		}
		if err != nil || got != want || len(acc.ProviderIDs) > 1 {
			t.Errorf("answer %.20q: %v, %v; want provider id %q", body, acc, err, want)
		}
	}
}
