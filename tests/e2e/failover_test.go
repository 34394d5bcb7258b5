package e2e

import (
	"bytes"
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	filingv1 "github.com/icpverify/icpverify/pkg/gen/icp/filing/v1"
	"github.com/icpverify/icpverify/pkg/pg/pgtest"
)

// A running filing process whose database turns read-only (a demoted primary behind a stable address)
// answers writes Unavailable, never Internal and never OK, and writes again by itself once the server
// is writable: its read-only connections were dropped, none is kept.
func TestReadOnlyFlipUnderARunningService(t *testing.T) {
	c := pgtest.NewCluster(t)
	setReadOnly := func(on bool) {
		t.Helper()
		ctx := context.Background()
		conn, err := pgx.Connect(ctx, c.URL("postgres"))
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close(ctx)
		if _, err := conn.Exec(ctx, fmt.Sprintf("ALTER SYSTEM SET default_transaction_read_only = %v", on)); err != nil {
			t.Fatal(err)
		}
		if _, err := conn.Exec(ctx, "SELECT pg_reload_conf()"); err != nil {
			t.Fatal(err)
		}
	}
	addr := freeAddr(t)
	s := &suite{t: t, procs: map[string]*proc{}}
	p := &proc{name: "filing", out: &bytes.Buffer{}, args: []string{"--grpc-addr=" + addr, "--insecure-dev",
		"--database-url=" + c.URL("postgres") + "&target_session_attrs=read-write", "--create-rate=0"}}
	p.start(t)
	s.procs["filing"] = p
	t.Cleanup(func() { _ = p.cmd.Process.Kill(); _, _ = p.cmd.Process.Wait() })
	conn := s.dial(addr)
	s.waitHealthy("filing", conn)
	filing := filingv1.NewFilingServiceClient(conn)
	n := 0
	create := func() error {
		n++
		principal := person("周九", "13812345678")
		_, err := filing.CreateOrder(ctx(t), &filingv1.CreateOrderRequest{RequestId: fmt.Sprintf("ro-%d", n),
			Spec: firstFiling(principal, &filingv1.Website{Domain: fmt.Sprintf("ro%d.cn", n), Person: principal})})
		return err
	}
	if err := create(); err != nil {
		t.Fatalf("CreateOrder on the writable server: %v", err)
	}

	setReadOnly(true)
	var last error
	eventually(t, 10*time.Second, "a write refused as Unavailable", func() (bool, string) {
		last = create()
		return status.Code(last) == codes.Unavailable, fmt.Sprint(last)
	})
	for range 5 {
		if err := create(); status.Code(err) != codes.Unavailable {
			t.Fatalf("a write on the read-only server: %v, want Unavailable", err)
		}
	}

	setReadOnly(false)
	eventually(t, 10*time.Second, "writes again after the server became writable", func() (bool, string) {
		err := create()
		return err == nil, fmt.Sprint(err)
	})
}
