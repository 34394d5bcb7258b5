package rpc

import (
	"context"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.uber.org/zap"

	"github.com/icpverify/icpverify/pkg/clock"
	"github.com/icpverify/icpverify/pkg/config"
	"github.com/icpverify/icpverify/pkg/errs"
	pb "github.com/icpverify/icpverify/pkg/gen/icp/verification/v1"
	"github.com/icpverify/icpverify/pkg/observe"
	"github.com/icpverify/icpverify/pkg/outbox"
)

// frontAPI's Verify calls the peer's CancelSession, so one call crosses two services; phone "block"
// waits for release, phone "missing" answers NotFound.
type frontAPI struct {
	pb.UnimplementedVerificationServiceServer
	peer    pb.VerificationInternalServiceClient
	release chan struct{}
	entered chan struct{}
}

func (f *frontAPI) Verify(ctx context.Context, req *pb.VerifyRequest) (*pb.VerifyResponse, error) {
	switch req.GetPhone() {
	case "block":
		close(f.entered)
		<-f.release
		return &pb.VerifyResponse{}, nil
	case "missing":
		return nil, errs.NotFound("VERIFICATION_NOT_MATCHED", "no match")
	}
	if _, err := f.peer.CancelSession(ctx, &pb.CancelSessionRequest{OrderId: "ord_1", Submission: 1}); err != nil {
		return nil, err
	}
	return &pb.VerifyResponse{}, nil
}

func newObserver(t *testing.T, name string, exp sdktrace.SpanExporter) *observe.Observer {
	t.Helper()
	o, err := observe.New(zap.NewNop(), name, observe.Config{AdminAddr: "127.0.0.1:0", Exporter: exp, SampleRatio: 1})
	if err != nil {
		t.Fatal(err)
	}
	return o
}

// startObserved serves srv on a loopback listener until the test ends; it returns the address and a
// stop that shuts the server down and waits for it.
func startObserved(t *testing.T, srv *Server) (addr string, stop func()) {
	t.Helper()
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- srv.ServeListener(ctx, lis, 5*time.Second) }()
	stopped := false
	stop = func() {
		if !stopped {
			stopped = true
			cancel()
			if err := <-done; err != nil {
				t.Error(err)
			}
		}
	}
	t.Cleanup(stop)
	return lis.Addr().String(), stop
}

func get(t *testing.T, url string) (int, string) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(body)
}

func waitAdmin(t *testing.T, o *observe.Observer) string {
	t.Helper()
	for range 200 {
		if a := o.AdminAddr(); a != "" {
			return "http://" + a
		}
		time.Sleep(10 * time.Millisecond)
	}
	t.Fatal("admin listener did not start")
	return ""
}

