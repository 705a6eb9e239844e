package cli

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"

	"github.com/stellwerk/stellwerk/internal/apierr"
	"github.com/stellwerk/stellwerk/internal/auth"
	"github.com/stellwerk/stellwerk/internal/catalog"
	"github.com/stellwerk/stellwerk/internal/classify"
	"github.com/stellwerk/stellwerk/internal/config"
	"github.com/stellwerk/stellwerk/internal/decision"
	"github.com/stellwerk/stellwerk/internal/flow"
	"github.com/stellwerk/stellwerk/internal/flowstore"
	"github.com/stellwerk/stellwerk/internal/keys"
	"github.com/stellwerk/stellwerk/internal/policy"
	"github.com/stellwerk/stellwerk/internal/qpredict"
	"github.com/stellwerk/stellwerk/internal/request"
	"github.com/stellwerk/stellwerk/internal/store"
)

// ErrTestsFailed marks failing policy tests (exit status 1).
var ErrTestsFailed = errors.New("policy tests failed")

// runPolicyTest runs every *_test.rego: `stellwerk policy test [--no-library] [DIR]`.
func runPolicyTest(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("policy test", flag.ContinueOnError)
	fs.SetOutput(stderr)
	noLib := fs.Bool("no-library", false, "test DIR alone, without the shipped library")
	verbose := fs.Bool("v", false, "list every test")
	pos, err := parseAnywhere(fs, args)
	if err != nil || len(pos) > 1 {
		fmt.Fprintln(stderr, "usage: stellwerk policy test [--no-library] [-v] [DIR]")
		return ErrUsage
	}
	dir := ""
	if len(pos) == 1 {
		dir = pos[0]
	}
	src := policy.Source{Library: !*noLib, Dir: dir}
	results, err := policy.RunTests(ctx, src)
	if err != nil {
		return err
	}
	warnings, err := policy.Unreachable(src)
	if err != nil {
		return err
	}
	for _, w := range warnings {
		fmt.Fprintf(stderr, "warning: %s\n", authorPath(w, dir))
	}
	failed := 0
	for _, r := range results {
		switch {
		case !r.Passed:
			failed++
			// The file as the author named it, and the test's line, as
			// opa test prints them (the policy-author probe).
			fmt.Fprintf(stdout, "FAIL %s (%s:%d): %s\n", r.Name, authorPath(r.File, dir), r.Line, r.Error)
		case *verbose:
			fmt.Fprintf(stdout, "PASS %s\n", r.Name)
		default:
			continue
		}
		// What the test print()ed: under a failure, or with -v.
		for _, line := range strings.Split(strings.TrimRight(r.Output, "\n"), "\n") {
			if line != "" {
				fmt.Fprintf(stdout, "    %s\n", line)
			}
		}
	}
	fmt.Fprintf(stdout, "%d passed, %d failed\n", len(results)-failed, failed)
	if failed > 0 {
		return ErrTestsFailed
	}
	if len(results) == 0 {
		fmt.Fprintln(stderr, "warning: no tests found")
	}
	return nil
}

// authorPath is a policy file as its author named it: the engine's
// "dir/x.rego" (what warnings and results start with) under the directory
// given (the docs walkthrough: warnings said dir/mine.rego).
func authorPath(s, dir string) string {
	if rest, ok := strings.CutPrefix(s, "dir/"); ok && dir != "" {
		return filepath.Join(dir, rest)
	}
	return s
}

// explanation is `stellwerk explain --json`.
type explanation struct {
	Deny      []string  `json:"deny"`
	Error     *apiError `json:"error,omitempty"`
	Chosen    *chosen   `json:"chosen"`
	Reason    string    `json:"reason,omitempty"`
	Fallbacks []string  `json:"fallbacks"`
	// Attempts is the failover order: where the request goes if the chosen
	// model's provider fails (docs/failover.md).
	Attempts      []string          `json:"attempts"`
	Candidates    []candidateLine   `json:"candidates"`
	PolicyVersion string            `json:"policy_version"`
	Objective     string            `json:"objective,omitempty"`
	QualityFloor  float64           `json:"quality_floor"`
	MaxCostEUR    *float64          `json:"max_cost_eur"`
	Tags          map[string]string `json:"tags,omitempty"`
	LogLevel      string            `json:"log_level,omitempty"`
	Workspace     string            `json:"workspace"`
	RequestPolicy string            `json:"request_policy_fingerprint,omitempty"`
	Input         inputSummary      `json:"input"`
	// Route is what a named route decided (model: route:<name>).
	Route *flow.Outcome `json:"route,omitempty"`
	// MissingCredentials are the providers whose credential is not set
	// where explain runs (its environment, its files); their models are
	// rejected for "auto" here although serve, with the keys, would
	// consider them. WithCredentials is the decision with them set.
	MissingCredentials []string    `json:"missing_credentials,omitempty"`
	WithCredentials    *hypothesis `json:"with_credentials,omitempty"`
}

