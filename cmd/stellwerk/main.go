// Command stellwerk is the LLM router: see internal/cli for the commands.
package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"github.com/stellwerk/stellwerk/internal/cli"
	"github.com/stellwerk/stellwerk/internal/serve"
	"github.com/stellwerk/stellwerk/internal/sysmon"
)

func main() {
	if len(os.Args) > 1 && os.Args[1] == "serve" {
		sysmon.Reexec() // before anything else: the runtime reads GODEBUG once
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := cli.Run(ctx, os.Args[1:], os.Stdin, os.Stdout, os.Stderr); err != nil {
		if errors.Is(err, cli.ErrUsage) {
			os.Exit(2)
		}
		if errors.Is(err, serve.ErrStoppedStarting) {
			// Stopped before it served, as asked (a rollout that moved on):
			// no failure. It exited 1 with what start-up was doing, such
			// as a policy test "failed: context canceled" (the container
			// probe).
			fmt.Fprintln(os.Stderr, "stellwerk:", err)
			return
		}
		fmt.Fprintln(os.Stderr, "stellwerk:", err)
		os.Exit(1)
	}
}
