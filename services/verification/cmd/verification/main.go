// Command verification runs the verification service: SMS verification sessions of ICP filing orders.
package main

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"github.com/icpverify/icpverify/services/verification/server"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	if err := server.Run(ctx, os.Args[1:]); err != nil {
		fmt.Fprintln(os.Stderr, "verification:", err)
		os.Exit(1)
	}
}
