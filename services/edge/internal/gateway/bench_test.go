package gateway

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	filingv1 "github.com/icpverify/icpverify/pkg/gen/icp/filing/v1"
	verificationv1 "github.com/icpverify/icpverify/pkg/gen/icp/verification/v1"
	"github.com/icpverify/icpverify/pkg/rpc"
	"github.com/icpverify/icpverify/pkg/rpc/rpctest"
)

// The edge's own cost of POST /v1/verify (a pass and a mismatch), the hot route of a portal:
// decode, the gRPC call to a fake verification on loopback, the answer or the google.rpc.Status.
// go test -bench=Verify -benchmem ./internal/gateway
func BenchmarkVerify(b *testing.B) {
	f := &fakeFiling{}
	conn := rpctest.Serve(b, func(s *rpc.Server) {
		filingv1.RegisterFilingServiceServer(s.Public(), f)
		verificationv1.RegisterVerificationServiceServer(s.Public(), &fakeVerification{filing: f})
	})
	h, err := New(b.Context(), Options{Filing: conn, Verification: conn, MaxBodyBytes: 64 << 10, RequestTimeout: 5 * time.Second})
	if err != nil {
		b.Fatal(err)
	}
	for name, body := range map[string]string{
		"pass":     `{"phone":"+8613500000001","code":"123456","idTail":"007919"}`,
		"mismatch": `{"phone":"+8613500000001","code":"000000","idTail":"007919"}`,
	} {
		b.Run(name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				req := httptest.NewRequest(http.MethodPost, "/v1/verify", strings.NewReader(body))
				req.Header.Set("Content-Type", "application/json")
				w := httptest.NewRecorder()
				h.ServeHTTP(w, req)
				if w.Code != http.StatusOK && w.Code != http.StatusNotFound {
					b.Fatalf("%d %s", w.Code, w.Body)
				}
			}
		})
	}
}
