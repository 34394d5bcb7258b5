// Package suite runs the four icpverify services as separate processes on a fresh PostgreSQL
// database, with an in-process HTTP SMS gateway (the webhook provider's peer) that records every
// code. It is shared by the benchmark (cmd/icpbench) and later fault drills: it can stop a service
// gracefully (SIGTERM), kill it (SIGKILL), restart it with the same or other flags, and read a
// process's resident memory from /proc.
package suite

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
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
)

// Services are the four binaries, in start order.
var Services = []string{"filing", "verification", "sms-dispatch", "deadline"}

// DefaultAdminURL is the PostgreSQL server the developer machines and CI run.
const DefaultAdminURL = "postgres://postgres@127.0.0.1:5432/test?sslmode=disable"

// AdminURL returns TEST_DATABASE_URL or DefaultAdminURL.
func AdminURL() string {
	if u := os.Getenv("TEST_DATABASE_URL"); u != "" {
		return u
	}
	return DefaultAdminURL
}

// Edge is the REST/JSON edge's binary (services/edge): built with the services, started on demand
// (StartEdge) in front of filing and verification; it is not one of Services.
const Edge = "edge"

// Build compiles the four services and the edge into dir with `go build`, run from the workspace root root.
func Build(root, dir string) error {
	args := []string{"build", "-o", dir + "/"}
	for _, s := range append(slices.Clone(Services), Edge) {
		args = append(args, "github.com/icpverify/icpverify/services/"+s+"/cmd/"+s)
	}
	cmd := exec.Command("go", args...)
	cmd.Dir = root
	cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
	return cmd.Run()
}

// FreeAddr returns a loopback address with a port nobody listens on right now.
func FreeAddr() (string, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	defer l.Close()
	return l.Addr().String(), nil
}

// CreateDatabase creates a database named prefix_<random> on the server of adminURL and returns its URL.
func CreateDatabase(ctx context.Context, adminURL, prefix string) (name, url string, err error) {
	conn, err := pgx.Connect(ctx, adminURL)
	if err != nil {
		return "", "", fmt.Errorf("connect to PostgreSQL at %s: %w", adminURL, err)
	}
	defer conn.Close(ctx)
	b := make([]byte, 4)
	_, _ = rand.Read(b)
	name = prefix + "_" + hex.EncodeToString(b)
	if _, err := conn.Exec(ctx, "CREATE DATABASE "+name); err != nil {
		return "", "", err
	}
	cfg, err := pgx.ParseConfig(adminURL)
	if err != nil {
		return "", "", err
	}
	return name, fmt.Sprintf("postgres://%s@%s:%d/%s?sslmode=disable", cfg.User, cfg.Host, cfg.Port, name), nil
}

// DropDatabase drops a database created by CreateDatabase.
func DropDatabase(ctx context.Context, adminURL, name string) error {
	conn, err := pgx.Connect(ctx, adminURL)
	if err != nil {
		return err
	}
	defer conn.Close(ctx)
	_, err = conn.Exec(ctx, "DROP DATABASE IF EXISTS "+name+" WITH (FORCE)")
	return err
}

// WithParams adds query parameters (e.g. pool_max_conns=16) to a database URL.
func WithParams(url string, params ...string) string {
	sep := "?"
	if strings.Contains(url, "?") {
		sep = "&"
	}
	return url + sep + strings.Join(params, "&")
}

// Proc is one service process.
type Proc struct {
	Name string // e.g. "deadline" or "deadline#2"
	Bin  string // the binary's path
	Addr string // its --grpc-addr
	Args []string
	Env  []string // added to the environment

	mu   sync.Mutex
	out  bytes.Buffer
	cmd  *exec.Cmd
	done chan struct{}
}

func (p *Proc) Write(b []byte) (int, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	// keep the last 1 MiB only
	if p.out.Len() > 1<<20 {
		rest := append([]byte(nil), p.out.Bytes()[p.out.Len()-512<<10:]...)
		p.out.Reset()
		p.out.Write(rest)
	}
	return p.out.Write(b)
}

