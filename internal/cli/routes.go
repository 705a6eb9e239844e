package cli

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/stellwerk/stellwerk/internal/admin"
	"github.com/stellwerk/stellwerk/internal/audit"
	"github.com/stellwerk/stellwerk/internal/catalog"
	"github.com/stellwerk/stellwerk/internal/classify"
	"github.com/stellwerk/stellwerk/internal/config"
	"github.com/stellwerk/stellwerk/internal/decision"
	"github.com/stellwerk/stellwerk/internal/flow"
	"github.com/stellwerk/stellwerk/internal/flowstore"
	"github.com/stellwerk/stellwerk/internal/request"
	"github.com/stellwerk/stellwerk/internal/store"
)

const routesUsage = `usage:
  stellwerk routes list                               routes in the store (live and newest version) and the files of routes/
  stellwerk routes show NAME[@N]                      a version's document (default: the live one) and its record
  stellwerk routes diff A [B]                         A and B: NAME@N, NAME (its live version) or a FILE; B defaults to routes/NAME.yaml
  stellwerk routes test ROUTE --samples FILE          run sample requests through ROUTE (a FILE, a draft, or NAME[@N]): path and outcome
  stellwerk routes create FILE [--message M]          store FILE as a version without deploying it
  stellwerk routes deploy FILE|NAME@N [--message M]   make a version live (a FILE is stored first); every replica switches within a second
  stellwerk routes rollback NAME [--to N] [--message M]  deploy the version live before (skipping any that do not load), or N;
                                                      during a ramp that is the previous step: --to N goes back to before the experiment
  stellwerk routes sync [--no-deploy]                 record routes/*.yaml as versions, as serve does (docs/routes.md)
  stellwerk routes report ROUTE [--version N] [--since 7d] [--until T] [--format table|json]
                                                      per version and split arm, from the audit log: requests, errors with
                                                      their 95% interval, served by the arm's own target or a fallback,
                                                      p50/p95 ms, cost per request and total
Every verb takes --config FILE (env STELLWERK_CONFIG), --state-dir DIR and --json; routes/ is beside the config.
`

