// Command pprofverification is the verification service with net/http/pprof on $PPROF_ADDR, for
// icpbench --pprof: the same server.Run as services/verification/cmd/verification, so a CPU profile
// under the Verify load shows where the service spends its time.
package main

import (
	"context"
	"fmt"
	"net/http"
	_ "net/http/pprof"
	"os"
	"os/signal"
	"syscall"

	"github.com/icpverify/icpverify/services/verification/server"
)

func main() {
	if addr := os.Getenv("PPROF_ADDR"); addr != "" {
		go func() { _ = http.ListenAndServe(addr, nil) }()
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	if err := server.Run(ctx, os.Args[1:]); err != nil {
		fmt.Fprintln(os.Stderr, "verification:", err)
		os.Exit(1)
	}
}
