// Command sms-dispatch runs the SMS dispatch service; see server.Run for its flags.
package main

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"github.com/icpverify/icpverify/services/sms-dispatch/server"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	if err := server.Run(ctx, os.Args[1:]); err != nil {
		fmt.Fprintln(os.Stderr, "sms-dispatch:", err)
		os.Exit(1)
	}
}