// runRoutes is `stellwerk routes …`.
func runRoutes(ctx context.Context, args []string, stdout, stderr io.Writer) (err error) {
	if len(args) == 0 {
		fmt.Fprint(stderr, routesUsage)
		return ErrUsage
	}
	verb, args := args[0], args[1:]
	if isHelp(verb) {
		fmt.Fprint(stdout, routesUsage)
		return nil
	}
	fs := flag.NewFlagSet("routes "+verb, flag.ContinueOnError)
	fs.SetOutput(stderr)
	cfgPath := fs.String("config", defaultConfigPath(), "config file (env STELLWERK_CONFIG)")
	stateDir := fs.String("state-dir", "", "directory of the embedded store, overrides state.dir (as for serve)")
	asJSON := fs.Bool("json", false, "print JSON")
	var message, samples, since, until, format string
	var to, version int64
	var noDeploy bool
	want := map[string][2]int{"list": {0, 0}, "show": {1, 1}, "diff": {1, 2}, "test": {1, 1}, "create": {1, 1}, "deploy": {1, 1},
		"rollback": {1, 1}, "sync": {0, 0}, "report": {1, 1}}
	switch verb {
	case "create", "deploy":
		fs.StringVar(&message, "message", "", "what changed, kept with the version")
	case "test":
		fs.StringVar(&samples, "samples", "", "JSON file of sample requests (required; docs/routes.md)")
	case "rollback":
		fs.StringVar(&message, "message", "", "why, kept on the change's audit record")
		fs.Int64Var(&to, "to", 0, "the version to go back to, older than the live one (default: the one live before it that loads)")
	case "sync":
		fs.BoolVar(&noDeploy, "no-deploy", false, "store new file contents as versions without deploying them")
	case "report":
		fs.Int64Var(&version, "version", 0, "only this version's requests (default: every version's)")
		fs.StringVar(&since, "since", "7d", "records from this time (RFC 3339, a date, now, or a duration ago: 36h, 7d)")
		fs.StringVar(&until, "until", "", "records before this time (default: now)")
		fs.StringVar(&format, "format", "table", "table or json")
	case "list", "show", "diff":
	default:
		fmt.Fprintf(stderr, "unknown routes command %q\n\n%s", verb, routesUsage)
		return ErrUsage
	}
	pos, err := parseInterspersed(fs, args)
	if err != nil {
		return ErrUsage
	}
	if n := want[verb]; len(pos) < n[0] || len(pos) > n[1] {
		fmt.Fprintf(stderr, "routes %s: wrong number of arguments\n\n%s", verb, routesUsage)
		return ErrUsage
	}
	var from, before time.Time
	if verb == "report" {
		var problems []string
		if format != "table" && format != "json" {
			problems = append(problems, fmt.Sprintf("--format: %q is not table or json", format))
		}
		if version < 0 {
			problems = append(problems, "--version: a version is from 1")
		}
		var err error
		if from, err = parseWhen(since); err != nil {
			problems = append(problems, "--since: "+err.Error())
		}
		if before, err = parseWhen(until); err != nil {
			problems = append(problems, "--until: "+err.Error())
		}
		if len(problems) > 0 {
			fmt.Fprintln(stderr, strings.Join(problems, "\n"))
			return ErrUsage
		}
		if *asJSON {
			format = "json"
		}
	}
	if verb == "test" && samples == "" {
		fmt.Fprintln(stderr, "routes test: --samples FILE is required")
		return ErrUsage
	}
	cfg, err := loadConfig(*cfgPath, *stateDir)
	if err != nil {
		return err
	}
	switch verb {
	case "list", "show", "diff", "rollback", "report":
		// They read versions: a mistyped --state-dir made an empty store
		// there and listed no route, exit 0 (the CLI probe).
		if err := storeExists(cfg.State); err != nil {
			return err
		}
	}
	cat, err := catalog.New(cfg, catalog.OSEnv)
	if err != nil {
		return err
	}
	// test runs its samples through the route, however long they take;
	// report reads every decision of its range, and bounds opening the
	// store itself.
	if verb != "test" && verb != "report" {
		var cancel context.CancelFunc
		ctx, cancel = boundStore(ctx)
		defer cancel()
	}
	defer func() { err = storeTimedOut(ctx, err) }()
	rc := &routesCLI{cfg: cfg, env: flow.EnvFor(cfg, cat), dir: flowstore.Dir(*cfgPath), json: *asJSON, stdout: stdout, stderr: stderr}
	defer rc.close()
	switch verb {
	case "list":
		return rc.list(ctx)
	case "show":
		return rc.show(ctx, pos[0])
	case "diff":
		b := ""
		if len(pos) == 2 {
			b = pos[1]
		}
		return rc.diff(ctx, pos[0], b)
	case "test":
		return rc.test(ctx, pos[0], samples)
	case "create":
		_, err := rc.create(ctx, pos[0], message)
		return err
	case "deploy":
		return rc.deploy(ctx, pos[0], message)
	case "rollback":
		return rc.rollback(ctx, pos[0], to, message)
	case "sync":
		return rc.sync(ctx, !noDeploy)
	case "report":
		return rc.report(ctx, pos[0], version, from, before, format)
	}
	return nil
}

type routesCLI struct {
	cfg            *config.Config
	env            *flow.Env
	dir            string
	json           bool
	stdout, stderr io.Writer
	st             *flowstore.Store
	db             *store.DB
}

func (r *routesCLI) store(ctx context.Context) (*flowstore.Store, error) {
	if r.st != nil {
		return r.st, nil
	}
	db, err := store.Open(ctx, r.cfg.State, os.Getenv)
	if err != nil {
		return nil, err
	}
	st, err := flowstore.Open(ctx, db)
	if err != nil {
		db.Close()
		return nil, err
	}
	r.st, r.db = st, db
	return st, nil
}

