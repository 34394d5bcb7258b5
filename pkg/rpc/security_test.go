package rpc

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/hex"
	"encoding/pem"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"go.uber.org/zap"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/peer"
	"google.golang.org/grpc/status"

	"github.com/icpverify/icpverify/pkg/config"
	pb "github.com/icpverify/icpverify/pkg/gen/icp/verification/v1"
)

// ---- test PKI, made here with crypto/x509 ----

type pki struct {
	cert *x509.Certificate
	key  *ecdsa.PrivateKey
	pem  []byte
}

func newKey(t *testing.T) *ecdsa.PrivateKey {
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

var serial int64 = 1
var serialMu sync.Mutex

func nextSerial() *big.Int {
	serialMu.Lock()
	defer serialMu.Unlock()
	serial++
	return big.NewInt(serial)
}

func newCA(t *testing.T, cn string) pki {
	k := newKey(t)
	tmpl := &x509.Certificate{SerialNumber: nextSerial(), Subject: pkix.Name{CommonName: cn}, NotBefore: time.Now().Add(-time.Hour),
		NotAfter: time.Now().Add(time.Hour), IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &k.PublicKey, k)
	if err != nil {
		t.Fatal(err)
	}
	c, _ := x509.ParseCertificate(der)
	return pki{cert: c, key: k, pem: pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})}
}

// issue returns a PEM certificate and key signed by ca; server certificates name 127.0.0.1 and localhost.
func (ca pki) issue(t *testing.T, cn string, server bool) (certPEM, keyPEM []byte) {
	k := newKey(t)
	tmpl := &x509.Certificate{SerialNumber: nextSerial(), Subject: pkix.Name{CommonName: cn}, NotBefore: time.Now().Add(-time.Hour),
		NotAfter: time.Now().Add(time.Hour), KeyUsage: x509.KeyUsageDigitalSignature}
	if server {
		tmpl.ExtKeyUsage = []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}
		tmpl.IPAddresses, tmpl.DNSNames = []net.IP{net.ParseIP("127.0.0.1")}, []string{"localhost"}
	} else {
		tmpl.ExtKeyUsage = []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.cert, &k.PublicKey, ca.key)
	if err != nil {
		t.Fatal(err)
	}
	kder, err := x509.MarshalPKCS8PrivateKey(k)
	if err != nil {
		t.Fatal(err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: kder})
}

func writeFile(t *testing.T, dir, name string, data []byte) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, data, 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// ---- a test service: public Verify and internal CancelSession, recording the caller ----

type testAPI struct {
	pb.UnimplementedVerificationServiceServer
	pb.UnimplementedVerificationInternalServiceServer
	mu     sync.Mutex
	caller string
	full   Caller
}

func (a *testAPI) lastFull() Caller {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.full
}

// jwtSecurity is --portal-auth=jwt with the key file and the default claims and lifetime.
func jwtSecurity(keyFile string) config.Security {
	hour := time.Hour
	return config.Security{PortalAuth: s("jwt"), JWTKeyFile: s(keyFile), JWTIssuer: s("https://portal.example"),
		JWTAudience: s("icpverify"), JWTMaxLifetime: &hour, JWTTenantClaim: s("tenant"), JWTCrossTenantClaim: s("cross_tenant")}
}

func (a *testAPI) Verify(ctx context.Context, _ *pb.VerifyRequest) (*pb.VerifyResponse, error) {
	a.mu.Lock()
	a.caller, a.full = CallerFrom(ctx).ID, CallerFrom(ctx)
	a.mu.Unlock()
	return &pb.VerifyResponse{}, nil
}

func (a *testAPI) CancelSession(ctx context.Context, _ *pb.CancelSessionRequest) (*pb.CancelSessionResponse, error) {
	a.mu.Lock()
	a.caller, a.full = CallerFrom(ctx).ID, CallerFrom(ctx)
	a.mu.Unlock()
	return &pb.CancelSessionResponse{}, nil
}

func (a *testAPI) lastCaller() string {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.caller
}

func s(v string) *string { return &v }

type served struct {
	public, internal string // addresses; equal when not split
	api              *testAPI
}