// Output is what the process wrote to stdout and stderr (the last MiB).
func (p *Proc) Output() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.out.String()
}

// Start starts the process with its Args.
func (p *Proc) Start() error {
	p.cmd = exec.Command(p.Bin, p.Args...)
	if len(p.Env) > 0 {
		p.cmd.Env = append(os.Environ(), p.Env...)
	}
	p.cmd.Stdout, p.cmd.Stderr = p, p
	if err := p.cmd.Start(); err != nil {
		return fmt.Errorf("start %s: %w", p.Name, err)
	}
	p.done = make(chan struct{})
	go func(cmd *exec.Cmd, done chan struct{}) { _ = cmd.Wait(); close(done) }(p.cmd, p.done)
	return nil
}

// PID is the process id, 0 when not started.
func (p *Proc) PID() int {
	if p.cmd == nil || p.cmd.Process == nil {
		return 0
	}
	return p.cmd.Process.Pid
}

// Running tells whether the process has not exited.
func (p *Proc) Running() bool {
	if p.done == nil {
		return false
	}
	select {
	case <-p.done:
		return false
	default:
		return true
	}
}

// Signal sends sig to the process.
func (p *Proc) Signal(sig syscall.Signal) error {
	if !p.Running() {
		return nil
	}
	return p.cmd.Process.Signal(sig)
}

// Wait waits up to limit for the process to exit; it reports whether it did.
func (p *Proc) Wait(limit time.Duration) bool {
	if p.done == nil {
		return true
	}
	select {
	case <-p.done:
		return true
	case <-time.After(limit):
		return false
	}
}

// Stop sends SIGTERM and waits up to limit, then SIGKILL.
func (p *Proc) Stop(limit time.Duration) {
	_ = p.Signal(syscall.SIGTERM)
	if !p.Wait(limit) {
		p.Kill()
	}
}

// Kill stops the process with SIGKILL, as a crash would, and waits for it.
func (p *Proc) Kill() {
	_ = p.Signal(syscall.SIGKILL)
	p.Wait(10 * time.Second)
}

// RSSKiB reads VmRSS of the process from /proc/<pid>/status.
func (p *Proc) RSSKiB() (int64, error) { return RSSKiB(p.PID()) }

// RSSKiB reads VmRSS of pid from /proc/<pid>/status.
func RSSKiB(pid int) (int64, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, err
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			f := strings.Fields(v)
			if len(f) > 0 {
				return strconv.ParseInt(f[0], 10, 64)
			}
		}
	}
	return 0, fmt.Errorf("no VmRSS for pid %d", pid)
}

