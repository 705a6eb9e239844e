package policy

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/open-policy-agent/opa/v1/ast"
	"github.com/open-policy-agent/opa/v1/rego"
	"github.com/open-policy-agent/opa/v1/tester"
	"github.com/open-policy-agent/opa/v1/topdown"
)

// Query is the one query stellwerk evaluates.
const Query = "data.stellwerk.decision"

// Engine is one compiled, checked policy version. It is immutable and safe
// for concurrent use.
type Engine struct {
	query   rego.PreparedEvalQuery
	memo    *memo  // nil when decisions cannot be memoised
	reads   *paths // the input paths the modules read (analyze)
	Version string
	// Digest is the sources' whole SHA-256 (hex), of which Version is the
	// first 12 digits: records keep it, so that a kept policy cannot be
	// replaced by other sources sharing the short version (the audit
	// probe: 48 bits can be matched).
	Digest   string
	Modules  []string
	LoadedAt time.Time
	files    files // the sources it was compiled from, for Bundle
	// Warnings name the modules that cannot contribute to the decision
	// (unreachable); logged at load, printed by policy test and config check.
	Warnings []string
	// failures counts the requests whose evaluation failed since the
	// policy was loaded (500 policy_error); lastFailure is the latest's.
	failures    atomic.Uint64
	lastFailure atomic.Pointer[Failure]
}

// Failure is an evaluation that failed on a request: when, and why (as
// logged; the admin API's /policy shows it).
type Failure struct {
	At    time.Time `json:"at"`
	Error string    `json:"error"`
}

// failureSummary says what kind of failure err is and where, without its
// message: OPA's messages quote the values a rule was given (a client's
// metadata, a tag), and /policy is open to every admin role, the metrics
// scraper's viewer token included (the verification helper saw an email
// and an IBAN there). The log has the whole message.
func failureSummary(err error) string {
	var te *topdown.Error
	var se *ShapeError
	switch {
	case errors.As(err, &te):
		at := ""
		if te.Location != nil {
			at = " at " + te.Location.String()
		}
		return "evaluation error " + te.Code + at + " (the log has the message)"
	case errors.As(err, &se):
		return "a decision of the wrong shape (the log says which part)"
	case errors.Is(err, ErrTimeout), errors.Is(err, ErrNoDecision):
		return err.Error()
	}
	return "the evaluation failed (the log has the message)"
}

// Failures is how many requests the policy failed to decide since it was
// loaded, and the latest failure (nil when none).
func (e *Engine) Failures() (uint64, *Failure) { return e.failures.Load(), e.lastFailure.Load() }

// ErrNoDecision means the modules do not define data.stellwerk.decision.
var ErrNoDecision = errors.New("the policy defines no data.stellwerk.decision")

// Load compiles a source, prepares the query and checks that it yields a
// well-shaped decision for a sample input, so a broken policy fails here
// and not on a request.
func Load(ctx context.Context, src Source) (*Engine, error) {
	f, err := src.collect()
	if err != nil {
		return nil, err
	}
	return load(ctx, f)
}

