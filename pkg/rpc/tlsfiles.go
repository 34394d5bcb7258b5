package rpc

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"os"
	"sync"
	"time"

	"go.uber.org/zap"
	"google.golang.org/grpc/credentials"
)

// stamp identifies one version of a file: a rename over it (the usual atomic replace, also what a
// Kubernetes secret volume does) or a rewrite changes its modification time or size.
type stamp struct {
	mod  time.Time
	size int64
	ok   bool
}

func stampOf(path string) stamp {
	fi, err := os.Stat(path)
	if err != nil {
		return stamp{}
	}
	return stamp{mod: fi.ModTime(), size: fi.Size(), ok: true}
}

// reloading holds a value loaded from files and loads it again when one of them changes: get stats
// the files (cheap) and reloads on a new version. A reload that fails (a half-written rotation: new
// certificate, old key) keeps the previous value and logs; the next change of a file tries again.
type reloading[T any] struct {
	log    *zap.Logger
	what   string
	paths  []string
	load   func() (T, error)
	mu     sync.Mutex
	stamps []stamp
	val    T
}

// newReloading loads the value once; that first load must succeed.
func newReloading[T any](log *zap.Logger, what string, load func() (T, error), paths ...string) (*reloading[T], error) {
	r := &reloading[T]{log: log, what: what, paths: paths, load: load}
	r.stamps = r.stat()
	v, err := load()
	if err != nil {
		return nil, fmt.Errorf("%s: %w", what, err)
	}
	r.val = v
	return r, nil
}

func (r *reloading[T]) stat() []stamp {
	out := make([]stamp, len(r.paths))
	for i, p := range r.paths {
		out[i] = stampOf(p)
	}
	return out
}

func (r *reloading[T]) get() T {
	r.mu.Lock()
	defer r.mu.Unlock()
	now := r.stat()
	changed := false
	for i := range now {
		if now[i] != r.stamps[i] {
			changed = true
		}
	}
	if !changed {
		return r.val
	}
	r.stamps = now
	v, err := r.load()
	if err != nil {
		r.log.Warn("reloading failed, keeping the previous version", zap.String("what", r.what), zap.Error(err))
		return r.val
	}
	r.val = v
	r.log.Info("reloaded", zap.String("what", r.what), zap.Strings("files", r.paths))
	return r.val
}

func readPool(path string) (*x509.CertPool, error) {
	pem, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(pem) {
		return nil, fmt.Errorf("%s: no PEM certificate", path)
	}
	return pool, nil
}

// tlsMaterial is what one load of the TLS files yields.
type tlsMaterial struct {
	cert *tls.Certificate // server or client certificate; nil: none
	pool *x509.CertPool   // client CAs (server) or root CAs (client); nil: none / system roots
}

func loadTLSMaterial(certFile, keyFile, caFile string) (tlsMaterial, error) {
	var m tlsMaterial
	if certFile != "" {
		c, err := tls.LoadX509KeyPair(certFile, keyFile)
		if err != nil {
			return m, err
		}
		m.cert = &c
	}
	if caFile != "" {
		p, err := readPool(caFile)
		if err != nil {
			return m, err
		}
		m.pool = p
	}
	return m, nil
}

func nonEmpty(paths ...string) []string {
	var out []string
	for _, p := range paths {
		if p != "" {
			out = append(out, p)
		}
	}
	return out
}

// newTLSFiles watches a certificate, its key and a CA bundle (each optional).
func newTLSFiles(log *zap.Logger, what, certFile, keyFile, caFile string) (*reloading[tlsMaterial], error) {
	return newReloading(log, what, func() (tlsMaterial, error) { return loadTLSMaterial(certFile, keyFile, caFile) },
		nonEmpty(certFile, keyFile, caFile)...)
}

// reloadingCreds are TLS transport credentials built anew from the current files for every
// handshake, so a rotated certificate or CA bundle is used without a restart.
type reloadingCreds struct {
	files  *reloading[tlsMaterial]
	server bool
	// clientAuth is the server's demand on client certificates.
	clientAuth tls.ClientAuthType
}

func (c *reloadingCreds) current() credentials.TransportCredentials {
	m := c.files.get()
	cfg := &tls.Config{MinVersion: tls.VersionTLS12}
	if c.server {
		cfg.Certificates = []tls.Certificate{*m.cert}
		if m.pool != nil {
			cfg.ClientCAs, cfg.ClientAuth = m.pool, c.clientAuth
		}
	} else {
		if m.cert != nil {
			cfg.Certificates = []tls.Certificate{*m.cert}
		}
		cfg.RootCAs = m.pool
	}
	return credentials.NewTLS(cfg)
}

func (c *reloadingCreds) ClientHandshake(ctx context.Context, authority string, conn net.Conn) (net.Conn, credentials.AuthInfo, error) {
	return c.current().ClientHandshake(ctx, authority, conn)
}

func (c *reloadingCreds) ServerHandshake(conn net.Conn) (net.Conn, credentials.AuthInfo, error) {
	return c.current().ServerHandshake(conn)
}

func (c *reloadingCreds) Info() credentials.ProtocolInfo { return c.current().Info() }

func (c *reloadingCreds) Clone() credentials.TransportCredentials {
	cp := *c
	return &cp
}

func (c *reloadingCreds) OverrideServerName(string) error {
	return errors.New("overriding the server name is not supported")
}
