// Package cli is the stellwerk command line. main only wires signals and
// calls Run, so every verb is testable.
package cli

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"

	"github.com/stellwerk/stellwerk/internal/admin"
	"github.com/stellwerk/stellwerk/internal/auth"
	"github.com/stellwerk/stellwerk/internal/catalog"
	"github.com/stellwerk/stellwerk/internal/config"
	"github.com/stellwerk/stellwerk/internal/flow"
	"github.com/stellwerk/stellwerk/internal/flowstore"
	"github.com/stellwerk/stellwerk/internal/serve"
	"github.com/stellwerk/stellwerk/internal/store"
	"github.com/stellwerk/stellwerk/internal/version"
)

const usage = `stellwerk — an LLM router for Envoy (ext_proc + xDS)

Usage:
  stellwerk serve [flags]              run the ext_proc, xDS and admin servers
  stellwerk mock-provider [flags]      run a fake OpenAI-compatible provider
  stellwerk config check [FILE]        validate a config file and exit
  stellwerk classify [--json] [FILE]   classify a chat request (--jsonl: one per stdin line)
  stellwerk eval pii|injection|task|task-varied|numbers   measure a classifier on its data set
  stellwerk eval injection-documents FILE…   false positives of the injection signal on benign documents
  stellwerk eval documents FILE…       what the injection, secret and personal-data detectors find in pieces of documents
  stellwerk eval routerbench CSV…      replay RouterBench through classify → select (cost/quality curve)
  stellwerk evals import --into F CSV  validate scorecards against the catalog and merge them
  stellwerk router train --out F CSV…  fit a per-prompt quality predictor on graded prompts (routing.quality_predictor)
  stellwerk explain [--json] FILE      print the full decision for a request without sending it
  stellwerk policy test [DIR]          run the Rego policy tests (shipped library + DIR)
  stellwerk policy show|diff VERSION…  a kept policy version's sources, or two versions' diff (docs/policy.md)
  stellwerk keys hash [KEY]            print the sha256 of a virtual key for the config
  stellwerk keys create|list|show|rotate|revoke|limits …   manage the key store's virtual keys (docs/keys.md)
  stellwerk keys provider set|list|delete …         a workspace's own provider keys (encrypted)
  stellwerk keys rotate-master         re-encrypt provider keys under the first master key
  stellwerk audit verify|export|witness|pubkey|prune …      the tamper-evident audit log (docs/audit.md)
  stellwerk replay DECISION_ID [--with-current]     decide a recorded request again (docs/audit.md)
  stellwerk replay --from T --to T [--workspace W]  what today's policy would decide differently
  stellwerk state copy --from OLD.yaml [--config NEW.yaml]   move one host's SQLite state into PostgreSQL (docs/deploy.md)
  stellwerk spend [--since T] [--until T] [--group-by key,model,day] [--format table|json|csv]
                                       the spend ledger, summed and grouped (docs/budgets.md)
  stellwerk feedback export [--since 7d] [--route R] [--format jsonl|csv]
                                       votes on answers, each with its decision's route, arm and model
  stellwerk routes list|show|diff|test|create|deploy|rollback|sync|report …
                                       named, versioned routes (docs/routes.md)
  stellwerk xds dump [--json]          what each connected Envoy was sent, accepted and refused
  stellwerk healthcheck URL            exit 0 when URL answers below 500 (container health checks)
  stellwerk version                    print the version

Run "stellwerk <command> -h" for the flags of a command.
`

// loadConfig loads the config a command names, with --state-dir (when
// given) overriding state.dir, as for serve.
func loadConfig(path, stateDir string) (*config.Config, error) {
	cfg, err := config.Load(path)
	if err != nil {
		return nil, err
	}
	if stateDir != "" {
		cfg.State.Dir = stateDir
	}
	return cfg, nil
}

// storeExists refuses a command that reads state from an embedded store
// that is not there: opening it would create an empty one and report
// nothing (a helper's --state-dir typo listed no keys and exited 0).
func storeExists(st config.State) error {
	if st.Postgres != nil {
		return nil
	}
	path := filepath.Join(st.Dir, store.SQLiteFile)
	if _, err := os.Stat(path); err != nil {
		return fmt.Errorf("%w at %s (check --state-dir or state.dir)", errNoStore, path)
	}
	return nil
}

