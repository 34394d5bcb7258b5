// Command pprofservice is one of the four services or the edge, named by $PPROF_SERVICE, with net/http/pprof on
// $PPROF_ADDR, for icpbench --pprof: the same server.Run as the service's own command, so a CPU
// profile under load shows where that service spends its time.
package main

import (
	"context"
	"fmt"
	"net/http"
	_ "net/http/pprof"
	"os"
	"os/signal"
	"syscall"

	deadline "github.com/icpverify/icpverify/services/deadline/server"
	edge "github.com/icpverify/icpverify/services/edge/server"
	filing "github.com/icpverify/icpverify/services/filing/server"
	smsdispatch "github.com/icpverify/icpverify/services/sms-dispatch/server"
	verification "github.com/icpverify/icpverify/services/verification/server"
)

func main() {
	runs := map[string]func(context.Context, []string) error{
		"filing": filing.Run, "verification": verification.Run, "sms-dispatch": smsdispatch.Run, "deadline": deadline.Run,
		"edge": edge.Run,
	}
	name := os.Getenv("PPROF_SERVICE")
	run, ok := runs[name]
	if !ok {
		fmt.Fprintf(os.Stderr, "pprofservice: PPROF_SERVICE=%q is not a service\n", name)
		os.Exit(2)
	}
	if addr := os.Getenv("PPROF_ADDR"); addr != "" {
		go func() { _ = http.ListenAndServe(addr, nil) }()
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.Args[1:]); err != nil {
		fmt.Fprintln(os.Stderr, name+":", err)
		os.Exit(1)
	}
}
