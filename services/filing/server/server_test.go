package server_test

import (
	"context"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc"

	deadlinev1 "github.com/icpverify/icpverify/pkg/gen/icp/deadline/v1"
	filingv1 "github.com/icpverify/icpverify/pkg/gen/icp/filing/v1"
	verificationv1 "github.com/icpverify/icpverify/pkg/gen/icp/verification/v1"
	"github.com/icpverify/icpverify/pkg/idempotency"
	"github.com/icpverify/icpverify/pkg/outbox"
	"github.com/icpverify/icpverify/pkg/pg/pgtest"
	"github.com/icpverify/icpverify/pkg/rpc"
	"github.com/icpverify/icpverify/pkg/rpc/rpctest"
	"github.com/icpverify/icpverify/services/filing/internal/store"
	"github.com/icpverify/icpverify/services/filing/server"
)

// peers records what the filing relay delivers to verification and deadline.
type peers struct {
	verificationv1.UnimplementedVerificationInternalServiceServer
	deadlinev1.UnimplementedDeadlineServiceServer
	mu    sync.Mutex
	calls []string
	open  *verificationv1.OpenSessionRequest
}

func (p *peers) record(name string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.calls = append(p.calls, name)
}

func (p *peers) OpenSession(_ context.Context, req *verificationv1.OpenSessionRequest) (*verificationv1.OpenSessionResponse, error) {
	p.mu.Lock()
	p.open = req
	p.mu.Unlock()
	p.record("OpenSession")
	return &verificationv1.OpenSessionResponse{}, nil
}

func (p *peers) CancelSession(context.Context, *verificationv1.CancelSessionRequest) (*verificationv1.CancelSessionResponse, error) {
	p.record("CancelSession")
	return &verificationv1.CancelSessionResponse{}, nil
}

func (p *peers) ScheduleDeadline(context.Context, *deadlinev1.ScheduleDeadlineRequest) (*deadlinev1.ScheduleDeadlineResponse, error) {
	p.record("ScheduleDeadline")
	return &deadlinev1.ScheduleDeadlineResponse{}, nil
}

func (p *peers) CancelDeadline(context.Context, *deadlinev1.CancelDeadlineRequest) (*deadlinev1.CancelDeadlineResponse, error) {
	p.record("CancelDeadline")
	return &deadlinev1.CancelDeadlineResponse{}, nil
}

func (p *peers) has(names ...string) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, n := range names {
		found := false
		for _, c := range p.calls {
			found = found || c == n
		}
		if !found {
			return false
		}
	}
	return true
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		if cond() {
			return
		}
	}
	t.Fatalf("timed out waiting for %s", what)
}

// TestRunDeliversThroughOutbox starts the real binary's Run on PostgreSQL with recording peers and
// checks that a submit and a cancel reach verification and deadline through the outbox relay.
func TestRunDeliversThroughOutbox(t *testing.T) {
	pool := pgtest.NewSchema(t, "filing_srv", store.Migrations, outbox.Migrations, idempotency.Migrations)
	var schema string
	if err := pool.QueryRow(context.Background(), `SELECT current_schema()`).Scan(&schema); err != nil {
		t.Fatal(err)
	}
	runFlow(t, []string{"--insecure-dev", "--database-url", pgtest.URL(), "--database-schema", schema}, func() {
		var left int
		waitFor(t, "the outbox to drain", func() bool {
			_ = pool.QueryRow(context.Background(), `SELECT count(*) FROM outbox`).Scan(&left)
			return left == 0
		})
	})
}

// TestRunInMemory is the same flow with --store=memory: no database at all.
func TestRunInMemory(t *testing.T) {
	runFlow(t, []string{"--store", "memory"}, func() {})
}

// runFlow starts Run with storeArgs and recording peers, creates, submits and cancels an order,
// waits for the four calls to arrive through the outbox relay, and runs then before stopping Run.
func runFlow(t *testing.T, storeArgs []string, then func()) {
	t.Helper()
	fake := &peers{}
	peerAddr := rpctest.Peer(t, func(s grpc.ServiceRegistrar) {
		verificationv1.RegisterVerificationInternalServiceServer(s, fake)
		deadlinev1.RegisterDeadlineServiceServer(s, fake)
	})

	addr := rpctest.FreeAddr(t)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		done <- server.Run(ctx, append([]string{"--grpc-addr", addr,
			"--verification-addr", peerAddr, "--deadline-addr", peerAddr,
			"--verification-window", "2h", "--sms-locale", "en", "--log-level", "error"}, storeArgs...))
	}()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run: %v", err)
		}
	}()

	conn, err := rpc.Dial(addr)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	client := filingv1.NewFilingServiceClient(conn)
	spec := &filingv1.OrderSpec{FilingType: filingv1.FilingType_FILING_TYPE_FIRST_FILING,
		Principal: &filingv1.Person{Name: "张三", IdType: filingv1.IdDocumentType_ID_DOCUMENT_TYPE_PASSPORT, IdNumber: "E12345678", Phone: "13812345678"},
		Websites: []*filingv1.Website{{Domain: "example.cn",
			Person: &filingv1.Person{Name: "张三", IdType: filingv1.IdDocumentType_ID_DOCUMENT_TYPE_PASSPORT, IdNumber: "E12345678", Phone: "13812345678"}}}}
	var created *filingv1.CreateOrderResponse
	waitFor(t, "the server to answer", func() bool {
		created, err = client.CreateOrder(ctx, &filingv1.CreateOrderRequest{RequestId: "c1", Spec: spec}, grpc.WaitForReady(true))
		return err == nil
	})
	id := created.GetOrder().GetOrderId()
	sub, err := client.SubmitOrder(ctx, &filingv1.SubmitOrderRequest{RequestId: "s1", OrderId: id})
	if err != nil {
		t.Fatal(err)
	}
	if got := sub.GetOrder().GetDeadlineAt().AsTime().Sub(sub.GetOrder().GetHistory()[1].GetAt().AsTime()); got != 2*time.Hour {
		t.Fatalf("window = %v, want the configured 2h", got)
	}
	waitFor(t, "OpenSession and ScheduleDeadline", func() bool { return fake.has("OpenSession", "ScheduleDeadline") })
	fake.mu.Lock()
	open := fake.open
	fake.mu.Unlock()
	if open.GetLocale() != "en" || len(open.GetVerifiers()) != 1 || len(open.GetVerifiers()[0].GetRoles()) != 2 ||
		open.GetVerifiers()[0].GetIdTails()[0] != "345678" {
		t.Fatalf("open session = %v", open)
	}
	if _, err := client.CancelOrder(ctx, &filingv1.CancelOrderRequest{RequestId: "x1", OrderId: id}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "CancelSession and CancelDeadline", func() bool { return fake.has("CancelSession", "CancelDeadline") })
	then()
}
