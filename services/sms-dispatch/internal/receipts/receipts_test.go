package receipts_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"
	"time"

	"go.uber.org/zap"

	"github.com/icpverify/icpverify/pkg/clock"
	"github.com/icpverify/icpverify/services/sms-dispatch/internal/domain"
	"github.com/icpverify/icpverify/services/sms-dispatch/internal/receipts"
	"github.com/icpverify/icpverify/services/sms-dispatch/internal/store/memstore"
	"github.com/icpverify/icpverify/services/sms-dispatch/providertest"
)

const token = "receipt-token-0123456789"

var t0 = time.Date(2026, 11, 26, 2, 0, 0, 0, time.UTC)

// sent stores message id as SENT by provider with the provider id pid.
func sent(t *testing.T, st *memstore.Store, id, provider, pid string) {
	t.Helper()
	ctx := context.Background()
	m, err := domain.NewMessage(domain.SendInput{MessageID: id, Phone: "13812345678", Template: domain.TemplateVerificationCode,
		Params: map[string]string{"code": "123456"}, ExpireAt: t0.Add(time.Hour), OrderID: "o-" + id, Sequence: 1}, "ICP备案", t0)
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := st.Create(ctx, m); err != nil {
		t.Fatal(err)
	}
	claimed, err := st.Claim(ctx, t0, time.Minute, 1)
	if err != nil || len(claimed) != 1 {
		t.Fatalf("claim %v %v", claimed, err)
	}
	claimed[0].ProviderIDs = []string{pid}
	if ok, err := st.MarkSent(ctx, claimed[0], provider, t0, false); !ok || err != nil {
		t.Fatalf("MarkSent %v %v", ok, err)
	}
}

func setup(t *testing.T) (*memstore.Store, *httptest.Server) {
	st := memstore.New(clock.NewFake(t0))
	srv := httptest.NewServer(&receipts.Handler{Store: st, Token: token, Clock: clock.NewFake(t0.Add(time.Minute)), Log: zap.NewNop()})
	t.Cleanup(srv.Close)
	return st, srv
}

func state(t *testing.T, st *memstore.Store, id string) domain.Message {
	t.Helper()
	m, err := st.Get(context.Background(), id)
	if err != nil {
		t.Fatal(err)
	}
	return m
}

