package rpc

import (
	"fmt"
	"time"

	"go.uber.org/zap"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/keepalive"

	"github.com/icpverify/icpverify/pkg/config"
	"github.com/icpverify/icpverify/pkg/observe"
)

// Dial returns a plaintext client connection without credentials (development, tools, tests).
// Services dial their peers through a Dialer.
func Dial(addr string) (*grpc.ClientConn, error) {
	return (&Dialer{}).Dial(addr)
}

// Dialer dials peer services with the peer TLS files (re-read when they change) and the internal
// token, as configured by the security flags.
type Dialer struct {
	creds credentials.TransportCredentials // nil: plaintext
	token credentials.PerRPCCredentials    // nil: none
	obs   *observe.Observer                // nil: no client spans
}

// Observe makes the calls of the connections dialed from now on start client spans and carry the
// trace context to the peer, when o has tracing on.
func (d *Dialer) Observe(o *observe.Observer) { d.obs = o }

// NewDialer returns the dialer the security flags describe.
func NewDialer(log *zap.Logger, sec config.Security) (*Dialer, error) {
	if err := sec.Check(); err != nil {
		return nil, err
	}
	d := &Dialer{}
	if sec.PeerTLS() {
		files, err := newTLSFiles(log, "peer TLS", config.Get(sec.PeerTLSCertFile), config.Get(sec.PeerTLSKeyFile), config.Get(sec.PeerTLSCAFile))
		if err != nil {
			return nil, err
		}
		d.creds = &reloadingCreds{files: files}
	}
	if path := config.Get(sec.InternalTokenFile); path != "" {
		token, err := newReloading(log, "internal token", func() (string, error) { return readOwnToken(path) }, path)
		if err != nil {
			return nil, fmt.Errorf("--internal-token-file: %w", err)
		}
		d.token = tokenCreds{token: token}
	}
	return d, nil
}

// Dial returns a client connection to a peer service. It connects lazily, so a service starts even
// when its peers are not up yet; the outbox relays retry until they are.
func (d *Dialer) Dial(addr string) (*grpc.ClientConn, error) {
	creds := d.creds
	if creds == nil {
		creds = insecure.NewCredentials()
	}
	opts := []grpc.DialOption{
		grpc.WithTransportCredentials(creds),
		grpc.WithKeepaliveParams(keepalive.ClientParameters{Time: 30 * time.Second, Timeout: 10 * time.Second}),
		grpc.WithDefaultServiceConfig(`{"loadBalancingConfig":[{"round_robin":{}}]}`),
	}
	if d.token != nil {
		opts = append(opts, grpc.WithPerRPCCredentials(d.token))
	}
	if h := d.obs.ClientHandler(); h != nil {
		opts = append(opts, grpc.WithStatsHandler(h))
	}
	conn, err := grpc.NewClient(addr, opts...)
	if err != nil {
		return nil, fmt.Errorf("dial %s: %w", addr, err)
	}
	return conn, nil
}