func load(ctx context.Context, f files) (*Engine, error) {
	names := make([]string, 0, len(f.modules))
	parsed := make(map[string]*ast.Module, len(f.modules))
	popts := ast.ParserOptions{RegoVersion: ast.RegoV1}
	for name, src := range f.modules {
		m, err := ast.ParseModuleWithOpts(name, src, popts)
		if err != nil {
			return nil, fmt.Errorf("compile: %w", err)
		}
		parsed[name] = m
		names = append(names, name)
	}
	sort.Strings(names)
	c := newCompiler()
	if c.Compile(parsed); c.Failed() {
		for _, e := range c.Errors {
			if name, ok := strings.CutPrefix(e.Message, "undefined function "); ok {
				if _, unsafe := unsafeBuiltins[name]; unsafe {
					e.Message += ": a policy may not call it (docs/policy.md, what a policy may call)"
				}
			}
			if e.Location != nil && strings.HasPrefix(e.Location.File, "library/") {
				e.Message += shapeHint(parsed)
			}
		}
		return nil, fmt.Errorf("compile: %w", c.Errors)
	}
	if err := ineffective(c.Modules); err != nil {
		return nil, fmt.Errorf("compile: %w", err)
	}
	pq, err := rego.New(rego.Query(Query), rego.SetRegoVersion(ast.RegoV1), rego.Compiler(c),
		rego.StrictBuiltinErrors(true)).PrepareForEval(ctx)
	if err != nil {
		return nil, fmt.Errorf("compile: %w", err)
	}
	e := &Engine{query: pq, Version: f.version, Digest: f.digest, Modules: names, LoadedAt: time.Now(), files: f, Warnings: f.warnings(c.Modules)}
	root, ok := analyze(c.Modules)
	e.reads = root
	if ok {
		e.memo = newMemo(root, findNameReads(c.Modules))
	}
	sctx, cancel := context.WithTimeout(ctx, sampleTimeout)
	defer cancel()
	if _, err := e.evalAt(sctx, SampleInput(), time.Unix(0, 0), nil); err != nil {
		if ctx.Err() == nil && sctx.Err() != nil {
			return nil, fmt.Errorf("policy %s rejected: its decision for the sample input took longer than %s, and a request's must fit in envoy.extproc_timeout", e.Version, sampleTimeout)
		}
		return nil, fmt.Errorf("policy %s rejected: %w", e.Version, err)
	}
	return e, nil
}

// sampleTimeout bounds the decision for the sample input at load: a rule
// that runs away (a helper's nested numbers.range) had hung the reload,
// and policy test, for good.
var sampleTimeout = 5 * time.Second // a variable for the tests

// Decide is Eval for a request's input, built here from in and ct. A
// request the policy cannot tell apart from one decided before (the same
// values at every input path the modules read, the same catalog) gets that
// decision without an evaluation. The decision is shared: read it, never
// change it.
func (e *Engine) Decide(ctx context.Context, in *Input, ct *CatalogTerms) (Decision, error) {
	return e.DecideWithin(ctx, in, ct, 0)
}

// ErrTimeout: the evaluation took longer than DecideWithin allowed.
var ErrTimeout = errors.New("the evaluation took longer than allowed")

// DecideWithin is Decide with the evaluation bounded by timeout (0: by ctx
// alone). A decision the memo holds takes no time and sets no timer.
func (e *Engine) DecideWithin(ctx context.Context, in *Input, ct *CatalogTerms, timeout time.Duration) (Decision, error) {
	var parts inputParts
	var key, nkey []byte
	var names *nameTracer
	if e.memo != nil && ct.whole(in.Candidates) {
		if e.memo.shares(in) {
			// A decision made without reading the workspace's name
			// holds for every workspace of the same other values.
			nkey = e.memo.key(make([]byte, 0, 512), in, ct, &parts, true)
			switch d := e.memo.get(nkey); {
			case d == readsName:
				nkey = nil // read for every workspace of these values
			case d != nil:
				e.memo.hits.Add(1)
				return *d, nil
			default:
				names = &nameTracer{nr: e.memo.names}
			}
		}
		key = e.memo.key(make([]byte, 0, 512), in, ct, &parts, false)
		if d := e.memo.get(key); d != nil {
			e.memo.hits.Add(1)
			return *d, nil
		}
		e.memo.misses.Add(1)
	}
	v, release := in.value(ct, &parts)
	ectx := ctx
	if timeout > 0 {
		var cancel context.CancelFunc
		ectx, cancel = context.WithTimeout(ctx, timeout)
		defer cancel()
	}
	d, err := e.evalAt(ectx, v, in.Now, names)
	release()
	if err != nil && ctx.Err() == nil && ectx.Err() != nil {
		err = fmt.Errorf("%w (%s)", ErrTimeout, timeout)
	}
	if err != nil && ctx.Err() == nil {
		// Counted where on-call looks (/policy, the metrics): the load's
		// checks evaluate one sample input, and an error that depends on
		// a workspace's requests passes them (a helper's finding).
		e.failures.Add(1)
		e.lastFailure.Store(&Failure{At: time.Now(), Error: failureSummary(err)})
	}
	if err == nil && key != nil {
		switch {
		case names == nil:
		case names.read:
			e.memo.put(nkey, readsName, false) // no tracer for the next
		default:
			key = nkey
		}
		e.memo.put(key, &d, true)
	}
	return d, err
}

