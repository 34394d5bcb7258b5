// Package devserver runs the whole suite in one process: the four services' own Run functions,
// each with its own gRPC server on loopback, talking to each other over gRPC exactly as in
// production, and the HTTP/JSON edge in front of filing and verification. On the memory store it needs no database and no network beyond 127.0.0.1.
package devserver

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"strconv"
	"sync"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"

	"github.com/icpverify/icpverify/pkg/config"
	deadline "github.com/icpverify/icpverify/services/deadline/server"
	edge "github.com/icpverify/icpverify/services/edge/server"
	filing "github.com/icpverify/icpverify/services/filing/server"
	smsdispatch "github.com/icpverify/icpverify/services/sms-dispatch/server"
	verification "github.com/icpverify/icpverify/services/verification/server"
)

// Services names the four services in start order.
var Services = []string{"filing", "verification", "sms-dispatch", "deadline"}

var runners = map[string]func(context.Context, []string) error{
	"filing": filing.Run, "verification": verification.Run, "sms-dispatch": smsdispatch.Run, "deadline": deadline.Run,
}

// DevHMACKey is the development key used with --store=postgres, so codes survive a restart there.
// It is public: never use it outside a developer's machine.
const DevHMACKey = "dev1:69637076657269667920646576656c6f706d656e74206b6579206e6f742073656372657421"

// DevSealKey is the development --seal-keys of verification and sms-dispatch with --store=postgres,
// so the codes they keep sealed while queued survive a restart there. It is public, like DevHMACKey.
const DevSealKey = "dev1:69637076657269667920646576207365616c206b65793a207075626c69632121"

// Options configure the suite.
type Options struct {
	// Store is config.StoreMemory or config.StorePostgres (then DatabaseURL is needed).
	Store       string
	DatabaseURL string
	// Host and BasePort: the services listen on BasePort..BasePort+3 in Services order; BasePort 0
	// picks free ports (tests).
	Host     string
	BasePort int
	LogLevel string
	// Window is filing's verification window (0: the service default, 24h).
	Window time.Duration
	// EdgeAddr is where the HTTP/JSON edge listens ("": a free port on Host; "off": no edge).
	EdgeAddr string
}

// Suite is a running suite.
type Suite struct {
	Addrs map[string]string
	// EdgeURL is the edge's base URL, http://host:port ("" without an edge).
	EdgeURL string
	// edgeAddr is where the edge listens ("": no edge), known before verification starts.
	edgeAddr string
	errs     chan error
	wg       sync.WaitGroup
}

// Start starts the four services and returns once each answers its health check. They stop when ctx ends; Wait then returns.
func Start(ctx context.Context, o Options) (*Suite, error) {
	if o.Host == "" {
		o.Host = "127.0.0.1"
	}
	if o.LogLevel == "" {
		o.LogLevel = "warn"
	}
	s := &Suite{Addrs: map[string]string{}, errs: make(chan error, len(Services)+1)}
	for i, name := range Services {
		port := 0
		if o.BasePort != 0 {
			port = o.BasePort + i
		} else {
			p, err := freePort(o.Host)
			if err != nil {
				return nil, err
			}
			port = p
		}
		s.Addrs[name] = net.JoinHostPort(o.Host, strconv.Itoa(port))
	}
	if o.EdgeAddr != "off" {
		// Chosen before the services start: verification's SMS carry links to the edge's page.
		s.edgeAddr = o.EdgeAddr
		if s.edgeAddr == "" {
			p, err := freePort(o.Host)
			if err != nil {
				return nil, err
			}
			s.edgeAddr = net.JoinHostPort(o.Host, strconv.Itoa(p))
		}
	}
	runCtx, cancel := context.WithCancel(ctx)
	for _, name := range Services {
		args := s.args(name, o)
		s.wg.Go(func() {
			if err := runners[name](runCtx, args); err != nil {
				s.errs <- fmt.Errorf("%s: %w", name, err)
				cancel() // one service down means the suite is down
			}
		})
	}
	for _, name := range Services {
		if err := s.waitHealthy(runCtx, name); err != nil {
			cancel()
			s.wg.Wait()
			return nil, errors.Join(err, s.firstErr())
		}
	}
	if o.EdgeAddr != "off" {
		if err := s.startEdge(runCtx, cancel, o); err != nil {
			cancel()
			s.wg.Wait()
			return nil, errors.Join(err, s.firstErr())
		}
	}
	go func() { s.wg.Wait(); cancel(); close(s.errs) }()
	return s, nil
}