// serve starts a secure server on loopback listeners (two when sec splits them).
func serve(t *testing.T, sec config.Security, opts ...ServerOption) served {
	t.Helper()
	srv, err := NewSecureServer(zap.NewNop(), sec, opts...)
	if err != nil {
		t.Fatal(err)
	}
	api := &testAPI{}
	pb.RegisterVerificationServiceServer(srv.Public(), api)
	pb.RegisterVerificationInternalServiceServer(srv.Internal(), api)
	pub, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	out := served{public: pub.Addr().String(), internal: pub.Addr().String(), api: api}
	var intl net.Listener
	if config.Get(sec.InternalGRPCAddr) != "" {
		if intl, err = net.Listen("tcp", "127.0.0.1:0"); err != nil {
			t.Fatal(err)
		}
		out.internal = intl.Addr().String()
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { _ = srv.ServeListeners(ctx, pub, intl, time.Second); close(done) }()
	t.Cleanup(func() { cancel(); <-done })
	return out
}

type clientOpts struct {
	tls *tls.Config // nil: plaintext
}

func dial(t *testing.T, addr string, o clientOpts) *grpc.ClientConn {
	t.Helper()
	creds := insecure.NewCredentials()
	if o.tls != nil {
		creds = credentials.NewTLS(o.tls)
	}
	conn, err := grpc.NewClient(addr, grpc.WithTransportCredentials(creds))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return conn
}

func callCtx(t *testing.T, md ...string) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	t.Cleanup(cancel)
	if len(md) > 0 {
		ctx = metadata.AppendToOutgoingContext(ctx, md...)
	}
	return ctx
}

func verify(t *testing.T, conn *grpc.ClientConn, md ...string) error {
	_, err := pb.NewVerificationServiceClient(conn).Verify(callCtx(t, md...), &pb.VerifyRequest{})
	return err
}

func cancelSession(t *testing.T, conn *grpc.ClientConn, md ...string) error {
	_, err := pb.NewVerificationInternalServiceClient(conn).CancelSession(callCtx(t, md...), &pb.CancelSessionRequest{})
	return err
}

func wantCode(t *testing.T, what string, err error, code codes.Code, reason string) {
	t.Helper()
	if status.Code(err) != code || (reason != "" && Reason(err) != reason) {
		t.Errorf("%s: got %v (reason %q), want %v %s", what, err, Reason(err), code, reason)
	}
}

// ---- tests ----

func TestDefaultsKeepOnePlaintextListener(t *testing.T) {
	t.Parallel()
	sv := serve(t, config.Security{})
	conn := dial(t, sv.public, clientOpts{})
	wantCode(t, "public", verify(t, conn), codes.OK, "")
	wantCode(t, "internal", cancelSession(t, conn), codes.OK, "")
	if c := sv.api.lastCaller(); c != "ip:127.0.0.1" {
		t.Errorf("caller = %q", c)
	}
}

func TestListenerSeparation(t *testing.T) {
	t.Parallel()
	sv := serve(t, config.Security{InternalGRPCAddr: s("split")})
	if sv.public == sv.internal {
		t.Fatal("one listener")
	}
	pub, intl := dial(t, sv.public, clientOpts{}), dial(t, sv.internal, clientOpts{})
	wantCode(t, "public RPC on the public listener", verify(t, pub), codes.OK, "")
	wantCode(t, "internal RPC on the public listener", cancelSession(t, pub), codes.Unimplemented, "")
	wantCode(t, "internal RPC on the internal listener", cancelSession(t, intl), codes.OK, "")
	wantCode(t, "public RPC on the internal listener", verify(t, intl), codes.Unimplemented, "")
}

type tlsSetup struct {
	ca                     pki
	certFile, keyFile, dir string
	clientCAFile           string
	clientCA               pki
	clientCert             tls.Certificate
	roots                  *x509.CertPool
}

func newTLSSetup(t *testing.T) tlsSetup {
	dir := t.TempDir()
	ca, clientCA := newCA(t, "server-ca"), newCA(t, "internal-ca")
	certPEM, keyPEM := ca.issue(t, "server-1", true)
	ccPEM, ckPEM := clientCA.issue(t, "filing", false)
	cc, err := tls.X509KeyPair(ccPEM, ckPEM)
	if err != nil {
		t.Fatal(err)
	}
	roots := x509.NewCertPool()
	roots.AddCert(ca.cert)
	return tlsSetup{ca: ca, dir: dir, certFile: writeFile(t, dir, "tls.crt", certPEM), keyFile: writeFile(t, dir, "tls.key", keyPEM),
		clientCAFile: writeFile(t, dir, "client-ca.crt", clientCA.pem), clientCA: clientCA, clientCert: cc, roots: roots}
}

func (ts tlsSetup) client(withCert bool) clientOpts {
	cfg := &tls.Config{RootCAs: ts.roots, MinVersion: tls.VersionTLS12}
	if withCert {
		cfg.Certificates = []tls.Certificate{ts.clientCert}
	}
	return clientOpts{tls: cfg}
}