// WaitHealthy polls grpc.health.v1 on the process's address until SERVING.
func (p *Proc) WaitHealthy(limit time.Duration) error {
	conn, err := Dial(p.Addr)
	if err != nil {
		return err
	}
	defer conn.Close()
	hc := healthpb.NewHealthClient(conn)
	end := time.Now().Add(limit)
	for time.Now().Before(end) {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		resp, err := hc.Check(ctx, &healthpb.HealthCheckRequest{})
		cancel()
		if err == nil && resp.GetStatus() == healthpb.HealthCheckResponse_SERVING {
			return nil
		}
		if !p.Running() {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	return fmt.Errorf("%s did not become healthy; output:\n%s", p.Name, tail(p.Output(), 4000))
}

func tail(s string, n int) string {
	if len(s) > n {
		return "..." + s[len(s)-n:]
	}
	return s
}

// Dial opens a plaintext gRPC client connection.
func Dial(addr string) (*grpc.ClientConn, error) {
	return grpc.NewClient(addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
}

// Config is how the suite is started.
type Config struct {
	BinDir      string
	DatabaseURL string // the suite's own database (every service its own schema in it)
	// PoolMaxConns per service (pgxpool pool_max_conns); 0 leaves pgx's default (max(4, NumCPU)).
	PoolMaxConns map[string]int
	HMACKeys     string
	WebhookURL   string
	LogLevel     string
	// Extra flags per service, appended after the defaults (a later flag wins).
	Extra map[string][]string
	// Env per service, added to the environment.
	Env map[string][]string
}

// DefaultHMACKeys is a fixed benchmark key (never a production key).
const DefaultHMACKeys = "bench1:00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff"

// SealKeys is the benchmark's --seal-keys of verification and sms-dispatch (never a production key):
// the codes they queue are sealed in the benchmark as in production, so it measures that cost too.
const SealKeys = "bench1:ffeeddccbbaa99887766554433221100ffeeddccbbaa99887766554433221100"

// Suite is the four services as processes.
type Suite struct {
	Cfg   Config
	Addrs map[string]string
	Procs map[string]*Proc
}

// Args returns the flags service name is started with (without --grpc-addr).
func (s *Suite) Args(name string) []string {
	c := s.Cfg
	url := c.DatabaseURL
	if n := c.PoolMaxConns[strings.SplitN(name, "#", 2)[0]]; n > 0 {
		url = WithParams(url, fmt.Sprintf("pool_max_conns=%d", n))
	}
	lvl := c.LogLevel
	if lvl == "" {
		lvl = "warn"
	}
	// The benchmark measures throughput, not the edge: its clients carry no credentials.
	args := []string{"--database-url=" + url, "--log-level=" + lvl, "--insecure-dev"}
	// A replica key such as "deadline#2" gets the flags of its service.
	switch strings.SplitN(name, "#", 2)[0] {
	case "filing":
		args = append(args, "--verification-addr="+s.Addrs["verification"], "--deadline-addr="+s.Addrs["deadline"])
	case "verification":
		keys := c.HMACKeys
		if keys == "" {
			keys = DefaultHMACKeys
		}
		args = append(args, "--sms-dispatch-addr="+s.Addrs["sms-dispatch"], "--filing-addr="+s.Addrs["filing"],
			"--deadline-addr="+s.Addrs["deadline"], "--hmac-keys="+keys, "--seal-keys="+SealKeys,
			// The phases move every pending timer of their orders to T (deadline, river): a noon resend
			// timer would fire with them and double the calls those figures time. It has its own tests.
			"--noon-resend=false")
	case "sms-dispatch":
		args = append(args, "--sms-provider=webhook", "--webhook-url="+c.WebhookURL, "--seal-keys="+SealKeys,
			"--verification-addr="+s.Addrs["verification"])
	case "deadline":
		args = append(args, "--verification-addr="+s.Addrs["verification"])
	}
	base := strings.SplitN(name, "#", 2)[0]
	return append(args, c.Extra[base]...)
}

// Start starts the four services on free ports and waits until each is healthy.
func Start(cfg Config) (*Suite, error) {
	s := &Suite{Cfg: cfg, Addrs: map[string]string{}, Procs: map[string]*Proc{}}
	for _, name := range Services {
		a, err := FreeAddr()
		if err != nil {
			return nil, err
		}
		s.Addrs[name] = a
	}
	for _, name := range Services {
		if _, err := s.StartProc(name, s.Addrs[name], s.Args(name)); err != nil {
			s.StopAll()
			return nil, err
		}
	}
	for _, name := range Services {
		if err := s.Procs[name].WaitHealthy(60 * time.Second); err != nil {
			s.StopAll()
			return nil, err
		}
	}
	return s, nil
}

// StartEdge starts the edge (Procs[Edge]) with its HTTP listener on a free port (Addrs[Edge], host:port)
// in front of the suite's filing and verification, plus extra flags, and waits until its /readyz
// answers 200 (both services healthy through it).
func (s *Suite) StartEdge(extra ...string) (*Proc, error) {
	addr, err := FreeAddr()
	if err != nil {
		return nil, err
	}
	lvl := s.Cfg.LogLevel
	if lvl == "" {
		lvl = "warn"
	}
	args := append([]string{"--http-addr=" + addr, "--filing-addr=" + s.Addrs["filing"],
		"--verification-addr=" + s.Addrs["verification"], "--log-level=" + lvl}, extra...)
	p := &Proc{Name: Edge, Bin: filepath.Join(s.Cfg.BinDir, Edge), Addr: addr, Args: args, Env: s.Cfg.Env[Edge]}
	if err := p.Start(); err != nil {
		return nil, err
	}
	s.Procs[Edge], s.Addrs[Edge] = p, addr
	end := time.Now().Add(60 * time.Second)
	for time.Now().Before(end) && p.Running() {
		if resp, err := http.Get("http://" + addr + "/readyz"); err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return p, nil
			}
		}
		time.Sleep(50 * time.Millisecond)
	}
	return nil, fmt.Errorf("the edge did not become ready; output:\n%s", tail(p.Output(), 4000))
}

// StartProc starts one process of a service under key (e.g. "deadline#2" for a second replica).
func (s *Suite) StartProc(key, addr string, args []string) (*Proc, error) {
	bin := strings.SplitN(key, "#", 2)[0]
	p := &Proc{Name: key, Bin: filepath.Join(s.Cfg.BinDir, bin), Addr: addr, Args: append([]string{"--grpc-addr=" + addr}, args...),
		Env: s.Cfg.Env[bin]}
	if err := p.Start(); err != nil {
		return nil, err
	}
	s.Procs[key] = p
	return p, nil
}

// Restart stops a service (SIGTERM, if still running) and starts it again on the same address with
// its flags plus extra (a later flag wins), then waits until healthy.
func (s *Suite) Restart(key string, extra ...string) error {
	old := s.Procs[key]
	old.Stop(20 * time.Second)
	p := &Proc{Name: old.Name, Bin: old.Bin, Addr: old.Addr, Args: append(append([]string(nil), old.Args...), extra...), Env: old.Env}
	if err := p.Start(); err != nil {
		return err
	}
	s.Procs[key] = p
	return p.WaitHealthy(60 * time.Second)
}

// StopAll stops every process (SIGTERM, then SIGKILL after 20s).
func (s *Suite) StopAll() {
	for _, p := range s.Procs {
		_ = p.Signal(syscall.SIGTERM)
	}
	for _, p := range s.Procs {
		if !p.Wait(20 * time.Second) {
			p.Kill()
		}
	}
}

// CPUSeconds is the user+system CPU time pid has used (from /proc/<pid>/stat).
func CPUSeconds(pid int) (float64, error) {
	return cpuSeconds(pid, false)
}

// cpuSeconds reads utime and stime of pid from /proc, plus, with children, the times of its
// children that have exited and been waited for (cutime, cstime).
func cpuSeconds(pid int, children bool) (float64, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, err
	}
	// fields after the ")" that ends comm: state is field 3; utime 14, stime 15, cutime 16, cstime 17.
	s := string(b)
	f := strings.Fields(s[strings.LastIndexByte(s, ')')+2:])
	if len(f) < 15 {
		return 0, fmt.Errorf("short /proc/%d/stat", pid)
	}
	n := 2
	if children {
		n = 4
	}
	total := 0.0
	for _, v := range f[11 : 11+n] {
		x, _ := strconv.ParseFloat(v, 64)
		total += x
	}
	return total / 100, nil // USER_HZ is 100 on Linux
}

// PostgresCPUSeconds sums the CPU seconds of every process named postgres (the server and its
// backends), with those of exited backends and autovacuum workers (the postmaster's reaped
// children): otherwise a process that exits between two snapshots takes its time with it.
func PostgresCPUSeconds() float64 {
	ents, _ := os.ReadDir("/proc")
	total := 0.0
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		comm, err := os.ReadFile(fmt.Sprintf("/proc/%d/comm", pid))
		if err != nil || strings.TrimSpace(string(comm)) != "postgres" {
			continue
		}
		if c, err := cpuSeconds(pid, true); err == nil {
			total += c
		}
	}
	return total
}
