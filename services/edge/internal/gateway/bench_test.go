package gateway

import (
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"syscall"
	"testing"
	"time"

	filingv1 "github.com/icpverify/icpverify/pkg/gen/icp/filing/v1"
	verificationv1 "github.com/icpverify/icpverify/pkg/gen/icp/verification/v1"
	"github.com/icpverify/icpverify/pkg/rpc"
	"github.com/icpverify/icpverify/pkg/rpc/rpctest"
)

// The cost of POST /v1/verify (a pass and a mismatch), the hot route of a portal, over HTTP/1.1
// keep-alive from 16 clients: the edge's decode, gRPC call and answer, with a fake verification
// on loopback in the same process. cpu-us/op is the process's CPU time per request (edge, fake
// and client together: a change in the edge shows as the difference), steadier than ns/op on a
// shared machine. go test -run=- -bench=Verify -benchmem ./internal/gateway
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
	srv := httptest.NewServer(h)
	b.Cleanup(srv.Close)
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 16, DisableCompression: true}}
	for _, c := range []struct{ name, body string }{
		{"pass", `{"phone":"+8613500000001","code":"123456","idTail":"007919"}`},
		{"mismatch", `{"phone":"+8613500000001","code":"000000","idTail":"007919"}`},
	} {
		b.Run(c.name, func(b *testing.B) {
			b.ReportAllocs()
			b.SetParallelism(8)
			cpu0 := cpuTime()
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					resp, err := client.Post(srv.URL+"/v1/verify", "application/json", strings.NewReader(c.body))
					if err != nil {
						b.Error(err)
						return
					}
					_, _ = io.Copy(io.Discard, resp.Body)
					resp.Body.Close()
					if resp.StatusCode != http.StatusOK && resp.StatusCode != http.StatusNotFound {
						b.Errorf("HTTP %d", resp.StatusCode)
						return
					}
				}
			})
			b.ReportMetric(float64((cpuTime()-cpu0).Microseconds())/float64(b.N), "cpu-us/op")
		})
	}
}

// cpuTime is the CPU time (user and system) this process has used.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