func TestMutualTLSOnTheInternalListener(t *testing.T) {
	t.Parallel()
	ts := newTLSSetup(t)
	sv := serve(t, config.Security{InternalGRPCAddr: s("split"), TLSCertFile: s(ts.certFile), TLSKeyFile: s(ts.keyFile),
		TLSClientCAFile: s(ts.clientCAFile)})

	// A portal caller: TLS without a client certificate on the public listener.
	wantCode(t, "public over TLS", verify(t, dial(t, sv.public, ts.client(false))), codes.OK, "")
	// An internal caller without its certificate is refused at the handshake.
	if err := cancelSession(t, dial(t, sv.internal, ts.client(false))); status.Code(err) != codes.Unavailable {
		t.Errorf("internal without client certificate: %v, want the handshake refused (Unavailable)", err)
	}
	// A certificate from another CA is refused too.
	other := newCA(t, "other-ca")
	ocPEM, okPEM := other.issue(t, "intruder", false)
	oc, _ := tls.X509KeyPair(ocPEM, okPEM)
	otherOpts := ts.client(false)
	otherOpts.tls.Certificates = []tls.Certificate{oc}
	if err := cancelSession(t, dial(t, sv.internal, otherOpts)); status.Code(err) != codes.Unavailable {
		t.Errorf("internal with a foreign certificate: %v, want refused", err)
	}
	// Plaintext is refused.
	if err := cancelSession(t, dial(t, sv.internal, clientOpts{})); status.Code(err) == codes.OK {
		t.Error("plaintext accepted on the TLS listener")
	}
	// With the right certificate it works, and the caller is the certificate's name.
	wantCode(t, "internal with client certificate", cancelSession(t, dial(t, sv.internal, ts.client(true))), codes.OK, "")
	if c := sv.api.lastCaller(); c != "cert:filing" {
		t.Errorf("caller = %q, want cert:filing", c)
	}
}

func TestMutualTLSOnASharedListenerIsPerRPC(t *testing.T) {
	t.Parallel()
	ts := newTLSSetup(t)
	sv := serve(t, config.Security{TLSCertFile: s(ts.certFile), TLSKeyFile: s(ts.keyFile), TLSClientCAFile: s(ts.clientCAFile)})
	noCert := dial(t, sv.public, ts.client(false))
	wantCode(t, "public without client certificate", verify(t, noCert), codes.OK, "")
	wantCode(t, "internal without client certificate", cancelSession(t, noCert), codes.Unauthenticated, ReasonClientCertificateRequired)
	wantCode(t, "internal with client certificate", cancelSession(t, dial(t, sv.public, ts.client(true))), codes.OK, "")
}

// The peers' side: a Dialer with the peer TLS flags reaches the mTLS internal listener.
func TestDialerWithPeerTLS(t *testing.T) {
	t.Parallel()
	ts := newTLSSetup(t)
	sv := serve(t, config.Security{InternalGRPCAddr: s("split"), TLSCertFile: s(ts.certFile), TLSKeyFile: s(ts.keyFile),
		TLSClientCAFile: s(ts.clientCAFile)})
	ccPEM, ckPEM := ts.clientCA.issue(t, "filing", false)
	caFile := writeFile(t, ts.dir, "peer-ca.crt", ts.ca.pem)
	d, err := NewDialer(zap.NewNop(), config.Security{PeerTLSCAFile: s(caFile),
		PeerTLSCertFile: s(writeFile(t, ts.dir, "peer.crt", ccPEM)), PeerTLSKeyFile: s(writeFile(t, ts.dir, "peer.key", ckPEM))})
	if err != nil {
		t.Fatal(err)
	}
	conn, err := d.Dial(sv.internal)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	wantCode(t, "peer call", cancelSession(t, conn), codes.OK, "")
	if c := sv.api.lastCaller(); c != "cert:filing" {
		t.Errorf("caller = %q", c)
	}
	// Without the client certificate the same CA is not enough.
	d2, err := NewDialer(zap.NewNop(), config.Security{PeerTLSCAFile: s(caFile)})
	if err != nil {
		t.Fatal(err)
	}
	conn2, _ := d2.Dial(sv.internal)
	defer conn2.Close()
	if err := cancelSession(t, conn2); status.Code(err) != codes.Unavailable {
		t.Errorf("peer without client certificate: %v", err)
	}
}

