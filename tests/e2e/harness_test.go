// Package e2e drives the four services as separate processes on a real PostgreSQL, with an HTTP SMS
// gateway (the webhook provider's peer) inside the test, through their public and internal gRPC APIs.
package e2e

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"

	deadlinev1 "github.com/icpverify/icpverify/pkg/gen/icp/deadline/v1"
	filingv1 "github.com/icpverify/icpverify/pkg/gen/icp/filing/v1"
	smsv1 "github.com/icpverify/icpverify/pkg/gen/icp/smsdispatch/v1"
	verificationv1 "github.com/icpverify/icpverify/pkg/gen/icp/verification/v1"
	"github.com/icpverify/icpverify/pkg/pg/pgtest"

	"github.com/icpverify/icpverify/services/sms-dispatch/providertest"
)

var binDir string

var services = []string{"filing", "verification", "sms-dispatch", "deadline"}

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "icpverify-e2e-bin")
	if err != nil {
		panic(err)
	}
	binDir = dir
	pkgs := []string{"github.com/icpverify/icpverify/cmd/icpdev", "github.com/icpverify/icpverify/cmd/icpctl"}
	for _, s := range append(services, "edge") {
		pkgs = append(pkgs, "github.com/icpverify/icpverify/services/"+s+"/cmd/"+s)
	}
	cmd := exec.Command("go", append([]string{"build", "-o", dir + "/"}, pkgs...)...)
	cmd.Stdout, cmd.Stderr = os.Stdout, os.Stderr
	if err := cmd.Run(); err != nil {
		fmt.Fprintf(os.Stderr, "build: %v\n", err)
		os.Exit(1)
	}
	// The page's browser tests read captcha answers through a route that only a binary built with
	// the pagetest tag has; every other test runs the production edge.
	cmd = exec.Command("go", "build", "-tags", "pagetest", "-o", filepath.Join(dir, "edge-pagetest"),
		"github.com/icpverify/icpverify/services/edge/cmd/edge")
	cmd.Stdout, cmd.Stderr = os.Stdout, os.Stderr
	if err := cmd.Run(); err != nil {
		fmt.Fprintf(os.Stderr, "build: %v\n", err)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// gatewayPost is one POST the SMS gateway received.
type gatewayPost struct {
	MessageID      string `json:"message_id"`
	Phone          string `json:"phone"`
	Text           string `json:"text"`
	Sender         string `json:"sender"`
	IdempotencyKey string `json:"-"`
}

var codeRE = regexp.MustCompile(`\d{6}`)

// Code is the 6-digit code in the text.
func (p gatewayPost) Code() string { return codeRE.FindString(p.Text) }

// gateway is an SMS gateway that records every POST. hold, when set, makes requests wait until it is closed.
type gateway struct {
	srv   *httptest.Server
	mu    sync.Mutex
	posts []gatewayPost
	hold  chan struct{}
	held  chan struct{} // receives once per held request
	// refuse, when set, answers every POST with HTTP 400 (recorded all the same): a number the
	// provider cannot reach.
	refuse bool
	// aliyun, when the suite runs sms-dispatch with --sms-provider=aliyun, is the fake dysmsapi its
	// messages go to instead: Posts lists what it accepted.
	aliyun *providertest.Aliyun
	// cmpp, with --sms-provider=cmpp, is the fake ISMG instead.
	cmpp *providertest.CMPP
	// tencent, when the suite runs sms-dispatch with --sms-providers=aliyun,tencent, is the fake
	// Tencent Cloud SMS that takes the messages the (closed) aliyun fake cannot.
	tencent *providertest.Tencent
}

func newGateway(t *testing.T) *gateway {
	g := &gateway{held: make(chan struct{}, 100)}
	g.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var p gatewayPost
		if err := json.NewDecoder(r.Body).Decode(&p); err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		p.IdempotencyKey = r.Header.Get("Idempotency-Key")
		g.mu.Lock()
		g.posts = append(g.posts, p)
		hold, refuse := g.hold, g.refuse
		g.mu.Unlock()
		if refuse {
			http.Error(w, "number not reachable", http.StatusBadRequest)
			return
		}
		if hold != nil {
			g.held <- struct{}{}
			select {
			case <-hold:
			case <-r.Context().Done():
				return
			}
		}
		w.WriteHeader(http.StatusAccepted)
		fmt.Fprintf(w, `{"accepted":true}`)
	}))
	t.Cleanup(g.srv.Close)
	return g
}