// hypothesis is the decision explain would print if every provider had
// its credential.
type hypothesis struct {
	Chosen *chosen   `json:"chosen,omitempty"`
	Reason string    `json:"reason,omitempty"`
	Error  *apiError `json:"error,omitempty"`
}

type apiError struct {
	Status  int    `json:"status"`
	Code    string `json:"code"`
	Message string `json:"message"`
}

type chosen struct {
	ID        string `json:"id"`
	Provider  string `json:"provider"`
	Residency string `json:"residency"`
}

type candidateLine struct {
	ID               string  `json:"id"`
	Provider         string  `json:"provider"`
	Residency        string  `json:"residency"`
	Verdict          string  `json:"verdict"`
	Reason           string  `json:"reason"`
	EstimatedCostEUR float64 `json:"estimated_cost_eur"`
	Quality          float64 `json:"quality"`
}

type inputSummary struct {
	Model          string         `json:"model"`
	Task           string         `json:"task"`
	Complexity     string         `json:"complexity"`
	Language       string         `json:"language"`
	Sensitivity    string         `json:"sensitivity"`
	Risk           string         `json:"risk"`
	PII            map[string]int `json:"pii"`
	Secrets        int            `json:"secrets"`
	InjectionScore float64        `json:"injection_score"`
	InputTokens    int            `json:"input_tokens"`
	Scan           string         `json:"scan"`
	ScanLimit      string         `json:"scan_limit,omitempty"`
	Unread         map[string]int `json:"unread,omitempty"`
	// Terms are the classify.terms counts, as Rego reads them
	// (input.classification.terms.<name>.count).
	Terms map[string]int `json:"terms,omitempty"`
}