func servedCN(t *testing.T, addr string, roots *x509.CertPool) string {
	t.Helper()
	conn := dial(t, addr, clientOpts{tls: &tls.Config{RootCAs: roots, MinVersion: tls.VersionTLS12}})
	var p peer.Peer
	if _, err := pb.NewVerificationServiceClient(conn).Verify(callCtx(t), &pb.VerifyRequest{}, grpc.Peer(&p)); err != nil {
		t.Fatal(err)
	}
	return p.AuthInfo.(credentials.TLSInfo).State.PeerCertificates[0].Subject.CommonName
}

func TestCertificateReloadedWhenTheFilesChange(t *testing.T) {
	t.Parallel()
	ts := newTLSSetup(t)
	sv := serve(t, config.Security{TLSCertFile: s(ts.certFile), TLSKeyFile: s(ts.keyFile)})
	if cn := servedCN(t, sv.public, ts.roots); cn != "server-1" {
		t.Fatalf("served %q", cn)
	}
	// Rotate: a new certificate from a new CA, written over the files (key first, as a careless
	// rotation would: in between the pair does not match and the old one stays in use).
	ca2 := newCA(t, "server-ca-2")
	certPEM, keyPEM := ca2.issue(t, "server-2", true)
	writeFile(t, ts.dir, "tls.key", keyPEM)
	if cn := servedCN(t, sv.public, ts.roots); cn != "server-1" {
		t.Fatalf("half-rotated pair: served %q, want the old certificate", cn)
	}
	writeFile(t, ts.dir, "tls.crt", certPEM)
	later := time.Now().Add(2 * time.Second)
	for _, f := range []string{ts.certFile, ts.keyFile} {
		if err := os.Chtimes(f, later, later); err != nil {
			t.Fatal(err)
		}
	}
	roots2 := x509.NewCertPool()
	roots2.AddCert(ca2.cert)
	if cn := servedCN(t, sv.public, roots2); cn != "server-2" {
		t.Fatalf("after rotation served %q, want server-2", cn)
	}
}

func apiKeysFile(t *testing.T, keys map[string]string) string {
	var b []byte
	b = append(b, "# id:sha256(key)\n"...)
	for id, k := range keys {
		sum := sha256.Sum256([]byte(k))
		b = append(b, id+":"+hex.EncodeToString(sum[:])+"\n"...)
	}
	return writeFile(t, t.TempDir(), "api-keys", b)
}

// internalToken is filing's token in the tests' callers files.
const internalToken = "internal-secret-token-0123456789abcdef"

// callersFile writes an --internal-callers-file of identity -> token.
func callersFile(t *testing.T, tokens map[string]string) string {
	var b []byte
	for id, tok := range tokens {
		sum := sha256.Sum256([]byte(tok))
		b = append(b, id+":"+hex.EncodeToString(sum[:])+"\n"...)
	}
	return writeFile(t, t.TempDir(), "internal-callers", b)
}

func TestAPIKeys(t *testing.T) {
	t.Parallel()
	tokenFile := writeFile(t, t.TempDir(), "token", []byte(internalToken+"\n"))
	sv := serve(t, config.Security{PortalAuth: s("api-key"), APIKeysFile: s(apiKeysFile(t, map[string]string{"portal-a": "key-a-secret"})),
		InternalCallersFile: s(callersFile(t, map[string]string{"filing": internalToken}))})
	conn := dial(t, sv.public, clientOpts{})
	wantCode(t, "no key", verify(t, conn), codes.Unauthenticated, ReasonCredentialMissing)
	wantCode(t, "wrong key", verify(t, conn, "authorization", "Bearer nope"), codes.Unauthenticated, ReasonCredentialInvalid)
	wantCode(t, "bearer key", verify(t, conn, "authorization", "Bearer key-a-secret"), codes.OK, "")
	if c := sv.api.lastCaller(); c != "apikey:portal-a" {
		t.Errorf("caller = %q", c)
	}
	wantCode(t, "x-api-key", verify(t, conn, "x-api-key", "key-a-secret"), codes.OK, "")
	// A portal key is not the internal credential.
	wantCode(t, "portal key on an internal RPC", cancelSession(t, conn, "authorization", "Bearer key-a-secret"),
		codes.Unauthenticated, ReasonCredentialInvalid)
	wantCode(t, "x-api-key on an internal RPC", cancelSession(t, conn, "x-api-key", "key-a-secret"),
		codes.Unauthenticated, ReasonCredentialMissing)
	wantCode(t, "internal token on an internal RPC", cancelSession(t, conn, "authorization", "Bearer "+internalToken), codes.OK, "")
	// The internal token is not a portal key either.
	wantCode(t, "internal token on a public RPC", verify(t, conn, "authorization", "Bearer "+internalToken),
		codes.Unauthenticated, ReasonCredentialInvalid)
	// Peers send the token through the Dialer.
	d, err := NewDialer(zap.NewNop(), config.Security{InternalTokenFile: s(tokenFile)})
	if err != nil {
		t.Fatal(err)
	}
	pc, _ := d.Dial(sv.internal)
	defer pc.Close()
	wantCode(t, "peer with token", cancelSession(t, pc), codes.OK, "")
	if c := sv.api.lastCaller(); c != "internal:filing" {
		t.Errorf("caller = %q", c)
	}
}

