package observe

import (
	"context"
	"strings"
	"testing"
	"time"

	"go.uber.org/zap"

	"github.com/icpverify/icpverify/pkg/config"
)

// Tracing is off without --otlp-endpoint, and on with one even while the collector is down: the
// exporter connects lazily, so a missing collector costs spans, never the service's start or stop.
func TestFromFlags(t *testing.T) {
	f := config.NewFlags("svc")
	c := config.RegisterCommon(f, "127.0.0.1:0", "svc")
	if err := f.Parse(nil); err != nil {
		t.Fatal(err)
	}
	o, err := FromFlags(zap.NewNop(), "svc", c)
	if err != nil || o.Tracing() || o.ServerHandler() != nil || o.ClientHandler() != nil {
		t.Fatalf("defaults: tracing %v, err %v", o.Tracing(), err)
	}
	if stop, err := o.StartAdmin(); err != nil || o.AdminAddr() != "" {
		t.Fatalf("no --admin-addr: %q, %v", o.AdminAddr(), err)
	} else {
		stop()
	}

	f = config.NewFlags("svc")
	c = config.RegisterCommon(f, "127.0.0.1:0", "svc")
	if err := f.Parse([]string{"--otlp-endpoint=127.0.0.1:1", "--trace-sample-ratio=0.5", "--admin-addr=127.0.0.1:0"}); err != nil {
		t.Fatal(err)
	}
	o, err = FromFlags(zap.NewNop(), "svc", c)
	if err != nil || !o.Tracing() || o.ServerHandler() == nil || o.ClientHandler() == nil {
		t.Fatalf("with an endpoint: tracing %v, err %v", o.Tracing(), err)
	}
	_, span := o.TracerProvider().Tracer("t").Start(context.Background(), "x")
	span.End()
	// The collector is down: the flush fails, but Shutdown must give up when its context ends, so a
	// missing collector cannot hold up the service's stop.
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	start := time.Now()
	_ = o.Shutdown(ctx)
	if waited := time.Since(start); waited > 3*time.Second {
		t.Errorf("Shutdown took %v with a 1s context", waited)
	}

	f = config.NewFlags("svc")
	c = config.RegisterCommon(f, "127.0.0.1:0", "svc")
	if err := f.Parse([]string{"--store=memory", "--trace-sample-ratio=2"}); err != nil {
		t.Fatal(err)
	}
	if err := c.Check(); err == nil || !strings.Contains(err.Error(), "trace-sample-ratio") {
		t.Errorf("--trace-sample-ratio=2: %v", err)
	}
}