// setRefuse makes the gateway refuse (or accept again) every message.
func (g *gateway) setRefuse(on bool) {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.refuse = on
}

func (g *gateway) Posts() []gatewayPost {
	g.mu.Lock()
	defer g.mu.Unlock()
	posts := append([]gatewayPost(nil), g.posts...)
	if g.aliyun != nil {
		// The template's values stand for the text: the code first, so Code finds it.
		for _, a := range g.aliyun.Accepted() {
			posts = append(posts, gatewayPost{MessageID: a.MessageID, Phone: a.Phone, Text: a.Code() + " " + strings.Join(a.Ordered, " "),
				IdempotencyKey: a.MessageID})
		}
	}
	if g.cmpp != nil {
		for _, m := range g.cmpp.Messages() {
			posts = append(posts, gatewayPost{MessageID: fmt.Sprint(m.MsgIDs[0]), Phone: m.Phone, Text: m.Text})
		}
	}
	if g.tencent != nil {
		for _, a := range g.tencent.Accepted() {
			posts = append(posts, gatewayPost{MessageID: a.MessageID, Phone: a.Phone, Text: a.Code() + " " + strings.Join(a.Ordered, " "),
				IdempotencyKey: a.MessageID})
		}
	}
	return posts
}

// ForPhone returns the posts to one E.164 phone, oldest first.
func (g *gateway) ForPhone(phone string) []gatewayPost {
	var out []gatewayPost
	for _, p := range g.Posts() {
		if p.Phone == phone {
			out = append(out, p)
		}
	}
	return out
}

// proc is one service process.
type proc struct {
	name string
	args []string
	cmd  *exec.Cmd
	out  *bytes.Buffer
	mu   sync.Mutex
}

type lockedWriter struct {
	mu  *sync.Mutex
	buf *bytes.Buffer
}

func (w lockedWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.buf.Write(p)
}

func (w lockedWriter) String() string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.buf.String()
}

func (p *proc) start(t *testing.T) {
	t.Helper()
	p.cmd = exec.Command(filepath.Join(binDir, strings.SplitN(p.name, "#", 2)[0]), p.args...)
	w := lockedWriter{&p.mu, p.out}
	p.cmd.Stdout, p.cmd.Stderr = w, w
	if err := p.cmd.Start(); err != nil {
		t.Fatalf("start %s: %v", p.name, err)
	}
}

func (p *proc) Output() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.out.String()
}

// suite is the four services on one fresh database.
type suite struct {
	t       *testing.T
	dbURL   string
	addrs   map[string]string
	procs   map[string]*proc
	gateway *gateway
	// credentialed: the processes run with credentials() and the clients speak as portal and operator.
	credentialed bool

	Filing         filingv1.FilingServiceClient
	FilingInternal filingv1.FilingInternalServiceClient
	Verification   verificationv1.VerificationServiceClient
	VerifyInternal verificationv1.VerificationInternalServiceClient
	SMS            smsv1.SmsDispatchServiceClient
	Deadline       deadlinev1.DeadlineServiceClient
	// receiptURL is sms-dispatch's receipt endpoint (aliyun suites): http://addr.
	receiptURL string
}

// options changes one service's extra flags.
type options struct {
	window        time.Duration
	extraDeadline bool // start a second deadline process on the same database
	// smsMaxAttempts, when set, is sms-dispatch's --max-attempts (1: a refused message fails at once).
	smsMaxAttempts int
	// verification adds flags to verification's (a later flag wins: rate limits, for instance).
	verification []string
	// deadline adds flags to every deadline process's.
	deadline []string
	// smsProvider "aliyun" runs sms-dispatch with the aliyun provider against a fake dysmsapi
	// (s.gateway.aliyun) instead of the webhook gateway; "aliyun,tencent" runs it with failover to a
	// fake Tencent Cloud SMS (s.gateway.tencent) behind an aliyun fake whose listener is closed;
	// "cmpp" with the cmpp provider against a fake ISMG (s.gateway.cmpp).
	smsProvider string
}

// handedOut are the addresses freeAddr gave this test binary: the kernel may offer a closed port again,
// and two parallel tests handed one port would start two services on it (one fails to bind, and the
// other's clients reach the wrong process).
var handedOut = struct {
	sync.Mutex
	addrs map[string]bool
}{addrs: map[string]bool{}}

func freeAddr(t *testing.T) string {
	handedOut.Lock()
	defer handedOut.Unlock()
	for {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		addr := l.Addr().String()
		l.Close()
		if !handedOut.addrs[addr] {
			handedOut.addrs[addr] = true
			return addr
		}
	}
}