func post(t *testing.T, url, auth, body string) int {
	t.Helper()
	req, _ := http.NewRequest(http.MethodPost, url, strings.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	if auth != "" {
		req.Header.Set("Authorization", auth)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	return resp.StatusCode
}

func TestAliyunSmsReport(t *testing.T) {
	st, srv := setup(t)
	sent(t, st, "a", "aliyun", "900^0")
	sent(t, st, "b", "aliyun", "901^0")
	url := srv.URL + receipts.AliyunPath + token
	ok := providertest.Accepted{MessageID: "a", Phone: "+8613812345678", ProviderID: "900^0"}.AliyunReport(true, "")
	bad := providertest.Accepted{MessageID: "b", Phone: "+8613812345678", ProviderID: "901^0"}.AliyunReport(false, "MK:0001")
	unknown := providertest.Accepted{MessageID: "nobody", Phone: "+8613812345678", ProviderID: "999^0"}.AliyunReport(true, "")
	for range 2 { // a repeated push changes nothing twice
		if err := providertest.PushAliyun(url, ok, bad, unknown); err != nil {
			t.Fatal(err)
		}
	}
	if a := state(t, st, "a"); a.State != domain.StateDelivered || a.DeliveryCode != "DELIVERED" || !a.ReceiptAt.Equal(t0.Add(time.Minute)) {
		t.Fatalf("a = %+v", a)
	}
	if b := state(t, st, "b"); b.State != domain.StateUndelivered || b.DeliveryCode != "MK:0001" {
		t.Fatalf("b = %+v", b)
	}
	if n, _ := st.Outbox().Pending(context.Background(), 100); len(n) != 2 {
		t.Fatalf("%d reports, want 2", len(n))
	}
	badAuth(t, srv.URL+receipts.AliyunPath, http.StatusForbidden, "")
}

func TestTencentStatusCallback(t *testing.T) {
	st, srv := setup(t)
	sent(t, st, "a", "tencent", "2028:1")
	sent(t, st, "b", "tencent", "2028:2")
	url := srv.URL + receipts.TencentPath + token
	ok := providertest.Accepted{Phone: "+8613812345678", ProviderID: "2028:1"}.TencentReport(true, "")
	bad := providertest.Accepted{Phone: "+8613812345678", ProviderID: "2028:2"}.TencentReport(false, "UNDELIV")
	if err := providertest.PushTencent(url, ok, bad); err != nil {
		t.Fatal(err)
	}
	if a := state(t, st, "a"); a.State != domain.StateDelivered || a.DeliveryCode != "DELIVRD" {
		t.Fatalf("a = %+v", a)
	}
	if b := state(t, st, "b"); b.State != domain.StateUndelivered || b.DeliveryCode != "UNDELIV" {
		t.Fatalf("b = %+v", b)
	}
	// A receipt for a message of another provider is not applied.
	if err := providertest.PushTencent(url, providertest.Accepted{ProviderID: "900^0"}.TencentReport(true, "")); err != nil {
		t.Fatal(err)
	}
	badAuth(t, srv.URL+receipts.TencentPath, http.StatusForbidden, "")
}

func TestWebhookReceipt(t *testing.T) {
	st, srv := setup(t)
	sent(t, st, "a", "webhook", "gw-1")
	sent(t, st, "b", "webhook", "gw-2")
	url := srv.URL + receipts.WebhookPath
	if c := post(t, url, "Bearer "+token, `{"message_id":"a","status":"delivered","code":"DELIVRD","time":"2026-11-26T10:01:00+08:00"}`); c != 200 {
		t.Fatalf("webhook by message id: %d", c)
	}
	if c := post(t, url, "Bearer "+token, `{"provider_id":"gw-2","status":"undelivered","code":"UNDELIV"}`); c != 200 {
		t.Fatalf("webhook by provider id: %d", c)
	}
	if a := state(t, st, "a"); a.State != domain.StateDelivered {
		t.Fatalf("a = %+v", a)
	}
	if b := state(t, st, "b"); b.State != domain.StateUndelivered || b.DeliveryCode != "UNDELIV" {
		t.Fatalf("b = %+v", b)
	}
	for _, auth := range []string{"", "Bearer wrong", token} {
		if c := post(t, url, auth, `{"message_id":"a","status":"undelivered"}`); c != http.StatusUnauthorized {
			t.Fatalf("auth %q: %d, want 401", auth, c)
		}
	}
	for _, body := range []string{`{`, `{"message_id":"a","status":"maybe"}`, `{"status":"delivered"}`,
		`{"message_id":"` + strings.Repeat("x", 200) + `","status":"delivered"}`} {
		if c := post(t, url, "Bearer "+token, body); c != http.StatusBadRequest {
			t.Fatalf("body %.30q: %d, want 400", body, c)
		}
	}
	if a := state(t, st, "a"); a.State != domain.StateDelivered {
		t.Fatalf("a bad request changed a: %+v", a)
	}
}

// badAuth: a wrong or missing token is refused; bad JSON is 400 and an oversized body 413.
func badAuth(t *testing.T, prefix string, want int, _ string) {
	t.Helper()
	for _, tok := range []string{"", "wrong", token + "x"} {
		if c := post(t, prefix+tok, "", `[]`); c != want {
			t.Fatalf("token %q: %d, want %d", tok, c, want)
		}
	}
	for _, body := range []string{`{`, `{"not":"an array"}`, `[{"biz_id":""}]`, `[{"sid":"1","report_status":"MAYBE"}]`} {
		if c := post(t, prefix+token, "", body); c != http.StatusBadRequest {
			t.Fatalf("body %q: %d, want 400", body, c)
		}
	}
	big := "[" + strings.Repeat(`{"biz_id":"1","success":true},`, receipts.MaxBody/25) + `{"biz_id":"1","success":true}]`
	resp, err := http.Post(prefix+token, "application/json", bytes.NewReader([]byte(big)))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusRequestEntityTooLarge {
		t.Fatalf("oversized body: %d, want 413", resp.StatusCode)
	}
	if c := post(t, prefix[:strings.LastIndex(prefix[:len(prefix)-1], "/")+1]+"nothing/"+token, "", `[]`); c != http.StatusNotFound {
		t.Fatalf("unknown path: %d", c)
	}
}

// batchLog stands in for the store's use case: it keeps the size of each batch it is handed and,
// while down, refuses them.
type batchLog struct {
	st    *memstore.Store
	sizes []int
	down  bool
}

func (b *batchLog) RecordReceipts(ctx context.Context, rs []domain.Receipt) ([]domain.ReceiptOutcome, error) {
	b.sizes = append(b.sizes, len(rs))
	if b.down {
		return nil, errors.New("store down")
	}
	return b.st.RecordReceipts(ctx, rs)
}

// A push's receipts are one batch: a store that refuses it gets the push answered 503 (the provider
// pushes again) and nothing of it is recorded; pushed again, all of it is, in one batch.
func TestPushIsOneBatch(t *testing.T) {
	st := memstore.New(clock.NewFake(t0))
	sent(t, st, "a", "aliyun", "900^0")
	sent(t, st, "b", "aliyun", "901^0")
	rec := &batchLog{st: st, down: true}
	srv := httptest.NewServer(&receipts.Handler{Store: rec, Token: token, Clock: clock.NewFake(t0.Add(time.Minute)), Log: zap.NewNop()})
	t.Cleanup(srv.Close)
	url := srv.URL + receipts.AliyunPath + token
	body, err := json.Marshal([]providertest.AliyunReport{
		providertest.Accepted{MessageID: "a", Phone: "+8613812345678", ProviderID: "900^0"}.AliyunReport(true, ""),
		providertest.Accepted{MessageID: "b", Phone: "+8613812345678", ProviderID: "901^0"}.AliyunReport(true, ""),
	})
	if err != nil {
		t.Fatal(err)
	}
	if code := post(t, url, "", string(body)); code != http.StatusServiceUnavailable {
		t.Fatalf("push to a store that is down: %d, want 503", code)
	}
	for _, id := range []string{"a", "b"} {
		if m := state(t, st, id); m.State != domain.StateSent {
			t.Fatalf("%s after a refused push = %+v", id, m)
		}
	}
	rec.down = false
	if code := post(t, url, "", string(body)); code != http.StatusOK {
		t.Fatalf("push again: %d", code)
	}
	for _, id := range []string{"a", "b"} {
		if m := state(t, st, id); m.State != domain.StateDelivered {
			t.Fatalf("%s after the push = %+v", id, m)
		}
	}
	if !slices.Equal(rec.sizes, []int{2, 2}) {
		t.Fatalf("batches %v, want the push's two receipts in one batch, twice", rec.sizes)
	}
}