// MemoStats is how many decisions the memo answered and how many it had to
// evaluate since the policy was loaded; zeros when the policy cannot be
// memoised.
func (e *Engine) MemoStats() (hits, misses uint64) {
	if e.memo == nil {
		return 0, 0
	}
	return e.memo.hits.Load(), e.memo.misses.Load()
}

// Eval evaluates the decision for one input, at the time of day it is.
func (e *Engine) Eval(ctx context.Context, input ast.Value) (Decision, error) {
	return e.evalAt(ctx, input, time.Time{}, nil)
}

// evalAt evaluates the decision for one input as at now (the zero time:
// as at the time of day it is). A request's now is the one its input
// carries, so time.now_ns() in a policy reads the request's time, and a
// replay months later reads it again.
func (e *Engine) evalAt(ctx context.Context, input ast.Value, now time.Time, names *nameTracer) (Decision, error) {
	opts := []rego.EvalOption{rego.EvalParsedInput(input)}
	if !now.IsZero() {
		opts = append(opts, rego.EvalTime(now))
	}
	if names != nil {
		opts = append(opts, rego.EvalQueryTracer(names))
	}
	rs, err := e.query.Eval(ctx, opts...)
	if err != nil {
		return Decision{}, fmt.Errorf("evaluation: %w", err)
	}
	if len(rs) == 0 || len(rs[0].Expressions) == 0 {
		return Decision{}, ErrNoDecision
	}
	return decode(rs[0].Expressions[0].Value)
}

// computed are the decision's fields the library computes and no rule of a
// platform's module can set (docs/policy-library.md): a rule of the same
// name in package stellwerk would be a rule of its own that nothing reads.
var computed = map[string]string{
	"objective":     "set it with the workspace's objective or the request's optimize",
	"quality_floor": "set it with the workspace's quality_floor or the request's min_quality",
	"max_cost_eur":  "set it with the workspace's max_cost_eur or the request's max_cost",
	"log_level":     "set it with log_levels contains level",
	"residency":     "set it with the workspace's residency rules, or excluded",
	"redact":        "it is reserved and not enforced yet",
	"downgrade":     "set it with a budget's action: downgrade (budgets.limits in the config)",
}

// ineffective refuses a platform module's rule, next to the library, that
// would set a decision field the library computes (it would have no
// effect, which the author would not find out), or that has the name of a
// rule of the library other than an extension point (it would become part
// of that rule, which the author would not find out either).
func ineffective(modules map[string]*ast.Module) error {
	var lib bool
	for name := range modules {
		lib = lib || strings.HasPrefix(name, "library/")
	}
	if !lib {
		return nil
	}
	// The library's own rule names: a platform rule of the same name in
	// package stellwerk would silently become part of the library's rule
	// (a helper's _allow_loosening keyed on a client's metadata loosened a
	// workspace's residency).
	library := map[string]bool{}
	for name, m := range modules {
		if strings.HasPrefix(name, "library/") && !strings.HasSuffix(name, "_test.rego") && m.Package.Path.Equal(decisionPackage) {
			for _, r := range m.Rules {
				library[r.Head.Ref()[0].String()] = true
			}
		}
	}
	var errs ast.Errors
	platformRules(modules, func(r *ast.Rule, head string) {
		_, extension := extensionShape(head)
		switch how, ok := computed[head]; {
		case ok:
			errs = append(errs, ast.NewError(ast.CompileErr, r.Location,
				"%s has no effect: the library computes the decision's %s; %s (docs/policy-library.md)", head, head, how))
		case library[head] && !extension:
			errs = append(errs, ast.NewError(ast.CompileErr, r.Location,
				"%s is the library's own rule: a rule of that name here would change it; name yours differently (the extension points are deny, excluded, tags and log_levels; docs/policy-library.md)", head))
		case extension:
			// deny contains 42 passed every check (OPA's type check, the
			// sample input) and failed each request it fired on with a
			// policy_error (the policy-author probe).
			if t := readAsString(r, head); t != nil && ast.IsConstant(t.Value) {
				if _, ok := t.Value.(ast.String); !ok {
					shape, _ := extensionShape(head)
					errs = append(errs, ast.NewError(ast.CompileErr, r.Location, "%s must hold %s; this rule gives %s", head, shape, t))
				}
			}
		}
	})
	if len(errs) == 0 {
		return nil
	}
	sort.Slice(errs, func(i, j int) bool { return errs[i].Location.String() < errs[j].Location.String() })
	return errs
}

