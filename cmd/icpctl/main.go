// Command icpctl is the command-line client of the ICP filing SMS-verification suite; the commands
// live in cmd/internal/cli. Run `icpctl help` for the commands, flags and exit codes.
package main

import (
	"context"
	"os"
	"os/signal"
	"syscall"

	"github.com/icpverify/icpverify/cmd/internal/cli"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := cli.Main(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}
