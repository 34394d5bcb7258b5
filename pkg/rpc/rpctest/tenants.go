package rpctest

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"go.uber.org/zap"
	"google.golang.org/grpc"
	"google.golang.org/grpc/metadata"

	"github.com/icpverify/icpverify/pkg/config"
	"github.com/icpverify/icpverify/pkg/rpc"
)

// Tenants is a server behind API-key portal auth, its internal services on their own listener.
type Tenants struct {
	Public, Internal *grpc.ClientConn
}

// ServeTenants serves the services register adds behind --portal-auth=api-key with one API key per
// tenant ("key-<tenant>", key id = tenant), the internal ones on a separate listener, and returns
// connections to both, with opts (rate limits) on the server. As calls with a tenant's key.
func ServeTenants(t testing.TB, tenants []string, register func(s *rpc.Server), opts ...rpc.ServerOption) Tenants {
	t.Helper()
	var lines []string
	for _, tenant := range tenants {
		sum := sha256.Sum256([]byte("key-" + tenant))
		lines = append(lines, tenant+":"+hex.EncodeToString(sum[:]))
	}
	keyFile := filepath.Join(t.TempDir(), "api-keys")
	if err := os.WriteFile(keyFile, []byte(strings.Join(lines, "\n")+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	split, auth := "split", config.PortalAuthAPIKey
	srv, err := rpc.NewSecureServer(zap.NewNop(), config.Security{InternalGRPCAddr: &split, PortalAuth: &auth, APIKeysFile: &keyFile}, opts...)
	if err != nil {
		t.Fatal(err)
	}
	register(srv)
	pub, in := listen(t), listen(t)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { _ = srv.ServeListeners(ctx, pub, in, ShutdownTimeout); close(done) }()
	t.Cleanup(func() { cancel(); <-done })
	return Tenants{Public: Dial(t, pub.Addr().String()), Internal: Dial(t, in.Addr().String())}
}

// As is ctx carrying tenant's API key (see ServeTenants).
func As(ctx context.Context, tenant string) context.Context {
	return metadata.AppendToOutgoingContext(ctx, "x-api-key", "key-"+tenant)
}