func (r *routesCLI) close() {
	if r.db != nil {
		r.db.Close()
	}
}

// ref is a route named on the command line: a file, or NAME[@N].
type ref struct {
	file    string
	name    string
	version int64 // 0: live
}

func parseRef(s string) (ref, error) {
	if strings.HasSuffix(s, ".yaml") || strings.HasSuffix(s, ".yml") || strings.Contains(s, "/") {
		return ref{file: s}, nil
	}
	name, v, ok := strings.Cut(s, "@")
	r := ref{name: name}
	if ok {
		n, err := strconv.ParseInt(strings.TrimPrefix(v, "v"), 10, 64)
		if err != nil || n < 1 {
			return r, fmt.Errorf("%q: a version is NAME@N with N from 1", s)
		}
		r.version = n
	}
	if !flow.NameRE.MatchString(name) {
		return r, fmt.Errorf("%q is neither a route name nor a .yaml file", s)
	}
	return r, nil
}

// load returns a ref's document, its label and the compiled flow (nil with
// the load error for a stored version that no longer loads).
func (r *routesCLI) load(ctx context.Context, s string) (doc []byte, label string, f *flow.Flow, err error) {
	rf, err := parseRef(s)
	if err != nil {
		return nil, "", nil, usageError(r.stderr, err)
	}
	if rf.file != "" {
		doc, err = os.ReadFile(rf.file)
		if err != nil {
			return nil, "", nil, err
		}
		// A file is a new version (create, deploy) or a draft (test): a
		// comparison that never holds is refused here.
		f, err = flow.LoadNew(rf.file, doc, r.env)
		return doc, rf.file, f, err
	}
	st, err := r.store(ctx)
	if err != nil {
		return nil, "", nil, err
	}
	v, err := st.Get(ctx, rf.name, rf.version)
	if err != nil {
		return nil, "", nil, r.fail(err)
	}
	label = fmt.Sprintf("%s@%d", v.Route, v.Version)
	f, err = flow.Load(label, []byte(v.Document), r.env)
	if f != nil {
		f.Version = v.Version
		for _, w := range f.Warnings() {
			fmt.Fprintf(r.stderr, "warning: %v (a stored version still loads with it; a new one is refused)\n", w)
		}
	}
	return []byte(v.Document), label, f, err
}

func usageError(w io.Writer, err error) error {
	fmt.Fprintln(w, err)
	return ErrUsage
}

func (r *routesCLI) fail(err error) error {
	return fmt.Errorf("routes: %s", admin.RouteError(err).Message)
}

