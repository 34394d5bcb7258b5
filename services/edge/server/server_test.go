package server

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"runtime/debug"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"

	"github.com/icpverify/icpverify/pkg/rpc/rpctest"
)

func get(t *testing.T, url string) (int, string) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// The edge serves /openapi.json with every REST path, /healthz, and /readyz that follows the
// services' health; SIGTERM (ctx) stops it cleanly.
func TestRun(t *testing.T) {
	hs := health.NewServer()
	peer := rpctest.Peer(t, func(s grpc.ServiceRegistrar) { healthpb.RegisterHealthServer(s, hs) })
	httpAddr, adminAddr := rpctest.FreeAddr(t), rpctest.FreeAddr(t)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		done <- Run(ctx, []string{"--http-addr=" + httpAddr, "--admin-addr=" + adminAddr, "--filing-addr=" + peer,
			"--verification-addr=" + peer, "--log-level=error"})
	}()
	base := "http://" + httpAddr
	for start := time.Now(); ; time.Sleep(20 * time.Millisecond) {
		if resp, err := http.Get(base + "/healthz"); err == nil {
			resp.Body.Close()
			break
		}
		if time.Since(start) > 10*time.Second {
			t.Fatal("the edge did not start")
		}
	}

	code, body := get(t, base+"/openapi.json")
	var doc struct {
		Swagger string
		Paths   map[string]map[string]any
	}
	if err := json.Unmarshal([]byte(body), &doc); err != nil || code != 200 || doc.Swagger != "2.0" {
		t.Fatalf("/openapi.json: %d %v", code, err)
	}
	want := map[string]string{
		"/v1/orders": "get post", "/v1/orders/{orderId}": "get patch", "/v1/orders/{orderId}:submit": "post",
		"/v1/orders/{orderId}:cancel": "post", "/v1/verify": "post", "/v1/resend": "post",
		"/v1/orders/{orderId}/verification": "get", "/v1/links/{token}": "get",
	}
	for path, methods := range want {
		for _, m := range strings.Fields(methods) {
			if doc.Paths[path][m] == nil {
				t.Errorf("/openapi.json lacks %s %s", m, path)
			}
		}
	}
	if len(doc.Paths) != len(want) {
		t.Errorf("/openapi.json has %d paths, want %d (only the public RPCs)", len(doc.Paths), len(want))
	}

	for _, u := range []string{base + "/readyz", "http://" + adminAddr + "/readyz"} {
		if code, body := get(t, u); code != 200 {
			t.Errorf("%s: %d %s", u, code, body)
		}
	}
	// --gc-percent's default is the process's GC target once the edge runs.
	if prev := debug.SetGCPercent(defaultGCPercent); prev != defaultGCPercent {
		t.Errorf("GC percent %d, want --gc-percent's default %d", prev, defaultGCPercent)
	}
	hs.SetServingStatus("", healthpb.HealthCheckResponse_NOT_SERVING)
	if code, _ := get(t, base+"/readyz"); code != 503 {
		t.Errorf("/readyz with the services not serving: %d, want 503", code)
	}
	if code, body := get(t, "http://"+adminAddr+"/metrics"); code != 200 || !strings.Contains(body, "edge_http_requests_total") {
		t.Errorf("/metrics: %d", code)
	}

	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the edge did not stop")
	}
}

func TestRunRefusesBadFlags(t *testing.T) {
	dir := t.TempDir()
	write := func(name, content string) string {
		path := filepath.Join(dir, name)
		if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
		return path
	}
	key := "--page-api-key-file=" + write("key", "3f1c0a9d7e5b4c2a8f6e1d3b5a7c9e0f")
	for _, args := range [][]string{{"--max-body-bytes=0"}, {"--gc-percent=0"}, {"--http-addr="}, {"--request-timeout=0s"}, {"--peer-tls-cert-file=x"},
		// The page's secret: too short, the example's placeholder, missing.
		{"--http-addr=127.0.0.1:0", key, "--page-secret-file=" + write("short", "0123456789abcdef")},
		{"--http-addr=127.0.0.1:0", key, "--page-secret-file=" + write("example", "example-edge-page-secret-do-not-use-generate-one-with-gen-secrets")},
		{"--http-addr=127.0.0.1:0", key, "--page-secret-file=" + filepath.Join(dir, "missing")}} {
		if err := Run(context.Background(), args); err == nil {
			t.Errorf("%v: started", args)
		}
	}
}
