package main

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"testing"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	verificationv1 "github.com/icpverify/icpverify/pkg/gen/icp/verification/v1"
)

// The REST client sends the VerifyRequest under its JSON names and judges the edge's answers as the
// gRPC phase judges the service's: 200 passes, a google.rpc.Status body is its status error.
func TestRestVerifier(t *testing.T) {
	var got map[string]string
	answer := func(w http.ResponseWriter) {}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodPost || r.URL.Path != "/v1/verify" || r.Header.Get("Content-Type") != "application/json" {
			t.Errorf("request %s %s %q", r.Method, r.URL.Path, r.Header.Get("Content-Type"))
		}
		b, _ := io.ReadAll(r.Body)
		got = nil
		if err := json.Unmarshal(b, &got); err != nil {
			t.Errorf("body %s: %v", b, err)
		}
		answer(w)
	}))
	defer srv.Close()
	rv := restVerifier{url: srv.URL + "/v1/verify", client: srv.Client()}
	req := &verificationv1.VerifyRequest{Phone: "+8613500000001", Code: "123456", IdTail: "00001X"}

	answer = func(w http.ResponseWriter) { _, _ = io.WriteString(w, `{"state":"VERIFIER_STATE_VERIFIED"}`) }
	if err := rv.verify(context.Background(), 0, req); err != nil {
		t.Fatalf("200: %v", err)
	}
	want := map[string]string{"phone": "+8613500000001", "code": "123456", "idTail": "00001X"}
	if len(got) != len(want) || got["phone"] != want["phone"] || got["code"] != want["code"] || got["idTail"] != want["idTail"] {
		t.Fatalf("body %v, want %v", got, want)
	}

	answer = func(w http.ResponseWriter) {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusNotFound)
		_, _ = io.WriteString(w, `{"code":5,"message":"no pending verification matches","details":[`+
			`{"@type":"type.googleapis.com/google.rpc.ErrorInfo","reason":"VERIFICATION_NOT_MATCHED","domain":"verification.icp"}]}`)
	}
	err := rv.verify(context.Background(), 0, req)
	if status.Code(err) != codes.NotFound || rpcReason(err) != notMatched {
		t.Fatalf("404: %v (code %s, reason %q), want NotFound %s", err, status.Code(err), rpcReason(err), notMatched)
	}

	answer = func(w http.ResponseWriter) {
		w.WriteHeader(http.StatusBadGateway)
		_, _ = io.WriteString(w, "<html>bad gateway</html>")
	}
	if err := rv.verify(context.Background(), 0, req); err == nil || status.Code(err) == codes.NotFound {
		t.Fatalf("502 without a status body: %v, want an unexpected error", err)
	}
}
