package deploy

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	deadlinev1 "github.com/icpverify/icpverify/pkg/gen/icp/deadline/v1"
	filingv1 "github.com/icpverify/icpverify/pkg/gen/icp/filing/v1"
)

func testDatabaseURL() string {
	if u := os.Getenv("TEST_DATABASE_URL"); u != "" {
		return u
	}
	return "postgres://postgres@127.0.0.1:5432/test?sslmode=disable"
}

// started is one running service.
type started struct {
	l     launch         // as started (local ports, files and database)
	ports map[int]int    // manifest port -> local port
	out   *syncBuffer    // its output
	done  chan struct{}  // closed when it exits
	cmd   *exec.Cmd      // the process
	spec  map[string]any // the container spec of the Deployment
	byNm  map[string]int // its named container ports (manifest numbers)
}

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// TestStartAsDeployed starts the five binaries exactly as the example overlay's Deployments start them
// (same args and environment, the image's ENV included, the Secrets' files), with four changes only:
// DATABASE_URL is the test database with a fresh schema per service, a port is moved when the
// manifest's port is privileged or taken here, a peer's Service name becomes 127.0.0.1 and its port,
// and the Secrets' example (placeholder) contents, which the services refuse to start with, are
// replaced by the real ones deploy/gen-secrets.sh makes, as an operator does.
// Then every probe of the Deployment, the image's HEALTHCHECK and the credentials are tried.
func TestStartAsDeployed(t *testing.T) {
	r := render(t, "deploy/k8s/overlays/example")
	tmp := t.TempDir()
	secrets := generateSecrets(t, filepath.Join(tmp, "secrets"))
	transport = secrets.clientTLS(t)
	t.Cleanup(func() { transport = insecure.NewCredentials() })
	suffix := make([]byte, 4)
	_, _ = rand.Read(suffix)

	procs := map[string]*started{}
	for _, svc := range services {
		l, c := deploymentLaunch(t, r, svc)
		byName, _ := containerPorts(c)
		procs[svc] = &started{l: l, ports: map[int]int{}, spec: c, byNm: byName}
		// Ports: keep the manifest's unless privileged or taken here.
		for _, addr := range l.listeners() {
			p := portOf(addr)
			procs[svc].ports[p] = p
			if p < 1024 || !free(addr) {
				procs[svc].ports[p] = freePort(t)
			}
		}
	}
	// The peers' certificates are for the names the manifests dial (the edge dials the public listeners).
	for _, svc := range services {
		for flag, peer := range peerFlags {
			if v := procs[svc].l.value(flag); v != "" {
				host, _, _ := net.SplitHostPort(v)
				secrets.checkServes(t, peer, host, procs[svc].l.source+" --"+flag)
			}
		}
	}
	for _, svc := range services {
		s := procs[svc]
		l := s.l
		root := filepath.Join(tmp, svc)
		// The mounted files, under a per-service root; values naming them are moved there.
		files := map[string][]byte{}
		for p, data := range l.files {
			data = secrets.file(data)
			local := filepath.Join(root, p)
			if err := os.MkdirAll(filepath.Dir(local), 0o755); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(local, data, 0o444); err != nil {
				t.Fatal(err)
			}
			files[local] = data
		}
		rewrite := func(flag, v string) string {
			if _, ok := l.files[v]; ok {
				return filepath.Join(root, v)
			}
			switch flag {
			case "grpc-addr", "internal-grpc-addr", "admin-addr", "http-addr":
				host, _, _ := net.SplitHostPort(v)
				return net.JoinHostPort(host, strconv.Itoa(s.ports[portOf(v)]))
			case "database-url":
				return testDatabaseURL()
			}
			if peer, ok := peerFlags[flag]; ok {
				// The peer's Service port reaches a container port (checked in TestKubernetes).
				host, port, _ := net.SplitHostPort(v)
				target := servicePortTarget(t, r, peer, host, toInt(port))
				return net.JoinHostPort("127.0.0.1", strconv.Itoa(procs[peer].ports[target]))
			}
			return v
		}
		var args []string
		for _, a := range l.args {
			name, v, ok := strings.Cut(strings.TrimLeft(a, "-"), "=")
			if ok && strings.HasPrefix(a, "-") {
				a = "--" + name + "=" + rewrite(name, v)
			}
			args = append(args, a)
		}
		env := map[string]string{}
		for k, v := range l.env {
			env[k] = rewrite(binaries[svc].envToFlag[k], secrets.env(k, v))
		}
		if database[svc] {
			env["DATABASE_URL"] = testDatabaseURL()
			schema := "t_deploy_" + strings.ReplaceAll(svc, "-", "_") + "_" + hex.EncodeToString(suffix)
			env["DATABASE_SCHEMA"] = schema
			t.Cleanup(func() { dropSchema(schema) })
		}
		s.l = launch{source: l.source, service: svc, args: args, env: env, files: files, envFrom: l.envFrom}
	}

	for _, svc := range services {
		s := procs[svc]
		s.cmd = exec.Command(binaries[svc].path, s.l.args...)
		for k, v := range s.l.env {
			s.cmd.Env = append(s.cmd.Env, k+"="+v)
		}
		s.out = &syncBuffer{}
		s.cmd.Stdout, s.cmd.Stderr = s.out, s.out
		if err := s.cmd.Start(); err != nil {
			t.Fatal(err)
		}
		s.done = make(chan struct{})
		go func() { _ = s.cmd.Wait(); close(s.done) }()
		t.Cleanup(func() {
			_ = s.cmd.Process.Signal(syscall.SIGTERM)
			select {
			case <-s.done:
			case <-time.After(20 * time.Second):
				_ = s.cmd.Process.Kill()
				<-s.done
			}
		})
	}

	for _, svc := range services {
		t.Run(svc, func(t *testing.T) {
			s := procs[svc]
			fail := func(format string, args ...any) {
				t.Helper()
				t.Fatalf("%s (started as %s)\nargs: %v\noutput:\n%s", fmt.Sprintf(format, args...), s.l.source, s.l.args, s.out.String())
			}
			// Every gRPC listener SERVING, the admin listener's /healthz and /readyz 200.
			for kind, addr := range s.l.listeners() {
				local := net.JoinHostPort("127.0.0.1", strconv.Itoa(portOf(addr)))
				var err error
				if kind == lisAdmin || kind == lisHTTP {
					err = waitFor(s, func() error { return httpOK("http://" + local + "/healthz") })
					if err == nil {
						err = waitFor(s, func() error { return httpOK("http://" + local + "/readyz") })
					}
				} else {
					err = waitFor(s, func() error { return grpcServing(local) })
				}
				if err != nil {
					fail("%s listener %s: %v", kind, addr, err)
				}
			}
			// The Deployment's probes, as the kubelet runs them.
			for _, probe := range []string{"startupProbe", "readinessProbe", "livenessProbe"} {
				p := dig(s.spec, probe)
				if p == nil {
					continue
				}
				kind, port, path := probeSpec(p, s.byNm)
				local := net.JoinHostPort("127.0.0.1", strconv.Itoa(s.ports[port]))
				var err error
				if kind == lisAdmin {
					err = httpOK("http://" + local + path)
				} else {
					err = grpcServing(local)
				}
				if err != nil {
					fail("%s (%s port %d): %v", probe, kind, port, err)
				}
			}
			// The image's HEALTHCHECK, with the probe built as the Dockerfile builds it.
			_, d := imageLaunch(t, svc)
			argv := healthcheckArgv(t, d)
			var args []string
			for _, a := range argv[1:] {
				if v, ok := strings.CutPrefix(a, "-grpc-addr="); ok {
					a = "-grpc-addr=127.0.0.1:" + strconv.Itoa(s.ports[portOf(v)])
				}
				if v, ok := strings.CutPrefix(a, "-http-url=http://"); ok {
					hostport, path, _ := strings.Cut(v, "/")
					a = "-http-url=http://127.0.0.1:" + strconv.Itoa(s.ports[portOf(hostport)]) + "/" + path
				}
				args = append(args, a)
			}
			if out, err := exec.Command(probeBin, args...).CombinedOutput(); err != nil {
				fail("HEALTHCHECK %v: %v\n%s", args, err, out)
			}
		})
	}

	// The credentials from the Secrets are in force: internal RPCs need the token, portal RPCs a key.
	t.Run("credentials", func(t *testing.T) {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		d := procs["deadline"]
		conn := dial(t, "127.0.0.1:"+strconv.Itoa(portOf(d.l.internalAddr())))
		client := deadlinev1.NewDeadlineServiceClient(conn)
		if _, err := client.ListDeadlines(ctx, &deadlinev1.ListDeadlinesRequest{}); status.Code(err) != codes.Unauthenticated {
			t.Errorf("deadline without the internal token: %v, want Unauthenticated", err)
		}
		// Its own token is an identity, but ListDeadlines is the operator's (least privilege).
		own := strings.SplitN(strings.TrimSpace(string(d.l.files[d.l.value("internal-token-file")])), "\n", 2)[0]
		withOwn := metadata.AppendToOutgoingContext(ctx, "authorization", "Bearer "+own)
		if _, err := client.ListDeadlines(withOwn, &deadlinev1.ListDeadlinesRequest{}); status.Code(err) != codes.PermissionDenied {
			t.Errorf("deadline's own token on the operator's ListDeadlines: %v, want PermissionDenied", err)
		}
		withOperator := metadata.AppendToOutgoingContext(ctx, "authorization", "Bearer "+secrets.token("operator"))
		if _, err := client.ListDeadlines(withOperator, &deadlinev1.ListDeadlinesRequest{}); err != nil {
			t.Errorf("deadline with the operator's token from gen-secrets.sh: %v", err)
		}
		// The edge loaded its page key: the 短信核验 page is on (it is off without a credential).
		e := procs["edge"]
		if err := httpOK("http://127.0.0.1:" + strconv.Itoa(portOf(e.l.listeners()[lisHTTP])) + "/"); err != nil {
			t.Errorf("the edge's page with the generated page key: %v", err)
		}
		f := procs["filing"]
		fc := filingv1.NewFilingServiceClient(dial(t, "127.0.0.1:"+strconv.Itoa(portOf(f.l.listeners()[lisGRPC]))))
		if _, err := fc.ListOrders(ctx, &filingv1.ListOrdersRequest{}); status.Code(err) != codes.Unauthenticated {
			t.Errorf("filing's public API without an API key: %v, want Unauthenticated", err)
		}
	})
}