// runExplain prints the full decision trace for a request without sending
// it: `stellwerk explain [--json] [--config FILE] [--key KEY] [--policy JSON] REQUEST.json`.
func runExplain(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("explain", flag.ContinueOnError)
	fs.SetOutput(stderr)
	asJSON := fs.Bool("json", false, "print one JSON object")
	cfgPath := fs.String("config", defaultConfigPath(), "stellwerk.yaml to decide with")
	key := fs.String("key", "", "decide as the principal of this virtual key")
	headerPolicy := fs.String("policy", "", "per-request policy as sent in the x-stellwerk-policy header")
	metadata := fs.String("metadata", "", "request metadata as sent in the x-stellwerk-metadata header")
	draft := fs.String("route", "", "a route FILE (a draft) to use for the route the request names, instead of the store's")
	stateDir := fs.String("state-dir", "", "directory of the embedded store whose routes a route:<name> request uses, overrides state.dir (as for serve)")
	pos, err := parseAnywhere(fs, args)
	if err != nil || len(pos) > 1 {
		fmt.Fprintln(stderr, "usage: stellwerk explain [--json] [--config FILE] [--state-dir DIR] [--key KEY] [--policy JSON] [--metadata JSON] [--route FILE] [REQUEST.json|-]")
		return ErrUsage
	}
	var body []byte
	if len(pos) == 0 || pos[0] == "-" {
		body, err = io.ReadAll(stdin)
	} else {
		body, err = os.ReadFile(pos[0])
	}
	if err != nil {
		return err
	}
	cfg, err := loadConfig(*cfgPath, *stateDir)
	if err != nil {
		return err
	}
	cat, err := catalog.New(cfg, catalog.OSEnv)
	if err != nil {
		return err
	}
	cl, err := classify.New(cfg.Classify)
	if err != nil {
		return err
	}
	pm, err := policy.NewManager(ctx, policy.Source{Library: *cfg.Policy.Library, Dir: cfg.Policy.Dir, RequireDir: cfg.Policy.RequireDirModules}, zap.NewNop())
	if err != nil {
		return fmt.Errorf("policy: %w", err)
	}
	principal, err := explainPrincipal(ctx, cfg, *key)
	if err != nil {
		return fmt.Errorf("--key: %w", err)
	}
	routes, err := explainRoutes(ctx, cfg, cat, body, *draft)
	if err != nil {
		return err
	}
	var predictor *qpredict.Model
	if path := cfg.Routing.QualityPredictor; path != "" {
		if predictor, err = qpredict.ReadFile(path); err != nil {
			return fmt.Errorf("routing.quality_predictor: %w", err)
		}
	}
	// What serve would log for the operator (a policy's evaluation error)
	// goes to stderr: the answer shown only says to look there.
	errLog := newLogger(stderr, zapcore.ErrorLevel, "console")
	decideWith := func(cat *catalog.Catalog) (*decision.Result, error) {
		r := decision.New(cfg, cat, cl, pm, errLog)
		r.Routes, r.Predictor = routes, predictor
		return r.Route(ctx, decision.Request{Path: "/v1/chat/completions", Body: body, Principal: principal, HeaderPolicy: *headerPolicy,
			MetadataHeader: *metadata, DecisionID: "explain"})
	}
	res, rerr := decideWith(cat)
	if res == nil { // the request itself is malformed
		return fmt.Errorf("invalid request: %s", apierr.As(rerr).Message)
	}
	ex := explanation{Deny: res.Policy.Deny, PolicyVersion: res.PolicyVersion, Objective: res.Policy.Objective,
		QualityFloor: res.Policy.QualityFloor, MaxCostEUR: res.Policy.MaxCostEUR, Tags: res.Policy.Tags, LogLevel: res.Policy.LogLevel,
		Workspace: res.Workspace, RequestPolicy: res.ReqPolicy.Fingerprint, Fallbacks: []string{}, Attempts: []string{}, Candidates: []candidateLine{},
		Input: inputSummary{Model: res.Chat.Model, Task: res.Class.Task, Complexity: res.Class.Complexity, Language: res.Class.Language,
			Sensitivity: res.Class.Sensitivity, Risk: res.Class.Risk, PII: res.Class.PIICounts, Secrets: len(res.Class.Secrets),
			InjectionScore: res.Class.Injection.Score, InputTokens: res.Class.InputTokens, Scan: res.Class.Scan, ScanLimit: res.Class.ScanLimit,
			Unread: res.Class.Unread}}
	if ex.Deny == nil {
		ex.Deny = []string{}
	}
	ex.Route = res.Route
	for _, t := range res.Class.Terms {
		if ex.Input.Terms == nil {
			ex.Input.Terms = map[string]int{}
		}
		ex.Input.Terms[t.Name] = t.Count
	}
	if rerr != nil {
		e := apierr.As(rerr)
		ex.Error = &apiError{Status: apierr.HTTPStatus(e), Code: e.Code, Message: e.Message}
	}
	sel := res.Selection
	if sel.Model != nil && rerr == nil {
		ex.Chosen = &chosen{ID: sel.Model.ID, Provider: sel.Model.Provider.Name, Residency: sel.Model.Provider.Residency}
		ex.Reason = sel.Reason
		for _, m := range sel.Fallbacks {
			ex.Fallbacks = append(ex.Fallbacks, m.ID)
		}
		attempts := 1
		if cfg.Envoy.Mode == config.ModeStandalone {
			attempts = cfg.Failover.MaxAttempts
		}
		for _, m := range sel.Plan(attempts) {
			ex.Attempts = append(ex.Attempts, m.ID+" ("+m.Provider.Name+")")
		}
	}
	for _, v := range sel.Table() {
		ex.Candidates = append(ex.Candidates, candidateLine{ID: v.ID, Provider: v.Provider, Residency: v.Residency,
			Verdict: v.Verdict, Reason: v.Reason, EstimatedCostEUR: v.EstimatedCostEUR, Quality: v.Quality})
	}
	if len(ex.Candidates) == 0 { // denied before selection: show the policy's exclusions
		for _, m := range cat.Models() {
			verdict, reason := "not evaluated", ""
			if why, ok := res.Policy.Exclude[m.ID]; ok {
				verdict, reason = "excluded", why
			}
			ex.Candidates = append(ex.Candidates, candidateLine{ID: m.ID, Provider: m.Provider.Name, Residency: m.Provider.Residency, Verdict: verdict, Reason: reason})
		}
	}
	if missing := cat.MissingCredentials(); len(missing) > 0 {
		// The same decision with every credential present: what serve,
		// which has the keys, would do.
		ex.MissingCredentials = missing
		keyed, err := catalog.New(cfg, catalog.Env{Getenv: withPlaceholder(os.Getenv), ReadFile: func(path string) ([]byte, error) {
			if b, err := os.ReadFile(path); err == nil && len(b) > 0 {
				return b, nil
			}
			return []byte("explain-placeholder"), nil
		}})
		if err == nil {
			h := &hypothesis{}
			if res2, err2 := decideWith(keyed); err2 != nil {
				e := apierr.As(err2)
				h.Error = &apiError{Status: apierr.HTTPStatus(e), Code: e.Code, Message: e.Message}
			} else if m := res2.Selection.Model; m != nil {
				h.Chosen, h.Reason = &chosen{ID: m.ID, Provider: m.Provider.Name, Residency: m.Provider.Residency}, res2.Selection.Reason
			}
			ex.WithCredentials = h
		}
		for i, c := range ex.Candidates {
			if c.Reason == noCredential {
				ex.Candidates[i].Reason = "provider credential not set here (serve, with it, would consider the model)"
			}
		}
	}
	if *asJSON {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		return enc.Encode(ex)
	}
	printExplanation(stdout, &ex)
	return nil
}