// errNoStore: the embedded state store does not exist.
var errNoStore = errors.New("no state store")

// ErrUsage marks a command-line mistake (exit status 2).
var ErrUsage = errors.New("usage error")

// Run executes one command.
func Run(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) error {
	err := dispatch(ctx, args, stdin, stdout, stderr)
	if errors.Is(err, ErrUsage) && len(args) > 1 && slices.ContainsFunc(args[1:], isHelpFlag) {
		// The usage the verb printed was asked for: exit 0, as `keys -h`
		// and `help` do (every other verb's -h exited 2: the CLI probe).
		return nil
	}
	return err
}

// isHelpFlag is a flag asking for a verb's usage.
func isHelpFlag(arg string) bool { return arg == "-h" || arg == "-help" || arg == "--help" }

func dispatch(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return ErrUsage
	}
	switch args[0] {
	case "serve":
		return runServe(ctx, args[1:], stderr)
	case "mock-provider":
		return runMock(ctx, args[1:], stdout, stderr)
	case "classify":
		return runClassify(args[1:], stdin, stdout, stderr)
	case "eval":
		return runEval(args[1:], stdout, stderr)
	case "router":
		return runRouter(args[1:], stdout, stderr)
	case "explain":
		return runExplain(ctx, args[1:], stdin, stdout, stderr)
	case "replay":
		return runReplay(ctx, args[1:], stdout, stderr)
	case "healthcheck":
		return runHealthcheck(ctx, args[1:], stdout, stderr)
	case "policy":
		if len(args) < 2 {
			fmt.Fprint(stderr, policyUsage)
			return ErrUsage
		}
		switch args[1] {
		case "test":
			return runPolicyTest(ctx, args[2:], stdout, stderr)
		case "show", "diff":
			return runPolicyVersions(ctx, args[1], args[2:], stdout, stderr)
		}
		fmt.Fprint(stderr, policyUsage)
		return ErrUsage
	case "keys":
		return runKeys(ctx, args[1:], stdin, stdout, stderr)
	case "audit":
		return runAudit(ctx, args[1:], stdout, stderr)
	case "spend":
		return runSpend(ctx, args[1:], stdout, stderr)
	case "feedback":
		return runFeedback(ctx, args[1:], stdout, stderr)
	case "state":
		return runState(ctx, args[1:], stdout, stderr)
	case "routes":
		return runRoutes(ctx, args[1:], stdout, stderr)
	case "evals":
		return runEvalsImport(args[1:], stdout, stderr)
	case "xds":
		return runXDS(ctx, args[1:], stdout, stderr)
	case "config":
		if len(args) < 2 || args[1] != "check" {
			fmt.Fprint(stderr, "usage: stellwerk config check [--config FILE | FILE]\n")
			return ErrUsage
		}
		return runConfigCheck(ctx, args[2:], stdout, stderr)
	case "version", "--version", "-v":
		fmt.Fprintln(stdout, "stellwerk", version.String())
		return nil
	case "help", "-h", "--help":
		if len(args) > 1 && args[0] == "help" && args[1] != "help" {
			return Run(ctx, append(args[1:2:2], "-h"), stdin, stdout, stderr) // help VERB: the verb's own usage
		}
		fmt.Fprint(stdout, usage)
		return nil
	default:
		fmt.Fprintf(stderr, "unknown command %q\n\n%s", args[0], usage)
		return ErrUsage
	}
}

// defaultConfigPath is $STELLWERK_CONFIG or ./stellwerk.yaml.
func defaultConfigPath() string {
	if p := os.Getenv("STELLWERK_CONFIG"); p != "" {
		return p
	}
	return "stellwerk.yaml"
}