func waitFor(s *started, check func() error) error {
	deadline := time.Now().Add(30 * time.Second)
	for {
		err := check()
		if err == nil {
			return nil
		}
		select {
		case <-s.done:
			return fmt.Errorf("the process exited: %v", err)
		default:
		}
		if time.Now().After(deadline) {
			return err
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// transport is how the test's clients reach the started services: TLS checked against the generated
// CA while TestStartAsDeployed runs them (the manifests turn TLS on).
var transport = insecure.NewCredentials()

func grpcServing(addr string) error {
	conn, err := grpc.NewClient(addr, grpc.WithTransportCredentials(transport))
	if err != nil {
		return err
	}
	defer conn.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	resp, err := healthpb.NewHealthClient(conn).Check(ctx, &healthpb.HealthCheckRequest{})
	if err != nil {
		return err
	}
	if resp.GetStatus() != healthpb.HealthCheckResponse_SERVING {
		return fmt.Errorf("health %s", resp.GetStatus())
	}
	return nil
}

func httpOK(url string) error {
	c := http.Client{Timeout: 2 * time.Second}
	resp, err := c.Get(url)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode < 200 || resp.StatusCode > 399 { // the kubelet's success range
		return fmt.Errorf("GET %s: %s", url, resp.Status)
	}
	return nil
}

func dial(t *testing.T, addr string) *grpc.ClientConn {
	t.Helper()
	conn, err := grpc.NewClient(addr, grpc.WithTransportCredentials(transport))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return conn
}

// free tells whether addr can be listened on here.
func free(addr string) bool {
	l, err := net.Listen("tcp", addr)
	if err != nil {
		return false
	}
	l.Close()
	return true
}

func freePort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

func dropSchema(schema string) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, testDatabaseURL())
	if err != nil {
		return
	}
	defer conn.Close(ctx)
	_, _ = conn.Exec(ctx, "DROP SCHEMA IF EXISTS "+pgx.Identifier{schema}.Sanitize()+" CASCADE")
}