func (r *routesCLI) list(ctx context.Context) error {
	st, err := r.store(ctx)
	if err != nil {
		return err
	}
	rs, err := st.Routes(ctx)
	if err == nil {
		err = st.CheckLoads(ctx, r.env, rs)
	}
	if err != nil {
		return r.fail(err)
	}
	files, err := flowstore.ReadDir(r.dir, r.env)
	if err != nil {
		return err
	}
	if r.json {
		type fileView struct {
			File  string `json:"file"`
			Route string `json:"route,omitempty"`
			Hash  string `json:"hash,omitempty"`
			Error string `json:"error,omitempty"`
		}
		fv := []fileView{}
		for _, f := range files {
			v := fileView{File: f.Path}
			if f.Err != nil {
				v.Error = f.Err.Error()
			} else {
				v.Route, v.Hash = f.Flow.Name, f.Flow.Hash
			}
			fv = append(fv, v)
		}
		return writeJSONTo(r.stdout, map[string]any{"routes": rs, "files": fv})
	}
	tw := tabwriter.NewWriter(r.stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "ROUTE\tLIVE\tNEWEST\tVERSIONS\tDEPLOYED\tBY")
	for _, x := range rs {
		live, at := "-", "-"
		if x.Live > 0 {
			live, at = strconv.FormatInt(x.Live, 10), x.DeployedAt.Format(time.RFC3339)
		}
		fmt.Fprintf(tw, "%s\t%s\t%d\t%d\t%s\t%s\n", shown(x.Name), live, x.Latest, x.Versions, at, dash(x.DeployedBy))
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	for _, x := range rs {
		for _, b := range x.Broken {
			what := "pinned requests to it get 503 route_unavailable"
			if b.Live {
				what = "it is LIVE: a running replica keeps the flow it last compiled, one that starts has none and answers 503 route_unavailable, until a version that loads is deployed"
			}
			fmt.Fprintf(r.stdout, "%s@%d does not load under this config (%s):\n%s\n", x.Name, b.Version, what, b.Error)
		}
	}
	for _, f := range files {
		if f.Err != nil {
			fmt.Fprintf(r.stdout, "file %s does not load:\n%v\n", f.Path, f.Err)
			continue
		}
		for _, w := range f.Flow.Warnings() {
			fmt.Fprintf(r.stdout, "warning: %v\n", w)
		}
	}
	return nil
}

func (r *routesCLI) show(ctx context.Context, s string) error {
	rf, err := parseRef(s)
	if err != nil || rf.file != "" {
		return usageError(r.stderr, fmt.Errorf("routes show takes NAME[@N]"))
	}
	st, err := r.store(ctx)
	if err != nil {
		return err
	}
	v, err := st.Get(ctx, rf.name, rf.version)
	if err != nil {
		return r.fail(err)
	}
	if r.json {
		return writeJSONTo(r.stdout, v)
	}
	live := ""
	if v.Live {
		live = " (live)"
	}
	fmt.Fprintf(r.stdout, "# %s@%d%s, %s, by %s, %s\n", shown(v.Route), v.Version, live, v.Hash, shown(v.Author), v.CreatedAt.Format(time.RFC3339))
	if v.Message != "" {
		fmt.Fprintf(r.stdout, "# %s\n", shown(v.Message))
	}
	_, err = io.WriteString(r.stdout, v.Document)
	return err
}

func (r *routesCLI) diff(ctx context.Context, a, b string) error {
	if b == "" {
		rf, err := parseRef(a)
		if err != nil || rf.file != "" {
			return usageError(r.stderr, fmt.Errorf("routes diff with one argument takes NAME[@N] and compares it with routes/NAME.yaml"))
		}
		b = r.dir + "/" + rf.name + ".yaml"
	}
	da, la, _, err := r.load(ctx, a)
	if err != nil && da == nil {
		return err
	}
	db, lb, _, err := r.load(ctx, b)
	if err != nil && db == nil {
		return err
	}
	_, err = io.WriteString(r.stdout, unifiedDiff(la, lb, string(da), string(db)))
	return err
}

func (r *routesCLI) test(ctx context.Context, s, samplesFile string) error {
	_, label, f, err := r.load(ctx, s)
	if err != nil {
		return err
	}
	data, err := os.ReadFile(samplesFile)
	if err != nil {
		return err
	}
	samples, err := flow.ParseSamples(data)
	if err != nil {
		return err
	}
	cl, err := classify.New(r.cfg.Classify)
	if err != nil {
		return err
	}
	classifier := func(c request.Chat) classify.Result { return cl.Classify(decision.ClassifyRequest(c)) }
	results := make([]flow.SampleResult, len(samples))
	failed := 0
	for i := range samples {
		results[i] = samples[i].Run(ctx, f, r.env, classifier)
		if results[i].Error != "" || len(results[i].Mismatch) > 0 {
			failed++
		}
	}
	warnings := flow.StickyWarnings(results)
	if r.json {
		if err := writeJSONTo(r.stdout, results); err != nil {
			return err
		}
		for _, w := range warnings {
			fmt.Fprintf(r.stderr, "warning: %s\n", w)
		}
	} else {
		for _, res := range results {
			mark := "ok  "
			if res.Error != "" || len(res.Mismatch) > 0 {
				mark = "FAIL"
			}
			fmt.Fprintf(r.stdout, "%s %s\n", mark, res.Name)
			if res.Error != "" {
				fmt.Fprintf(r.stdout, "     error: %s\n", res.Error)
				continue
			}
			fmt.Fprintf(r.stdout, "     path: %s\n     outcome: %s\n", res.Outcome.Explain(), describe(res.Outcome))
			for _, m := range res.Mismatch {
				fmt.Fprintf(r.stdout, "     mismatch: %s\n", m) // "model X, expected Y"
			}
		}
		for _, w := range warnings {
			fmt.Fprintf(r.stdout, "warning: %s\n", w)
		}
		fmt.Fprintf(r.stdout, "%s: %d passed, %d failed\n", label, len(results)-failed, failed)
	}
	if failed > 0 {
		return fmt.Errorf("routes test: %d of %d samples failed", failed, len(results))
	}
	return nil
}

// describe is an outcome in one line: the models in order, or the end.
func describe(o *flow.Outcome) string {
	if o.End != nil {
		return fmt.Sprintf("refused %d (end node %s): %s", o.End.Status, o.End.Node, o.End.Message)
	}
	parts := make([]string, len(o.Targets))
	for i, t := range o.Targets {
		p := t.Model
		if t.IsAuto() {
			var opts []string
			if t.Objective != "" {
				opts = append(opts, "objective "+t.Objective)
			}
			if t.MinQuality > 0 {
				opts = append(opts, fmt.Sprintf("quality ≥ %.2f", t.MinQuality))
			}
			if len(t.Allow) > 0 {
				opts = append(opts, "allow "+strings.Join(t.Allow, ","))
			}
			if len(t.Deny) > 0 {
				opts = append(opts, "deny "+strings.Join(t.Deny, ","))
			}
			if len(opts) > 0 {
				p += " (" + strings.Join(opts, "; ") + ")"
			}
		}
		parts[i] = p
	}
	s := "model " + strings.Join(parts, ", then ")
	for _, e := range o.ConditionErrors {
		s += fmt.Sprintf(" [condition %s failed: %s; took else]", e.Node, e.Msg)
	}
	return s
}

func (r *routesCLI) create(ctx context.Context, file, message string) (flowstore.Version, error) {
	rf, err := parseRef(file)
	if err != nil || rf.file == "" {
		return flowstore.Version{}, usageError(r.stderr, fmt.Errorf("routes create takes a .yaml FILE"))
	}
	_, _, f, err := r.load(ctx, file)
	if err != nil {
		return flowstore.Version{}, err
	}
	st, err := r.store(ctx)
	if err != nil {
		return flowstore.Version{}, err
	}
	v, created, err := st.Create(ctx, f, cliUser(os.Getenv), message, "cli")
	if err != nil {
		return v, r.fail(err)
	}
	if created {
		r.changed(ctx, audit.RouteSwitch{Route: v.Route, Action: "create", To: v.Version, Message: message})
		fmt.Fprintf(r.stderr, "stored %s@%d (%s)\n", v.Route, v.Version, v.Hash)
	} else {
		fmt.Fprintf(r.stderr, "%s is already %s@%d\n", file, v.Route, v.Version)
	}
	v.Document = ""
	if r.json {
		return v, writeJSONTo(r.stdout, v)
	}
	return v, nil
}

func (r *routesCLI) deploy(ctx context.Context, s, message string) error {
	rf, err := parseRef(s)
	if err != nil {
		return usageError(r.stderr, err)
	}
	if rf.file != "" {
		v, err := r.create(ctx, s, message)
		if err != nil {
			return err
		}
		rf = ref{name: v.Route, version: v.Version}
	} else if rf.version == 0 {
		return usageError(r.stderr, fmt.Errorf("routes deploy takes NAME@N or a FILE"))
	} else if _, _, _, err := r.load(ctx, s); err != nil {
		return err // it must load under the config in force
	}
	st, err := r.store(ctx)
	if err != nil {
		return err
	}
	d, err := st.Deploy(ctx, rf.name, rf.version, cliUser(os.Getenv))
	if err != nil {
		return r.fail(err)
	}
	r.changed(ctx, audit.RouteSwitch{Route: d.Route, Action: d.Action, From: d.From, To: d.To, Message: message})
	return r.printDeploy(d)
}

func (r *routesCLI) printDeploy(d flowstore.Deploy) error {
	if r.json {
		return writeJSONTo(r.stdout, d)
	}
	if d.From == d.To {
		fmt.Fprintf(r.stdout, "%s@%d is already live\n", d.Route, d.To)
		return nil
	}
	from := "nothing"
	if d.From > 0 {
		from = fmt.Sprintf("%s@%d", d.Route, d.From)
	}
	fmt.Fprintf(r.stdout, "%s@%d is live (was %s); every replica switches within a second\n", d.Route, d.To, from)
	return nil
}

func (r *routesCLI) rollback(ctx context.Context, name string, to int64, message string) error {
	rf, err := parseRef(name)
	if err != nil || rf.file != "" || rf.version != 0 {
		return usageError(r.stderr, fmt.Errorf("routes rollback takes NAME (and --to N)"))
	}
	st, err := r.store(ctx)
	if err != nil {
		return err
	}
	// A version named must load under the config in force, as a deploy's;
	// without one, the store skips those that do not (and says so).
	if to != 0 {
		if _, _, _, err := r.load(ctx, fmt.Sprintf("%s@%d", name, to)); err != nil {
			return err
		}
	}
	// The version chosen is the last that loaded: its warnings are printed
	// as a deploy's are.
	var warnings []*flow.Error
	loads := func(v flowstore.Version) error {
		f, err := flow.Load(fmt.Sprintf("%s@%d", v.Route, v.Version), []byte(v.Document), r.env)
		if f != nil {
			warnings = f.Warnings()
		}
		return err
	}
	d, err := st.Rollback(ctx, name, to, cliUser(os.Getenv), loads)
	var none *flowstore.NoneLoadsError
	switch {
	case errors.As(err, &none), errors.Is(err, flowstore.ErrNoEarlier):
		return fmt.Errorf("routes: %v", err)
	case err != nil:
		return r.fail(err)
	}
	if to == 0 {
		for _, w := range warnings {
			fmt.Fprintf(r.stderr, "warning: %v (a stored version still loads with it; a new one is refused)\n", w)
		}
	}
	if !r.json {
		for _, v := range d.Skipped {
			fmt.Fprintf(r.stdout, "skipped %s@%d: it does not load under this config: %s\n", d.Route, v.Version, v.Error)
		}
		if d.Reason != "" {
			fmt.Fprintf(r.stdout, "rolling back to %s@%d: %s\n", d.Route, d.To, d.Reason)
		}
	}
	r.changed(ctx, audit.RouteSwitch{Route: d.Route, Action: d.Action, From: d.From, To: d.To, Message: message})
	return r.printDeploy(d)
}

// changed puts a route change made here on the audit record (when the
// store took it and something changed).
func (r *routesCLI) changed(ctx context.Context, d audit.RouteSwitch) {
	if r.db != nil && d.From != d.To {
		recordChange(ctx, r.cfg, r.db, audit.KindRoute, "", audit.RouteChange(cliUser(os.Getenv), d), r.stderr)
	}
}

func (r *routesCLI) sync(ctx context.Context, deploy bool) error {
	st, err := r.store(ctx)
	if err != nil {
		return err
	}
	res, err := flowstore.SyncDir(ctx, st, r.dir, r.env, deploy)
	if err != nil {
		return r.fail(err)
	}
	for _, s := range res {
		if a := s.Action(); a != "" {
			r.changed(ctx, audit.RouteSwitch{Route: s.Route, Action: a, From: s.From, To: s.Version})
		}
	}
	if r.json {
		return writeJSONTo(r.stdout, res)
	}
	bad := 0
	for _, s := range res {
		switch {
		case s.Error != "":
			bad++
			fmt.Fprintf(r.stdout, "%s does not load:\n%s\n", s.File, s.Error)
		case s.Deployed:
			fmt.Fprintf(r.stdout, "%s: %s@%d, live\n", s.File, s.Route, s.Version)
		case s.Changed:
			fmt.Fprintf(r.stdout, "%s: %s@%d stored\n", s.File, s.Route, s.Version)
		default:
			fmt.Fprintf(r.stdout, "%s: unchanged\n", s.File)
		}
		for _, w := range s.Warnings {
			fmt.Fprintf(r.stdout, "warning: %s\n", w)
		}
	}
	if bad > 0 {
		return fmt.Errorf("routes sync: %d file(s) do not load", bad)
	}
	return nil
}

// unifiedDiff is a line diff of a and b in the unified format, with three
// lines of context ("" when they are equal). Route documents are small:
// the longest common subsequence table is fine.
func unifiedDiff(la, lb, a, b string) string {
	if a == b {
		return ""
	}
	x, y := strings.SplitAfter(a, "\n"), strings.SplitAfter(b, "\n")
	if x[len(x)-1] == "" {
		x = x[:len(x)-1]
	}
	if y[len(y)-1] == "" {
		y = y[:len(y)-1]
	}
	n, m := len(x), len(y)
	lcs := make([][]int32, n+1)
	for i := range lcs {
		lcs[i] = make([]int32, m+1)
	}
	for i := n - 1; i >= 0; i-- {
		for j := m - 1; j >= 0; j-- {
			if x[i] == y[j] {
				lcs[i][j] = lcs[i+1][j+1] + 1
			} else {
				lcs[i][j] = max(lcs[i+1][j], lcs[i][j+1])
			}
		}
	}
	type op struct {
		kind byte // ' ', '-', '+'
		line string
		ai   int // line numbers (1-based) in a and b before this op
		bi   int
	}
	var ops []op
	i, j := 0, 0
	for i < n || j < m {
		switch {
		case i < n && j < m && x[i] == y[j]:
			ops = append(ops, op{' ', x[i], i, j})
			i, j = i+1, j+1
		case i < n && (j == m || lcs[i+1][j] >= lcs[i][j+1]):
			ops = append(ops, op{'-', x[i], i, j})
			i++
		default:
			ops = append(ops, op{'+', y[j], i, j})
			j++
		}
	}
	var out strings.Builder
	fmt.Fprintf(&out, "--- %s\n+++ %s\n", la, lb)
	const ctx = 3
	for k := 0; k < len(ops); {
		if ops[k].kind == ' ' {
			k++
			continue
		}
		start := max(k-ctx, 0)
		end := k
		for end < len(ops) {
			if ops[end].kind != ' ' {
				end++
				continue
			}
			run := end
			for run < len(ops) && ops[run].kind == ' ' {
				run++
			}
			if run-end > 2*ctx || run == len(ops) {
				end = min(end+ctx, len(ops))
				break
			}
			end = run
		}
		var ac, bc int
		for _, o := range ops[start:end] {
			if o.kind != '+' {
				ac++
			}
			if o.kind != '-' {
				bc++
			}
		}
		fmt.Fprintf(&out, "@@ -%d,%d +%d,%d @@\n", ops[start].ai+1, ac, ops[start].bi+1, bc)
		for _, o := range ops[start:end] {
			out.WriteByte(o.kind)
			out.WriteString(o.line)
			if !strings.HasSuffix(o.line, "\n") {
				out.WriteString("\n\\ No newline at end of file\n")
			}
		}
		k = end
	}
	return out.String()
}