func TestObservabilityAcrossServices(t *testing.T) {
	exp := tracetest.NewInMemoryExporter()
	obsFront, obsBack, obsClient := newObserver(t, "front", exp), newObserver(t, "back", exp), newObserver(t, "client", exp)

	back, err := NewSecureServer(zap.NewNop(), config.Security{}, WithObserver(obsBack))
	if err != nil {
		t.Fatal(err)
	}
	pb.RegisterVerificationInternalServiceServer(back.Internal(), &testAPI{})
	backAddr, _ := startObserved(t, back)

	d := &Dialer{}
	d.Observe(obsFront)
	backConn, err := d.Dial(backAddr)
	if err != nil {
		t.Fatal(err)
	}
	defer backConn.Close()
	peer := pb.NewVerificationInternalServiceClient(backConn)

	front, err := NewSecureServer(zap.NewNop(), config.Security{}, WithObserver(obsFront))
	if err != nil {
		t.Fatal(err)
	}
	api := &frontAPI{peer: peer, release: make(chan struct{}), entered: make(chan struct{})}
	pb.RegisterVerificationServiceServer(front.Public(), api)
	frontAddr, stopFront := startObserved(t, front)
	admin := waitAdmin(t, obsFront)

	if code, body := get(t, admin+"/healthz"); code != http.StatusOK {
		t.Fatalf("/healthz: %d %s", code, body)
	}
	if code, body := get(t, admin+"/readyz"); code != http.StatusOK {
		t.Fatalf("/readyz while serving: %d %s", code, body)
	}

	cd := &Dialer{}
	cd.Observe(obsClient)
	conn, err := cd.Dial(frontAddr)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	client := pb.NewVerificationServiceClient(conn)
	ctx := context.Background()

	// One call through front to back: four spans (client, front server, front client, back server), one trace.
	exp.Reset()
	if _, err := client.Verify(ctx, &pb.VerifyRequest{Phone: "ok"}); err != nil {
		t.Fatal(err)
	}
	spans := exp.GetSpans()
	if len(spans) != 4 {
		t.Fatalf("%d spans, want 4: %v", len(spans), spanNames(spans))
	}
	for _, s := range spans {
		if s.SpanContext.TraceID() != spans[0].SpanContext.TraceID() {
			t.Fatalf("spans in more than one trace: %v", spanNames(spans))
		}
	}
	services := map[string]bool{}
	for _, s := range spans {
		for _, kv := range s.Resource.Attributes() {
			if kv.Key == "service.name" {
				services[kv.Value.AsString()] = true
			}
		}
	}
	if !services["client"] || !services["front"] || !services["back"] {
		t.Errorf("spans from services %v, want client, front and back", services)
	}

	// The outbox relay delivers in the background: each delivery starts its own trace, which the
	// receiver continues.
	exp.Reset()
	q := outbox.NewMemQueue(nil)
	if err := q.Add(time.Now(), "cancel-session", &pb.CancelSessionRequest{OrderId: "ord_2", Submission: 1}, false); err != nil {
		t.Fatal(err)
	}
	relay := &outbox.Relay{Queue: q, Log: zap.NewNop(), Clock: clock.Real{}, Observer: obsFront,
		Handlers: map[string]outbox.Handler{"cancel-session": outbox.Call(peer.CancelSession)}}
	if n, err := relay.RunOnce(ctx); err != nil || n != 1 {
		t.Fatalf("relay: %d rows, %v", n, err)
	}
	spans = exp.GetSpans()
	if len(spans) != 3 {
		t.Fatalf("relay: %d spans, want 3 (delivery, client, server): %v", len(spans), spanNames(spans))
	}
	for _, s := range spans {
		if s.SpanContext.TraceID() != spans[0].SpanContext.TraceID() {
			t.Fatalf("relay spans in more than one trace: %v", spanNames(spans))
		}
	}

	if _, err := client.Verify(ctx, &pb.VerifyRequest{Phone: "missing"}); err == nil {
		t.Fatal("want NotFound")
	}
	_, metrics := get(t, admin+"/metrics")
	for _, want := range []string{
		`grpc_server_handled_total{grpc_code="OK",grpc_method="Verify",grpc_service="icp.verification.v1.VerificationService",grpc_type="unary"} 1`,
		`grpc_server_handled_total{grpc_code="NotFound",grpc_method="Verify",grpc_service="icp.verification.v1.VerificationService",grpc_type="unary"} 1`,
		`grpc_server_started_total{grpc_method="Verify",grpc_service="icp.verification.v1.VerificationService",grpc_type="unary"} 2`,
		`grpc_server_handling_seconds_count{grpc_method="Verify",grpc_service="icp.verification.v1.VerificationService",grpc_type="unary"} 2`,
		`icp_outbox_delivered_total{result="delivered",target="cancel-session"} 1`,
		`icp_outbox_pending{target="cancel-session"} 0`,
		`icp_outbox_oldest_age_seconds{target="cancel-session"} 0`,
		`go_goroutines `,
	} {
		if !strings.Contains(metrics, want) {
			t.Errorf("/metrics lacks %s", want)
		}
	}
	_, backMetrics := get(t, waitAdmin(t, obsBack)+"/metrics")
	if want := `grpc_server_handled_total{grpc_code="OK",grpc_method="CancelSession",grpc_service="icp.verification.v1.VerificationInternalService",grpc_type="unary"} 2`; !strings.Contains(backMetrics, want) {
		t.Errorf("back /metrics lacks %s", want)
	}

	// Shutdown: /readyz turns 503 while an in-flight RPC holds the graceful stop.
	blocked := make(chan error, 1)
	go func() {
		_, err := client.Verify(ctx, &pb.VerifyRequest{Phone: "block"})
		blocked <- err
	}()
	<-api.entered
	stopped := make(chan struct{})
	go func() { stopFront(); close(stopped) }()
	deadline := time.Now().Add(5 * time.Second)
	for {
		code, _ := get(t, admin+"/readyz")
		if code == http.StatusServiceUnavailable {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("/readyz during shutdown: %d, want 503", code)
		}
		time.Sleep(10 * time.Millisecond)
	}
	if code, _ := get(t, admin+"/healthz"); code != http.StatusOK {
		t.Errorf("/healthz during shutdown: %d, want 200", code)
	}
	close(api.release)
	if err := <-blocked; err != nil {
		t.Errorf("in-flight call during shutdown: %v", err)
	}
	<-stopped
}

func TestReadyChecks(t *testing.T) {
	o := newObserver(t, "svc", nil)
	h := o.Handler()
	probe := func() int {
		rec := &statusRecorder{header: http.Header{}}
		req, _ := http.NewRequest(http.MethodGet, "/readyz", nil)
		h.ServeHTTP(rec, req)
		return rec.code
	}
	if c := probe(); c != http.StatusServiceUnavailable {
		t.Errorf("before serving: %d, want 503", c)
	}
	o.SetServing(true)
	if c := probe(); c != http.StatusOK {
		t.Errorf("serving: %d, want 200", c)
	}
	var down error = io.ErrUnexpectedEOF
	o.Ready("database", func(context.Context) error { return down })
	if c := probe(); c != http.StatusServiceUnavailable {
		t.Errorf("database down: %d, want 503", c)
	}
	down = nil
	if c := probe(); c != http.StatusOK {
		t.Errorf("database back: %d, want 200", c)
	}
}

type statusRecorder struct {
	header http.Header
	code   int
}

func (r *statusRecorder) Header() http.Header { return r.header }
func (r *statusRecorder) Write(b []byte) (int, error) {
	if r.code == 0 {
		r.code = http.StatusOK
	}
	return len(b), nil
}
func (r *statusRecorder) WriteHeader(c int) { r.code = c }

func spanNames(spans tracetest.SpanStubs) []string {
	var out []string
	for _, s := range spans {
		out = append(out, s.Name)
	}
	return out
}