// readAsString is the term of an extension point's rule that the library
// reads as a string: deny's and log_levels' element, a tag's value (nil
// for excluded, whose pairs the library checks itself).
func readAsString(r *ast.Rule, head string) *ast.Term {
	switch head {
	case "deny", "log_levels":
		return r.Head.Key
	case "tags":
		return r.Head.Value
	}
	return nil
}

// extensionPoints are the rules of package stellwerk the library reads
// from a platform's modules, and what each must hold
// (docs/policy-library.md).
var extensionPoints = []struct{ name, shape string }{
	{"deny", "strings (the reasons)"},
	{"excluded", `[model id, reason] pairs of two strings, e.g. ["gpt-4o", "no US models for legal"]`},
	{"tags", "string keys and values (tags[key] := value)"},
	{"log_levels", `"debug", "info" or "warn"`},
}

// extensionShape is what an extension point must hold; false for a name
// that is none.
func extensionShape(name string) (string, bool) {
	for _, ep := range extensionPoints {
		if ep.name == name {
			return ep.shape, true
		}
	}
	return "", false
}

// platformRules calls fn with each rule of a platform's module (not the
// library's) in package stellwerk, and the name its head defines.
func platformRules(mods map[string]*ast.Module, fn func(r *ast.Rule, head string)) {
	for name, m := range mods {
		if strings.HasPrefix(name, "library/") || !m.Package.Path.Equal(decisionPackage) {
			continue
		}
		for _, r := range m.Rules {
			fn(r, r.Head.Ref()[0].String())
		}
	}
}

// shapeHint points a type error the library's reading of an extension
// point raised at the platform's rules that feed it: the error's file is
// the library's, the mistake is the author's (a helper was told
// decision.rego:61 for its excluded of bare ids).
func shapeHint(mods map[string]*ast.Module) string {
	var hints []string
	platformRules(mods, func(r *ast.Rule, head string) {
		if shape, ok := extensionShape(head); ok {
			hints = append(hints, fmt.Sprintf("%s at %s must hold %s", head, r.Location, shape))
		}
	})
	if len(hints) == 0 {
		return ""
	}
	sort.Strings(hints)
	return "\n\tthe library reads your rules here; check their shape: " + strings.Join(hints, "; ")
}

// unsafeBuiltins are the built-ins a policy may not call: a decision is
// made from its input alone, so it can be replayed and memoised, and a
// policy neither waits on the network in the request path nor reads the
// process's environment, where provider keys live (opa.runtime).
var unsafeBuiltins = map[string]struct{}{
	ast.HTTPSend.Name:        {},
	ast.NetLookupIPAddr.Name: {},
	ast.OPARuntime.Name:      {},
}

// capabilities are this OPA's, less the unsafe built-ins: a policy that
// calls one does not compile ("undefined function http.send").
var capabilities = sync.OnceValue(func() *ast.Capabilities {
	c := ast.CapabilitiesForThisVersion()
	c.Builtins = slices.DeleteFunc(slices.Clone(c.Builtins), func(b *ast.Builtin) bool {
		_, unsafe := unsafeBuiltins[b.Name]
		return unsafe
	})
	return c
})