// noCredential is route's reason for a model whose provider has no key.
const noCredential = "provider credential not configured"

// withPlaceholder is getenv with a stand-in value for unset variables, so
// that explain can decide as if every provider had its key.
func withPlaceholder(getenv func(string) string) func(string) string {
	return func(k string) string {
		if v := getenv(k); v != "" {
			return v
		}
		return "explain-placeholder"
	}
}

func printExplanation(w io.Writer, ex *explanation) {
	in := ex.Input
	fmt.Fprintf(w, "request     model=%s task=%s complexity=%s language=%s tokens≈%d\n", in.Model, in.Task, in.Complexity, in.Language, in.InputTokens)
	fmt.Fprintf(w, "findings    sensitivity=%s risk=%s pii=%v secrets=%d injection=%.2f scan=%s", in.Sensitivity, in.Risk, in.PII, in.Secrets, in.InjectionScore, in.Scan)
	if in.ScanLimit != "" {
		fmt.Fprintf(w, " (%s limit: text was not read)", in.ScanLimit)
	}
	if len(in.Unread) > 0 {
		fmt.Fprintf(w, " unread=%v", in.Unread)
	}
	fmt.Fprintln(w)
	if len(in.Terms) > 0 {
		fmt.Fprintf(w, "terms       %v\n", in.Terms)
	}
	fmt.Fprintf(w, "principal   workspace=%s", ex.Workspace)
	if ex.RequestPolicy != "" {
		fmt.Fprintf(w, " request-policy=%s", ex.RequestPolicy)
	}
	fmt.Fprintf(w, "\npolicy      version=%s objective=%s quality_floor=%.2f", ex.PolicyVersion, ex.Objective, ex.QualityFloor)
	if ex.MaxCostEUR != nil {
		fmt.Fprintf(w, " max_cost=%.4f EUR", *ex.MaxCostEUR)
	}
	fmt.Fprintln(w)
	if len(ex.Tags) > 0 || ex.LogLevel != "" {
		keys := make([]string, 0, len(ex.Tags))
		for k := range ex.Tags {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		fmt.Fprint(w, "tags       ")
		for _, k := range keys {
			fmt.Fprintf(w, " %s=%s", k, ex.Tags[k])
		}
		if ex.LogLevel != "" {
			fmt.Fprintf(w, " log_level=%s", ex.LogLevel)
		}
		fmt.Fprintln(w)
	}
	if ex.Route != nil {
		fmt.Fprintf(w, "route       %s\n", ex.Route.Explain())
	}
	if len(ex.Deny) > 0 {
		fmt.Fprintf(w, "DENIED      %s\n", strings.Join(ex.Deny, "; "))
	}
	fmt.Fprintln(w, "\ncandidates")
	for _, c := range ex.Candidates {
		fmt.Fprintf(w, "  %-13s %-24s %-10s %-8s %s\n", c.Verdict, c.ID, c.Provider, c.Residency, c.Reason) // "not evaluated" fits
	}
	fmt.Fprintln(w)
	switch {
	case ex.Error != nil:
		fmt.Fprintf(w, "decision    %d %s: %s\n", ex.Error.Status, ex.Error.Code, ex.Error.Message)
	case ex.Chosen != nil:
		fmt.Fprintf(w, "decision    %s (%s, %s): %s\n", ex.Chosen.ID, ex.Chosen.Provider, ex.Chosen.Residency, ex.Reason)
		if len(ex.Fallbacks) > 0 {
			fmt.Fprintf(w, "fallbacks   %s\n", strings.Join(ex.Fallbacks, ", "))
		} else if in.Model != "auto" && !strings.HasPrefix(in.Model, "route:") {
			fmt.Fprintln(w, "fallbacks   none: a pinned model is not failed over unless the request sends policy.fallback or its workspace sets pinned_fallback")
		}
		if len(ex.Attempts) > 1 {
			fmt.Fprintf(w, "attempts    %s\n", strings.Join(ex.Attempts, " → "))
		}
	}
	if len(ex.MissingCredentials) > 0 {
		fmt.Fprintf(w, "\nnot set here: %s. serve, with them set (make run sets the mock keys), would decide:\n", strings.Join(ex.MissingCredentials, ", "))
		if h := ex.WithCredentials; h != nil {
			switch {
			case h.Error != nil:
				fmt.Fprintf(w, "with keys   %d %s: %s\n", h.Error.Status, h.Error.Code, h.Error.Message)
			case h.Chosen != nil:
				fmt.Fprintf(w, "with keys   %s (%s, %s): %s\n", h.Chosen.ID, h.Chosen.Provider, h.Chosen.Residency, h.Reason)
			}
		}
	}
}

// explainRoutes is where explain resolves a route the request names: the
// draft FILE when given (for its route; others from the store), else the
// state store the config names. Nil when the request names no route.
func explainRoutes(ctx context.Context, cfg *config.Config, cat *catalog.Catalog, body []byte, draft string) (decision.Routes, error) {
	chat, err := request.ParseChat(body)
	if err != nil || chat.Route == "" {
		if draft != "" {
			return nil, fmt.Errorf("--route: the request does not name a route (model: route:<name>)")
		}
		return nil, nil // a malformed request is explained by Route itself
	}
	env := flow.EnvFor(cfg, cat)
	var d *flow.Flow
	if draft != "" {
		data, err := os.ReadFile(draft)
		if err != nil {
			return nil, fmt.Errorf("--route: %w", err)
		}
		if d, err = flow.LoadNew(draft, data, env); err != nil {
			return nil, err
		}
		if d.Name == chat.Route {
			return draftRoute{d}, nil
		}
	}
	if cfg.State.Postgres == nil {
		// explain writes nothing: an embedded store that does not exist
		// holds no route, and is not created to find that out.
		if _, err := os.Stat(filepath.Join(cfg.State.Dir, store.SQLiteFile)); errors.Is(err, fs.ErrNotExist) {
			return noRoutes{}, nil
		}
	}
	db, err := store.Open(ctx, cfg.State, os.Getenv)
	if err != nil {
		return nil, fmt.Errorf("routes: %w", err)
	}
	defer db.Close()
	st, err := flowstore.Open(ctx, db)
	if err != nil {
		return nil, fmt.Errorf("routes: %w", err)
	}
	t := flowstore.NewTable(st, env, nil)
	if err := t.Refresh(ctx); err != nil {
		return nil, fmt.Errorf("routes: %w", err)
	}
	// The table is complete in memory: the store may close. A pinned
	// version compiles on first use, from the document the table holds.
	return t, nil
}

// noRoutes is the routes of a store that does not exist.
type noRoutes struct{}

func (noRoutes) Resolve(name string, _ int64) (*flow.Flow, error) {
	return nil, &flowstore.ResolveError{Route: name, Err: flowstore.ErrNoRoute}
}

// draftRoute serves a route file as every version of its route.
type draftRoute struct{ f *flow.Flow }

func (d draftRoute) Resolve(string, int64) (*flow.Flow, error) { return d.f, nil }

// explainPrincipal is who --key is, as serve reads it: a config key, or a
// key of the store the config names (sk-sw-…), which explain took for the
// anonymous default workspace, or refused in keys mode, while serve put
// it in its own (the CLI probe). A store key that is unknown, revoked or
// expired is refused as serve refuses it.
func explainPrincipal(ctx context.Context, cfg *config.Config, key string) (auth.Principal, error) {
	ks := auth.New(cfg, os.Getenv)
	if strings.HasPrefix(strings.TrimSpace(strings.TrimPrefix(strings.TrimSpace(key), "Bearer ")), keys.SecretPrefix) {
		if err := storeExists(cfg.State); err != nil {
			return auth.Principal{}, err
		}
		st, db, err := keys.OpenConfigured(ctx, cfg.State, os.Getenv)
		if err != nil {
			return auth.Principal{}, err
		}
		defer db.Close()
		t := keys.NewTable(st, zap.NewNop())
		if err := t.Refresh(ctx); err != nil {
			return auth.Principal{}, err
		}
		ks = ks.WithSource(t)
	}
	return ks.Authenticate(key)
}
