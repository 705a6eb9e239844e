package cli

import (
	"context"
	"flag"
	"fmt"
	"io"
	"net/http"
	"time"
)

// runHealthcheck is `stellwerk healthcheck URL`: a container health check
// for images without a shell or curl (compose/Dockerfile is distroless).
// Healthy (exit 0) when URL answers with a status below 500 within the
// timeout: stellwerk's /readyz answers 503 until it is ready, a provider
// answers anything at all once it listens.
func runHealthcheck(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("healthcheck", flag.ContinueOnError)
	fs.SetOutput(stderr)
	timeout := fs.Duration("timeout", 2*time.Second, "how long to wait for the answer")
	pos, err := parseAnywhere(fs, args)
	if err != nil || len(pos) != 1 {
		fmt.Fprintln(stderr, "usage: stellwerk healthcheck [--timeout 2s] URL")
		return ErrUsage
	}
	ctx, cancel := context.WithTimeout(ctx, *timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, pos[0], nil)
	if err != nil {
		return err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return fmt.Errorf("unhealthy: %w", err)
	}
	resp.Body.Close()
	if resp.StatusCode >= 500 {
		return fmt.Errorf("unhealthy: %s answered %s", pos[0], resp.Status)
	}
	fmt.Fprintf(stdout, "healthy: %s\n", resp.Status)
	return nil
}