func runServe(ctx context.Context, args []string, stderr io.Writer) error {
	fs := flag.NewFlagSet("serve", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var o serve.Options
	fs.StringVar(&o.ConfigPath, "config", defaultConfigPath(), "config file (env STELLWERK_CONFIG)")
	fs.StringVar(&o.GRPC, "grpc", "", "ext_proc + xDS gRPC address, overrides server.grpc")
	fs.StringVar(&o.Admin, "admin", "", "admin HTTP address, overrides server.admin")
	fs.StringVar(&o.Listen, "listen", "", "address Envoy listens on for clients, overrides envoy.listener")
	fs.StringVar(&o.StateDir, "state-dir", "", "directory of the embedded key store, overrides state.dir")
	level := fs.String("log-level", "info", "debug, info, warn or error")
	format := fs.String("log-format", "json", "json or console")
	if err := fs.Parse(args); err != nil {
		return ErrUsage
	}
	var problems []string
	lvl, err := zapcore.ParseLevel(*level)
	if err != nil {
		problems = append(problems, fmt.Sprintf("-log-level: %q is not a level", *level))
	}
	if *format != "json" && *format != "console" {
		problems = append(problems, fmt.Sprintf("-log-format: %q is not json or console", *format))
	}
	if fs.NArg() > 0 {
		problems = append(problems, fmt.Sprintf("unexpected arguments: %s", strings.Join(fs.Args(), " ")))
	}
	if len(problems) > 0 {
		fmt.Fprintln(stderr, strings.Join(problems, "\n"))
		return ErrUsage
	}
	log := newLogger(stderr, lvl, *format)
	defer log.Sync() //nolint:errcheck
	return serve.Run(ctx, o, log)
}

// ErrConfigProblems marks a config that `serve` would refuse (exit status 1).
var ErrConfigProblems = errors.New("serve would refuse this config")

// runConfigCheck runs serve's start-up checks (serve.Check: policy compile
// and tests included), lists every problem, then the warnings about what
// is missing but not fatal.
func runConfigCheck(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("config check", flag.ContinueOnError)
	fs.SetOutput(stderr)
	cfgPath := fs.String("config", defaultConfigPath(), "config file (env STELLWERK_CONFIG), as the other commands take it; or FILE")
	stateDir := fs.String("state-dir", "", "directory of the embedded state store whose deployed routes are checked, overrides state.dir")
	pos, err := parseAnywhere(fs, args)
	both := false
	fs.Visit(func(f *flag.Flag) { both = both || f.Name == "config" && len(pos) > 0 })
	if err != nil || len(pos) > 1 || both {
		fmt.Fprintln(stderr, "usage: stellwerk config check [--config FILE | FILE] [--state-dir DIR] (one file)")
		return ErrUsage
	}
	path := *cfgPath
	if len(pos) == 1 {
		path = pos[0]
	}
	cfg, err := loadConfig(path, *stateDir)
	if err != nil {
		// Every problem of the file on a line of its own, as serve.Check's.
		lines := []error{err}
		var joined interface{ Unwrap() []error }
		if errors.As(err, &joined) {
			lines = joined.Unwrap()
		}
		for _, p := range lines {
			fmt.Fprintf(stdout, "error: %v\n", p)
		}
		return fmt.Errorf("%s: %d problem(s): %w", path, len(lines), ErrConfigProblems)
	}
	warnings, problems := serve.Check(ctx, cfg, catalog.OSEnv)
	for _, p := range problems {
		fmt.Fprintf(stdout, "error: %v\n", p)
	}
	for _, w := range warnings {
		fmt.Fprintf(stdout, "warning: policy: %s\n", w)
	}
	cat, err := catalog.New(cfg, catalog.OSEnv)
	var live *deployedRoutes
	if cat != nil {
		// Deployed routes first: a live version this config would break
		// is a problem, and the file is not "ok" (it printed ok above it).
		live = &deployedRoutes{cfg: cfg, env: flow.EnvFor(cfg, cat)}
		defer live.close()
		sctx, cancel := boundStore(ctx)
		broken, berr := live.broken(sctx)
		cancel()
		if berr != nil {
			fmt.Fprintf(stdout, "warning: deployed routes not checked: %v\n", berr)
		}
		for _, e := range broken {
			fmt.Fprintf(stdout, "error: deployed route does not load under this config (a running serve refuses it; one started with it answers the route 503 route_unavailable): %v; deploy a version that loads first, or keep a removed model's id as an alias (routing.aliases)\n", e)
		}
		problems = append(problems, broken...)
	}
	if err == nil && len(problems) == 0 {
		fmt.Fprintf(stdout, "%s: ok (%d providers, %d models, default %s)\n", path, len(cat.Providers()), len(cat.Models()), cat.Default.ID)
	}
	if cat != nil {
		for _, m := range cat.MissingCredentials() {
			fmt.Fprintf(stdout, "warning: no credential for provider %s\n", m)
		}
		for _, w := range serve.Unservable(cfg, cat) {
			fmt.Fprintf(stdout, "warning: %s\n", w)
		}
		// The route files serve syncs from routes/ beside the config: one
		// that does not load against this config keeps its route's live
		// version, so it is a warning, named with its file and line (they
		// were not checked here: the config probe).
		files, err := flowstore.ReadDir(flowstore.Dir(path), flow.EnvFor(cfg, cat))
		if err != nil {
			fmt.Fprintf(stdout, "warning: routes: %v\n", err)
		}
		for _, f := range files {
			if f.Err != nil {
				sctx, cancel := boundStore(ctx)
				fmt.Fprintf(stdout, "warning: %s\n", live.warning(sctx, f))
				cancel()
				continue
			}
			for _, w := range f.Flow.Warnings() {
				fmt.Fprintf(stdout, "warning: %v\n", w)
			}
		}
	}
	for _, m := range admin.NewTokens(cfg.Admin.Tokens, catalog.OSEnv.Getenv).Missing() {
		fmt.Fprintf(stdout, "warning: admin token %s is not set\n", m)
	}
	for _, m := range auth.New(cfg, catalog.OSEnv.Getenv).Missing() {
		fmt.Fprintf(stdout, "warning: virtual key %s is not set; requests with it will get 401\n", m)
	}
	if free := config.FreeByOmission(cfg); len(free) > 0 {
		fmt.Fprintf(stdout, "warning: no price for model(s) %s: they count as free, win optimize: cost and count nothing against budgets; "+
			"give each its price, or write out price: {input_per_mtok: 0, output_per_mtok: 0} for one that is free (docs/catalog.md)\n", strings.Join(free, ", "))
	}
	for _, w := range config.CABundleWarnings(cfg) {
		fmt.Fprintf(stdout, "warning: %s\n", w)
	}
	for _, w := range []string{config.MemoryBudgetsOnSharedStore(cfg), config.PlainWebhook(cfg)} {
		if w != "" {
			fmt.Fprintf(stdout, "warning: %s\n", w)
		}
	}
	if a := cfg.Audit; a.IsEnabled() && !a.SigningKey.IsSet() && cfg.State.Postgres != nil {
		fmt.Fprintf(stdout, "warning: audit.signing_key is not set: each replica would sign the audit log with its own generated key (docs/audit.md)\n")
	}
	if cfg.Envoy.Mode == config.ModeClusters && !cfg.Server.GRPCStreamToken.IsSet() {
		fmt.Fprintf(stdout, "warning: server.grpc_stream_token is not set: in clusters mode a route of your Envoy that lets a client choose "+
			"its cluster (cluster_header) lets that client reach stellwerk_xds and read every provider key; set it and send it from "+
			"Envoy's gRPC clients (docs/envoy.md)\n")
	}
	if len(cfg.Admin.Tokens) == 0 {
		fmt.Fprintf(stdout, "note: no admin.tokens: the admin API answers only /healthz and /readyz\n")
	}
	if len(problems) > 0 {
		return fmt.Errorf("%s: %d problem(s): %w", path, len(problems), ErrConfigProblems)
	}
	return nil
}

func newLogger(w io.Writer, lvl zapcore.Level, format string) *zap.Logger {
	ec := zap.NewProductionEncoderConfig()
	ec.EncodeTime = zapcore.ISO8601TimeEncoder
	var enc zapcore.Encoder
	if format == "console" {
		ec.EncodeLevel = zapcore.CapitalLevelEncoder
		enc = zapcore.NewConsoleEncoder(ec)
	} else {
		enc = zapcore.NewJSONEncoder(ec)
	}
	return zap.New(zapcore.NewCore(enc, zapcore.AddSync(w), lvl))
}