// newCompiler compiles Rego v1 without the unsafe built-ins.
func newCompiler() *ast.Compiler {
	return ast.NewCompiler().WithDefaultRegoVersion(ast.RegoV1).WithCapabilities(capabilities())
}

// TestResult is one Rego test's outcome.
type TestResult struct {
	Name   string // package.test_name
	File   string // dir/… (the policy dir's) or library/…
	Line   int    // of the test rule in File
	Passed bool
	Error  string
	// Output is what the test's evaluation print()ed.
	Output string
}

// RunTests runs every *_test.rego of a source against its modules with
// OPA's tester (Rego v1), after the checks a load makes (compile, the
// decision's shape), so a policy that passes its tests also loads.
func RunTests(ctx context.Context, src Source) ([]TestResult, error) {
	f, err := src.collect()
	if err != nil {
		return nil, err
	}
	if _, err := load(ctx, f); err != nil {
		return nil, err
	}
	return runTests(ctx, f)
}

// runTests runs the library's tests against the library alone (they pin
// its exact decisions, which an organisation's own rules change on
// purpose) and the policy dir's tests against everything that is loaded.
// The dir's tests may call the library's fixtures (helpers_test.rego);
// the library's test_ rules and its example modules in package stellwerk
// are not part of their run.
func runTests(ctx context.Context, f files) ([]TestResult, error) {
	lib, dir := map[string]*ast.Module{}, map[string]*ast.Module{}
	popts := ast.ParserOptions{RegoVersion: ast.RegoV1}
	var libTests, dirTests bool
	for _, set := range []map[string]string{f.modules, f.tests} {
		for name, src := range set {
			m, err := ast.ParseModuleWithOpts(name, src, popts)
			if err != nil {
				return nil, err
			}
			fromLib := strings.HasPrefix(name, "library/")
			_, isTest := f.tests[name]
			switch {
			case !fromLib:
				dir[name] = m
				dirTests = dirTests || isTest
			case !isTest:
				lib[name], dir[name] = m, m
			default:
				lib[name], libTests = m, true
				if m.Package.Path.String() != "data.stellwerk" {
					dir[name] = fixtures(m)
				}
			}
		}
	}
	var runs []map[string]*ast.Module
	if libTests {
		runs = append(runs, lib)
	}
	if dirTests {
		runs = append(runs, dir)
	}
	var results []*tester.Result
	for _, mods := range runs {
		// print() in a module or a test is its author's debugging aid:
		// kept for the tests (Output), erased from the policy that serves.
		ch, err := tester.NewRunner().SetCompiler(newCompiler().WithEnablePrintStatements(true)).RaiseBuiltinErrors(true).
			SetTimeout(30*time.Second).SetModules(mods).RunTests(ctx, nil)
		if err != nil {
			return nil, err
		}
		for r := range ch {
			results = append(results, r)
		}
	}
	return testResults(results), nil
}

// fixtures is a library test module without its test_ rules: the functions
// and inputs a policy's own tests may build on.
func fixtures(m *ast.Module) *ast.Module {
	c := m.Copy()
	c.Rules = slices.DeleteFunc(c.Rules, func(r *ast.Rule) bool {
		return strings.HasPrefix(r.Head.Ref()[0].String(), "test_")
	})
	return c
}

func testResults(rs []*tester.Result) []TestResult {
	var out []TestResult
	for _, r := range rs {
		tr := TestResult{Name: strings.TrimPrefix(r.Package, "data.") + "." + r.Name, Passed: !r.Fail && r.Error == nil, Output: string(r.Output)}
		if r.Location != nil {
			tr.File, tr.Line = r.Location.File, r.Location.Row
		}
		if r.Error != nil {
			tr.Error = r.Error.Error()
		} else if r.Fail {
			tr.Error = "failed"
		}
		out = append(out, tr)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}