// mainService is the gRPC service each binary registers: its health is asked by name, so a health
// check answered by another process on the port (a port taken by someone else) does not pass.
var mainService = map[string]string{
	"filing":       "icp.filing.v1.FilingService",
	"verification": "icp.verification.v1.VerificationService",
	"sms-dispatch": "icp.smsdispatch.v1.SmsDispatchService",
	"deadline":     "icp.deadline.v1.DeadlineService",
}

// newDatabase creates a database for one test and drops it afterwards.
func newDatabase(t *testing.T) string {
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, pgtest.URL())
	if err != nil {
		t.Fatalf("connect to PostgreSQL at %s: %v", pgtest.URL(), err)
	}
	defer conn.Close(ctx)
	b := make([]byte, 5)
	_, _ = rand.Read(b)
	name := "e2e_" + hex.EncodeToString(b)
	if _, err := conn.Exec(ctx, "CREATE DATABASE "+name); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		c, err := pgx.Connect(context.Background(), pgtest.URL())
		if err == nil {
			_, _ = c.Exec(context.Background(), "DROP DATABASE "+name+" WITH (FORCE)")
			c.Close(context.Background())
		}
	})
	cfg, err := pgx.ParseConfig(pgtest.URL())
	if err != nil {
		t.Fatal(err)
	}
	return fmt.Sprintf("postgres://%s@%s:%d/%s?sslmode=disable", cfg.User, cfg.Host, cfg.Port, name)
}

// The fake dysmsapi's AccessKey (made up for the suite; checkNoPersonalDataInLogs looks for the secret too).
const (
	e2eAliyunKeyID  = "LTAI5tE2eSuiteKey"
	e2eAliyunSecret = "Hq3Vn8Rw2Tz6Yb1Mk5Pd9Lc4"
)

// e2eCMPPSecret is the fake ISMG's shared secret.
const e2eCMPPSecret = "Cm9Pp3Sh4Rd7Sk2"

// e2eReceiptToken is the secret of sms-dispatch's receipt endpoint in the aliyun suites.
const e2eReceiptToken = "e2e-receipt-token-7f3a9c"

const hmacKeys = "e2e1:00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff"

// sealKeys seal verification's queued SendMessage calls and sms-dispatch's queued texts.
const sealKeys = "e2e1:8899aabbccddeeff00112233445566778899aabbccddeeff0011223344556677"

