package server

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"strings"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/jackc/pgx/v5/pgxpool"

	deadlinev1 "github.com/icpverify/icpverify/pkg/gen/icp/deadline/v1"
	filingv1 "github.com/icpverify/icpverify/pkg/gen/icp/filing/v1"
	smsv1 "github.com/icpverify/icpverify/pkg/gen/icp/smsdispatch/v1"
	pb "github.com/icpverify/icpverify/pkg/gen/icp/verification/v1"
	"github.com/icpverify/icpverify/pkg/pg/pgtest"
	"github.com/icpverify/icpverify/pkg/rpc/rpctest"
)

// peers records what the outbox relay delivered to the three peer services.
type peers struct {
	smsv1.UnimplementedSmsDispatchServiceServer
	filingv1.UnimplementedFilingInternalServiceServer
	deadlinev1.UnimplementedDeadlineServiceServer
	mu     sync.Mutex
	sms    []*smsv1.SendMessageRequest
	marked []*filingv1.MarkVerifiedRequest
	cancel []*deadlinev1.CancelDeadlineRequest
	// batch makes the batch methods answer (else Unimplemented, a receiver not upgraded yet);
	// batchCalls counts their calls.
	batch      bool
	batchCalls int
}

func (p *peers) MarkVerifiedBatch(_ context.Context, r *filingv1.MarkVerifiedBatchRequest) (*filingv1.MarkVerifiedBatchResponse, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if !p.batch {
		return nil, status.Error(codes.Unimplemented, "no batch method")
	}
	p.batchCalls++
	resp := &filingv1.MarkVerifiedBatchResponse{}
	for _, req := range r.GetRequests() {
		p.marked = append(p.marked, req)
		resp.Results = append(resp.Results, &filingv1.MarkVerifiedResult{Response: &filingv1.MarkVerifiedResponse{}})
	}
	return resp, nil
}

func (p *peers) CancelDeadlines(_ context.Context, r *deadlinev1.CancelDeadlinesRequest) (*deadlinev1.CancelDeadlinesResponse, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if !p.batch {
		return nil, status.Error(codes.Unimplemented, "no batch method")
	}
	p.batchCalls++
	resp := &deadlinev1.CancelDeadlinesResponse{}
	for _, req := range r.GetRequests() {
		p.cancel = append(p.cancel, req)
		resp.Results = append(resp.Results, &deadlinev1.CancelDeadlineResult{Response: &deadlinev1.CancelDeadlineResponse{}})
	}
	return resp, nil
}

func (p *peers) SendMessage(_ context.Context, r *smsv1.SendMessageRequest) (*smsv1.SendMessageResponse, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.sms = append(p.sms, r)
	return &smsv1.SendMessageResponse{}, nil
}

func (p *peers) MarkVerified(_ context.Context, r *filingv1.MarkVerifiedRequest) (*filingv1.MarkVerifiedResponse, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.marked = append(p.marked, r)
	return &filingv1.MarkVerifiedResponse{}, nil
}

func (p *peers) CancelDeadline(_ context.Context, r *deadlinev1.CancelDeadlineRequest) (*deadlinev1.CancelDeadlineResponse, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.cancel = append(p.cancel, r)
	return &deadlinev1.CancelDeadlineResponse{}, nil
}

func (p *peers) counts() (int, int, int) {
	p.mu.Lock()
	defer p.mu.Unlock()
	return len(p.sms), len(p.marked), len(p.cancel)
}

func eventually(t *testing.T, what string, ok func() bool) {
	t.Helper()
	for i := 0; i < 200; i++ {
		if ok() {
			return
		}
		time.Sleep(25 * time.Millisecond)
	}
	t.Fatalf("timed out waiting for %s", what)
}

// TestRunWiresRelay starts the whole service with Run on PostgreSQL against fake peers.
// The peers have the batch methods: the verdict and the cancel arrive through them.
func TestRunWiresRelay(t *testing.T) {
	p, peerAddr := startPeers(t)
	p.mu.Lock()
	p.batch = true
	p.mu.Unlock()

	b := make([]byte, 6)
	_, _ = rand.Read(b)
	schema := "t_verification_server_" + hex.EncodeToString(b)
	t.Cleanup(func() {
		pool, err := pgxpool.New(context.Background(), pgtest.URL())
		if err == nil {
			_, _ = pool.Exec(context.Background(), "DROP SCHEMA IF EXISTS "+schema+" CASCADE")
			pool.Close()
		}
	})
	addr := startRun(t, "--insecure-dev", "--database-url", pgtest.URL(), "--database-schema", schema,
		"--sms-dispatch-addr", peerAddr, "--filing-addr", peerAddr, "--deadline-addr", peerAddr,
		"--hmac-keys", "k1:"+strings.Repeat("ab", 32), "--seal-keys", "s1:"+strings.Repeat("cd", 32))
	openAndVerify(t, p, addr)
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.batchCalls < 2 {
		t.Errorf("batch calls = %d, want the verdict's and the cancel's", p.batchCalls)
	}
}

// TestRunMemory starts the service on the in-memory engine (no database, no HMAC key) and runs the
// same flow through the relay, against peers without the batch methods (the relay falls back to the
// single calls).
func TestRunMemory(t *testing.T) {
	p, peerAddr := startPeers(t)
	addr := startRun(t, "--store", "memory", "--database-url", "",
		"--sms-dispatch-addr", peerAddr, "--filing-addr", peerAddr, "--deadline-addr", peerAddr)
	openAndVerify(t, p, addr)
}

