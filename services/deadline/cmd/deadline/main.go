// Command deadline runs the deadline service: durable verification-deadline timers and the sweeper
// that closes incomplete sessions when they fall due.
package main

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"github.com/icpverify/icpverify/services/deadline/server"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	if err := server.Run(ctx, os.Args[1:]); err != nil {
		fmt.Fprintln(os.Stderr, "deadline:", err)
		os.Exit(1)
	}
}