func startSuite(t *testing.T, o options) *suite {
	t.Helper()
	if o.window == 0 {
		o.window = time.Hour
	}
	s := &suite{t: t, dbURL: newDatabase(t), addrs: map[string]string{}, procs: map[string]*proc{}, gateway: newGateway(t)}
	for _, name := range services {
		s.addrs[name] = freeAddr(t)
	}
	args := map[string][]string{
		// The flow tests submit a dozen orders at once (TestTwoDeadlineProcesses): past the default submit burst.
		"filing": {"--verification-addr=" + s.addrs["verification"], "--deadline-addr=" + s.addrs["deadline"],
			"--verification-window=" + o.window.String(), "--create-rate=0", "--update-rate=0", "--submit-rate=0"},
		"verification": {"--sms-dispatch-addr=" + s.addrs["sms-dispatch"], "--filing-addr=" + s.addrs["filing"],
			"--deadline-addr=" + s.addrs["deadline"], "--hmac-keys=" + hmacKeys, "--seal-keys=" + sealKeys, "--resend-interval=1ms"},
		"sms-dispatch": {"--verification-addr=" + s.addrs["verification"], "--sms-provider=webhook", "--webhook-url=" + s.gateway.srv.URL,
			"--webhook-timeout=1s", "--dispatch-lease=3s", "--seal-keys=" + sealKeys,
			"--rate-per-minute=1000", "--rate-per-hour=1000", "--rate-per-day=1000"},
		"deadline": {"--verification-addr=" + s.addrs["verification"], "--sweep-interval=100ms"},
	}
	if o.smsProvider == "aliyun" {
		s.gateway.aliyun = providertest.NewAliyun(e2eAliyunKeyID, e2eAliyunSecret, "ICP备案", "SMS_480012345", "code", "time")
		t.Cleanup(s.gateway.aliyun.Close)
		args["sms-dispatch"] = []string{"--verification-addr=" + s.addrs["verification"], "--sms-provider=aliyun",
			"--aliyun-endpoint=" + s.gateway.aliyun.URL(), "--aliyun-access-key-id=" + e2eAliyunKeyID,
			"--aliyun-access-key-secret=" + e2eAliyunSecret, "--aliyun-sign-name=ICP备案", "--aliyun-template-code=SMS_480012345",
			"--aliyun-template-params=code=code,time=deadline", "--provider-timeout=1s", "--dispatch-lease=3s",
			"--seal-keys=" + sealKeys, "--rate-per-minute=1000", "--rate-per-hour=1000", "--rate-per-day=1000"}
		receiptAddr := freeAddr(t)
		s.receiptURL = "http://" + receiptAddr
		args["sms-dispatch"] = append(args["sms-dispatch"], "--receipt-addr="+receiptAddr, "--receipt-token="+e2eReceiptToken)
	}
	if o.smsProvider == "cmpp" {
		s.gateway.cmpp = providertest.NewCMPP("901234", e2eCMPPSecret)
		t.Cleanup(s.gateway.cmpp.Close)
		args["sms-dispatch"] = []string{"--verification-addr=" + s.addrs["verification"], "--sms-provider=cmpp",
			"--cmpp-addr=" + s.gateway.cmpp.Addr(), "--cmpp-source-addr=901234", "--cmpp-secret=" + e2eCMPPSecret,
			"--cmpp-src-id=10690001", "--cmpp-service-id=ICPSMS", "--cmpp-submit-timeout=500ms", "--dispatch-lease=3s",
			"--seal-keys=" + sealKeys, "--rate-per-minute=1000", "--rate-per-hour=1000", "--rate-per-day=1000"}
	}
	if o.smsProvider == "aliyun,tencent" {
		down := providertest.NewAliyun(e2eAliyunKeyID, e2eAliyunSecret, "ICP备案", "SMS_480012345", "code", "time")
		downURL := down.URL()
		down.Close() // the primary's gateway is down: every connection is refused
		s.gateway.tencent = providertest.NewTencent("AKIDe2eFailover", e2eAliyunSecret, "1400112233", "ICP备案", "2233445", 2)
		t.Cleanup(s.gateway.tencent.Close)
		args["sms-dispatch"] = []string{"--verification-addr=" + s.addrs["verification"], "--sms-providers=aliyun,tencent",
			"--aliyun-endpoint=" + downURL, "--aliyun-access-key-id=" + e2eAliyunKeyID,
			"--aliyun-access-key-secret=" + e2eAliyunSecret, "--aliyun-sign-name=ICP备案", "--aliyun-template-code=SMS_480012345",
			"--aliyun-template-params=code=code,time=deadline",
			"--tencent-endpoint=" + s.gateway.tencent.URL(), "--tencent-secret-id=AKIDe2eFailover", "--tencent-secret-key=" + e2eAliyunSecret,
			"--tencent-sdk-app-id=1400112233", "--tencent-sign-name=ICP备案", "--tencent-template-id=2233445",
			"--tencent-template-params=code,deadline", "--provider-timeout=1s", "--dispatch-lease=3s",
			"--seal-keys=" + sealKeys, "--rate-per-minute=1000", "--rate-per-hour=1000", "--rate-per-day=1000"}
	}
	if o.smsMaxAttempts > 0 {
		args["sms-dispatch"] = append(args["sms-dispatch"], fmt.Sprintf("--max-attempts=%d", o.smsMaxAttempts))
	}
	args["verification"] = append(args["verification"], o.verification...)
	args["deadline"] = append(args["deadline"], o.deadline...)
	creds := credentials(t, t.TempDir())
	s.credentialed = true
	for _, name := range services {
		args[name] = append(args[name], creds[name]...)
		s.startProc(name, name, s.addrs[name], args[name])
	}
	if o.extraDeadline {
		s.startProc("deadline#2", "deadline", freeAddr(t), args["deadline"])
	}
	for name, p := range s.procs {
		s.waitHealthy(name, s.dial(p.addrFromArgs()))
	}
	fc, vc, sc, dc := s.dial(s.addrs["filing"]), s.dial(s.addrs["verification"]), s.dial(s.addrs["sms-dispatch"]), s.dial(s.addrs["deadline"])
	s.Filing, s.FilingInternal = filingv1.NewFilingServiceClient(fc), filingv1.NewFilingInternalServiceClient(fc)
	s.Verification, s.VerifyInternal = verificationv1.NewVerificationServiceClient(vc), verificationv1.NewVerificationInternalServiceClient(vc)
	s.SMS, s.Deadline = smsv1.NewSmsDispatchServiceClient(sc), deadlinev1.NewDeadlineServiceClient(dc)
	t.Cleanup(func() {
		for _, p := range s.procs {
			if p.cmd.ProcessState == nil {
				_ = p.cmd.Process.Signal(syscall.SIGTERM)
			}
		}
		for _, p := range s.procs {
			if p.cmd.ProcessState == nil {
				done := make(chan struct{})
				go func() { _ = p.cmd.Wait(); close(done) }()
				select {
				case <-done:
				case <-time.After(20 * time.Second):
					_ = p.cmd.Process.Kill()
					<-done
				}
			}
			if t.Failed() {
				t.Logf("--- %s output ---\n%s", p.name, tail(p.Output(), 6000))
			}
		}
		s.checkNoPersonalDataInLogs()
	})
	return s
}