func (s *Suite) args(name string, o Options) []string {
	args := []string{"--store=" + o.Store, "--grpc-addr=" + s.Addrs[name], "--log-level=" + o.LogLevel}
	if o.Store == config.StorePostgres {
		// The development server keeps its open defaults on PostgreSQL too, and each service logs them.
		args = append(args, "--database-url="+o.DatabaseURL, "--insecure-dev")
	}
	switch name {
	case "filing":
		args = append(args, "--verification-addr="+s.Addrs["verification"], "--deadline-addr="+s.Addrs["deadline"])
		if o.Window > 0 {
			args = append(args, "--verification-window="+o.Window.String())
		}
	case "verification":
		args = append(args, "--sms-dispatch-addr="+s.Addrs["sms-dispatch"], "--filing-addr="+s.Addrs["filing"],
			"--deadline-addr="+s.Addrs["deadline"])
		if s.edgeAddr != "" { // a clickable link to the edge's page in every console SMS
			args = append(args, "--verify-link-base=http://"+s.edgeAddr+"/v")
		}
		if o.Store == config.StorePostgres {
			args = append(args, "--hmac-keys="+DevHMACKey, "--seal-keys="+DevSealKey)
		}
	case "sms-dispatch":
		// The console provider prints every text (codes included): this is the development server.
		args = append(args, "--sms-provider=console", "--verification-addr="+s.Addrs["verification"])
		if o.Store == config.StorePostgres {
			args = append(args, "--seal-keys="+DevSealKey)
		}
	case "deadline":
		args = append(args, "--verification-addr="+s.Addrs["verification"])
	}
	return args
}

// startEdge starts the edge in front of filing and verification and waits for its /readyz.
func (s *Suite) startEdge(ctx context.Context, cancel context.CancelFunc, o Options) error {
	addr := s.edgeAddr
	s.EdgeURL = "http://" + addr
	args := []string{"--http-addr=" + addr, "--filing-addr=" + s.Addrs["filing"], "--verification-addr=" + s.Addrs["verification"],
		"--log-level=" + o.LogLevel, "--page-no-credential"} // the services run --portal-auth=none here
	s.wg.Go(func() {
		if err := edge.Run(ctx, args); err != nil {
			s.errs <- fmt.Errorf("edge: %w", err)
			cancel()
		}
	})
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		if resp, err := http.Get(s.EdgeURL + "/readyz"); err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
		}
		select {
		case <-ctx.Done():
			return errors.New("edge did not start")
		case <-time.After(50 * time.Millisecond):
		}
	}
	return errors.New("edge did not become ready within 30s")
}

// Wait blocks until every service stopped and returns the first failure, if any.
func (s *Suite) Wait() error {
	s.wg.Wait()
	return s.firstErr()
}

func (s *Suite) firstErr() error {
	var all []error
	for {
		select {
		case err, ok := <-s.errs:
			if !ok {
				return errors.Join(all...)
			}
			all = append(all, err)
		default:
			return errors.Join(all...)
		}
	}
}

func (s *Suite) waitHealthy(ctx context.Context, name string) error {
	conn, err := grpc.NewClient(s.Addrs[name], grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		return err
	}
	defer conn.Close()
	hc := healthpb.NewHealthClient(conn)
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		cctx, cancel := context.WithTimeout(ctx, time.Second)
		resp, err := hc.Check(cctx, &healthpb.HealthCheckRequest{})
		cancel()
		if err == nil && resp.GetStatus() == healthpb.HealthCheckResponse_SERVING {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("%s did not start", name)
		case <-time.After(50 * time.Millisecond):
		}
	}
	return fmt.Errorf("%s did not become healthy within 30s", name)
}

func freePort(host string) (int, error) {
	l, err := net.Listen("tcp", net.JoinHostPort(host, "0"))
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}
