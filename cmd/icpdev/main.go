// Command icpdev runs the whole verification suite in one process for development: the four
// services on loopback gRPC and the HTTP/JSON edge, the in-memory store and the console SMS provider (codes are printed).
// --store=postgres switches the same binary to PostgreSQL.
package main

import (
	"context"
	"fmt"

	"github.com/icpverify/icpverify/cmd/internal/devserver"
	"github.com/icpverify/icpverify/pkg/config"
)

func main() { config.Main("icpdev", run) }

func run(ctx context.Context, args []string) error {
	f := config.NewFlags("icpdev")
	store := f.String("store", config.StoreMemory, "storage: memory (nothing to install; nothing survives a restart) or postgres")
	dbURL := f.String("database-url", "postgres://postgres@127.0.0.1:5432/test?sslmode=disable", "PostgreSQL URL with --store=postgres")
	host := f.String("host", "127.0.0.1", "address the four gRPC servers bind")
	basePort := f.Int("base-port", 50051, "filing listens here, verification +1, sms-dispatch +2, deadline +3")
	logLevel := f.String("log-level", "warn", "services' log level (JSON on stderr)")
	window := f.Duration("verification-window", 0, "verification window per submission (0: 24h)")
	edgeAddr := f.String("edge-addr", config.DefaultEdgeHTTPAddr, "address the HTTP/JSON edge (REST API, /openapi.json) listens on; off: none")
	if err := f.Parse(args); err != nil {
		return err
	}
	suite, err := devserver.Start(ctx, devserver.Options{
		Store: *store, DatabaseURL: *dbURL, Host: *host, BasePort: *basePort, LogLevel: *logLevel, Window: *window,
		EdgeAddr: *edgeAddr,
	})
	if err != nil {
		return err
	}
	for _, name := range devserver.Services {
		fmt.Printf("%-13s listening on %s\n", name, suite.Addrs[name])
	}
	if suite.EdgeURL != "" {
		fmt.Printf("%-13s listening on %s (REST API; OpenAPI at %s/openapi.json; 短信核验 page at %s/)\n", "edge", suite.EdgeURL,
			suite.EdgeURL, suite.EdgeURL)
	}
	fmt.Printf("store: %s; SMS provider: console (codes are printed below). Try: make demo. Ctrl-C stops.\n", *store)
	err = suite.Wait()
	fmt.Println("stopped")
	return err
}