func startPeers(t *testing.T) (*peers, string) {
	p := &peers{}
	addr := rpctest.Peer(t, func(s grpc.ServiceRegistrar) {
		smsv1.RegisterSmsDispatchServiceServer(s, p)
		filingv1.RegisterFilingInternalServiceServer(s, p)
		deadlinev1.RegisterDeadlineServiceServer(s, p)
	})
	return p, addr
}

// startRun runs the service on a free port until the test ends and returns its address.
func startRun(t *testing.T, args ...string) string {
	addr := rpctest.FreeAddr(t)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		done <- Run(ctx, append([]string{"--grpc-addr", addr, "--log-level", "error", "--min-response-time", "0"}, args...))
	}()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run: %v", err)
		}
	})
	return addr
}

// openAndVerify checks that the outbox targets reach the right peer methods: codes to sms-dispatch,
// the verdict to filing and deadline.
func openAndVerify(t *testing.T, p *peers, addr string) {
	conn, err := grpc.NewClient(addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	internal := pb.NewVerificationInternalServiceClient(conn)
	public := pb.NewVerificationServiceClient(conn)
	opened := func() bool {
		_, err := internal.OpenSession(context.Background(), &pb.OpenSessionRequest{RequestId: "filing:open-session:o1:1",
			OrderId: "o1", Submission: 1, DeadlineAt: timestamppb.New(time.Now().Add(time.Hour)),
			Verifiers: []*pb.VerifierSpec{{Phone: "+8613812345678", Roles: []string{"PRINCIPAL"}, IdTails: []string{"12345X"}}}})
		return err == nil
	}
	eventually(t, "the server to open a session", opened)
	eventually(t, "the code to reach sms-dispatch", func() bool { n, _, _ := p.counts(); return n == 1 })
	p.mu.Lock()
	code := p.sms[0].GetParams()["code"]
	p.mu.Unlock()
	r, err := public.Verify(context.Background(), &pb.VerifyRequest{Phone: "13812345678", Code: code, IdTail: "12345X"})
	if err != nil || r.GetResult() != pb.VerifyResult_VERIFY_RESULT_ALL_PASSED {
		t.Fatalf("verify = %v, %v", r, err)
	}
	eventually(t, "MarkVerified and CancelDeadline", func() bool { _, m, c := p.counts(); return m == 1 && c == 1 })
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.marked[0].GetRequestId() != "verification:mark-verified:o1:1" || p.cancel[0].GetRequestId() != "verification:cancel-deadline:o1:1" {
		t.Fatalf("request ids: %v / %v", p.marked[0], p.cancel[0])
	}
}

const (
	hmacKey = "k1:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"
	sealKey = "s1:fedcba9876543210fedcba9876543210fedcba9876543210fedcba9876543210"
)

func TestRunRejectsBadConfig(t *testing.T) {
	cases := []struct {
		name string
		args []string
		want string
	}{
		{"no database", []string{"--database-url", ""}, "database-url"},
		{"short key", []string{"--insecure-dev", "--database-url", "postgres://x", "--hmac-keys", "k1:abcd", "--seal-keys", sealKey}, "at least 32"},
		{"zero failures", []string{"--database-url", "postgres://x", "--max-failed-attempts", "0"}, "max-failed-attempts"},
		{"no key with postgres", []string{"--database-url", "postgres://x"}, "HMAC_KEYS"},
		{"key recipe", []string{"--database-url", "postgres://x"}, "openssl rand -hex 32"},
		{"no seal key with postgres", []string{"--database-url", "postgres://x", "--hmac-keys", hmacKey}, "SEAL_KEYS"},
		{"seal key recipe", []string{"--database-url", "postgres://x", "--hmac-keys", hmacKey}, `SEAL_KEYS="s1:$(openssl rand -hex 32)"`},
		{"short seal key", []string{"--database-url", "postgres://x", "--hmac-keys", hmacKey, "--seal-keys", "s1:abcd"}, "want exactly 32"},
		{"placeholder seal key", []string{"--database-url", "postgres://x", "--hmac-keys", hmacKey,
			// hex of "example seal key - replace me!!!"
			"--seal-keys", "s1:6578616d706c65207365616c206b6579202d207265706c616365206d65212121"}, "seal key is a placeholder"},
		{"negative floor", []string{"--store", "memory", "--min-response-time", "-1s"}, "min-response-time"},
		{"no relay batch", []string{"--store", "memory", "--relay-batch", "0"}, "--relay-batch must be between 1 and 500"},
		{"relay batch over the bound", []string{"--store", "memory", "--relay-batch", "501"}, "--relay-batch"},
		// 42 characters: with a token the SMS could overflow two segments.
		{"long link base", []string{"--store", "memory", "--verify-link-base", "https://beian.example.cn/" + strings.Repeat("v", 17)}, "two segments"},
		{"link base with a query", []string{"--store", "memory", "--verify-link-base", "https://beian.example.cn/v?x=1"}, "without query"},
	}
	for _, tc := range cases {
		err := Run(context.Background(), tc.args)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: err = %v, want it to mention %q", tc.name, err, tc.want)
		}
	}
}
