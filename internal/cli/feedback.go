package cli

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/stellwerk/stellwerk/internal/feedback"
	"github.com/stellwerk/stellwerk/internal/store"
)

const feedbackUsage = `usage: stellwerk feedback export [flags]
  The votes on routed answers (POST /v1/feedback, POST /admin/feedback), each with its
  decision's workspace, route, route version, arm and served model, without prompts:
  stellwerk feedback export --since 7d --route support --format csv
Works on the store the config names (state.dir or state.postgres), beside running servers.

`

// runFeedback is `stellwerk feedback export …`.
func runFeedback(ctx context.Context, args []string, stdout, stderr io.Writer) (err error) {
	if len(args) == 0 || args[0] != "export" {
		fmt.Fprint(stderr, feedbackUsage)
		return ErrUsage
	}
	fs := flag.NewFlagSet("feedback export", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprint(stderr, feedbackUsage)
		fs.PrintDefaults()
	}
	cfgPath := fs.String("config", defaultConfigPath(), "config file (env STELLWERK_CONFIG)")
	stateDir := fs.String("state-dir", "", "directory of the embedded store, overrides state.dir (as for serve)")
	sinceFlag := fs.String("since", "", "only votes cast since this time (RFC 3339, a date, or a duration ago: 36h, 7d; default: all)")
	route := fs.String("route", "", "only votes on this named route's decisions")
	format := fs.String("format", "jsonl", "jsonl or csv")
	if err := fs.Parse(args[1:]); err != nil {
		return ErrUsage
	}
	var problems []string
	if fs.NArg() > 0 {
		problems = append(problems, "unexpected arguments: "+strings.Join(fs.Args(), " "))
	}
	if *format != "jsonl" && *format != "csv" {
		problems = append(problems, fmt.Sprintf("--format: %q is not jsonl or csv", *format))
	}
	since, err := parseWhen(*sinceFlag)
	if err != nil {
		problems = append(problems, "--since: "+err.Error())
	}
	if len(problems) > 0 {
		fmt.Fprintln(stderr, strings.Join(problems, "\n"))
		return ErrUsage
	}
	cfg, err := loadConfig(*cfgPath, *stateDir)
	if err != nil {
		return err
	}
	if err := storeExists(cfg.State); err != nil {
		return fmt.Errorf("feedback: %w", err)
	}
	ctx, cancel := boundStore(ctx)
	defer cancel()
	defer func() { err = storeTimedOut(ctx, err) }()
	db, err := store.Open(ctx, cfg.State, os.Getenv)
	if err != nil {
		return fmt.Errorf("feedback: %w", err)
	}
	defer db.Close()
	st, err := feedback.Open(ctx, db)
	if err != nil {
		return fmt.Errorf("feedback: %w", err)
	}
	es, err := st.Since(ctx, since, *route)
	if err != nil {
		return fmt.Errorf("feedback: %w", err)
	}
	if *format == "csv" {
		return feedback.WriteCSV(stdout, es)
	}
	return feedback.WriteJSONL(stdout, es)
}