// With mTLS on a separate internal listener, a valid portal key gets nowhere near an internal RPC.
func TestPortalKeyRefusedOnTheInternalListener(t *testing.T) {
	t.Parallel()
	ts := newTLSSetup(t)
	sv := serve(t, config.Security{InternalGRPCAddr: s("split"), TLSCertFile: s(ts.certFile), TLSKeyFile: s(ts.keyFile),
		TLSClientCAFile: s(ts.clientCAFile), PortalAuth: s("api-key"), APIKeysFile: s(apiKeysFile(t, map[string]string{"p": "portal-key"}))})
	wantCode(t, "portal key on the public listener", verify(t, dial(t, sv.public, ts.client(false)), "x-api-key", "portal-key"), codes.OK, "")
	if err := cancelSession(t, dial(t, sv.internal, ts.client(false)), "x-api-key", "portal-key"); status.Code(err) != codes.Unavailable {
		t.Errorf("portal key on the internal listener: %v", err)
	}
	wantCode(t, "internal RPC on the public listener", cancelSession(t, dial(t, sv.public, ts.client(true)), "x-api-key", "portal-key"),
		codes.Unimplemented, "")
}

func TestPortalAuthNeedsAnInternalCredentialOnASharedListener(t *testing.T) {
	t.Parallel()
	_, err := NewSecureServer(zap.NewNop(), config.Security{PortalAuth: s("api-key"),
		APIKeysFile: s(apiKeysFile(t, map[string]string{"p": "k"}))})
	if err == nil {
		t.Fatal("portal auth with open internal RPCs on the same listener was accepted")
	}
}

func TestRateLimitPerCaller(t *testing.T) {
	t.Parallel()
	sv := serve(t, config.Security{InternalGRPCAddr: s("split"), PortalAuth: s("api-key"),
		APIKeysFile: s(apiKeysFile(t, map[string]string{"a": "key-a", "b": "key-b"}))},
		RateLimit{Method: pb.VerificationService_Verify_FullMethodName, Rate: 0.5, Burst: 2})
	conn := dial(t, sv.public, clientOpts{})
	for range 2 {
		wantCode(t, "within the burst", verify(t, conn, "x-api-key", "key-a"), codes.OK, "")
	}
	err := verify(t, conn, "x-api-key", "key-a")
	wantCode(t, "over the limit", err, codes.ResourceExhausted, ReasonRateLimited)
	if d := RetryDelay(err); d <= 0 || d > 2*time.Second {
		t.Errorf("retry delay %v, want (0, 2s]", d)
	}
	wantCode(t, "another caller has its own bucket", verify(t, conn, "x-api-key", "key-b"), codes.OK, "")
	// Methods without a limit are not limited.
	wantCode(t, "internal RPC", cancelSession(t, dial(t, sv.internal, clientOpts{})), codes.OK, "")
}

func TestLimiterForgetsIdleCallers(t *testing.T) {
	t.Parallel()
	l := newLimiter(RateLimit{Rate: 10, Burst: 5})
	now := time.Now()
	for i := range 1000 {
		if err := l.allow(string(rune(i)), now); err != nil {
			t.Fatal(err)
		}
	}
	if len(l.buckets) != 1000 {
		t.Fatalf("%d buckets", len(l.buckets))
	}
	// Once a bucket had time to fill up again it is dropped: a new one would behave the same.
	_ = l.allow("late", now.Add(l.idle+2*time.Second))
	if len(l.buckets) != 1 {
		t.Errorf("%d buckets after the idle period, want 1", len(l.buckets))
	}
	for range 5 {
		_ = l.allow("x", now)
	}
	if err := l.allow("x", now); err == nil {
		t.Error("sixth call within the same instant allowed with burst 5")
	}
}