// checkNoPersonalDataInLogs fails the test when any process logged a code, a full phone number
// (E.164 or national) or an ID number that the test used.
func (s *suite) checkNoPersonalDataInLogs() {
	var secrets []string
	for _, p := range s.gateway.Posts() {
		secrets = append(secrets, p.Code(), p.Phone, strings.TrimPrefix(p.Phone, "+86"))
	}
	secrets = append(secrets, usedIDNumbers()...)
	secrets = append(secrets, e2eAliyunSecret, e2eCMPPSecret)
	for _, p := range s.procs {
		out := p.Output()
		for _, secret := range secrets {
			if secret == "" {
				continue
			}
			if regexp.MustCompile(`(^|\D)` + regexp.QuoteMeta(secret) + `(\D|$)`).MatchString(out) {
				s.t.Errorf("%s logged personal data or a code (%s…)", p.name, secret[:3])
			}
		}
	}
}

func tail(s string, n int) string {
	if len(s) > n {
		return "..." + s[len(s)-n:]
	}
	return s
}

func (p *proc) addrFromArgs() string {
	for _, a := range p.args {
		if v, ok := strings.CutPrefix(a, "--grpc-addr="); ok {
			return v
		}
	}
	return ""
}

func (s *suite) startProc(key, bin, addr string, extra []string) {
	args := append([]string{"--grpc-addr=" + addr, "--database-url=" + s.dbURL}, extra...)
	p := &proc{name: key, args: args, out: &bytes.Buffer{}}
	if key != bin {
		p.name = bin + "#" + strings.SplitN(key, "#", 2)[1]
	}
	p.start(s.t)
	s.procs[key] = p
}

func (s *suite) waitHealthy(name string, conn *grpc.ClientConn) {
	s.t.Helper()
	hc := healthpb.NewHealthClient(conn)
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		resp, err := hc.Check(ctx, &healthpb.HealthCheckRequest{Service: mainService[strings.SplitN(name, "#", 2)[0]]})
		cancel()
		if err == nil && resp.GetStatus() == healthpb.HealthCheckResponse_SERVING {
			return
		}
		if p := s.procs[name]; p.cmd.ProcessState != nil {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	s.t.Fatalf("%s did not become healthy; output:\n%s", name, s.procs[name].Output())
}

// kill stops a service with SIGKILL, as a crash would.
func (s *suite) kill(name string) {
	p := s.procs[name]
	_ = p.cmd.Process.Kill()
	_, _ = p.cmd.Process.Wait()
}

// restart starts a killed service again with the same flags.
func (s *suite) restart(name string) {
	p := s.procs[name]
	np := &proc{name: p.name, args: p.args, out: p.out}
	np.start(s.t)
	s.procs[name] = np
	s.waitHealthy(name, s.dial(np.addrFromArgs()))
}

func (s *suite) dial(addr string) *grpc.ClientConn {
	opts := []grpc.DialOption{grpc.WithTransportCredentials(insecure.NewCredentials())}
	if s.credentialed {
		opts = append(opts, grpc.WithUnaryInterceptor(asCaller))
	}
	conn, err := grpc.NewClient(addr, opts...)
	if err != nil {
		s.t.Fatal(err)
	}
	s.t.Cleanup(func() { conn.Close() })
	return conn
}

// eventually polls cond (an RPC-level observation) until it holds or the limit passes.
func eventually(t *testing.T, limit time.Duration, what string, cond func() (bool, string)) {
	t.Helper()
	deadline := time.Now().Add(limit)
	var last string
	for time.Now().Before(deadline) {
		ok, state := cond()
		if ok {
			return
		}
		last = state
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatalf("timed out after %v waiting for %s; last seen: %s", limit, what, last)
}
