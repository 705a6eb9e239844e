package policy

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strings"
	"time"

	"github.com/open-policy-agent/opa/v1/ast"
	"github.com/open-policy-agent/opa/v1/rego"
	"github.com/open-policy-agent/opa/v1/tester"
)

// Query is the one query stellwerk evaluates.
const Query = "data.stellwerk.decision"

// Engine is one compiled, checked policy version. It is immutable and safe
// for concurrent use.
type Engine struct {
	query    rego.PreparedEvalQuery
	memo     *memo // nil when decisions cannot be memoised
	Version  string
	Modules  []string
	LoadedAt time.Time
	files    files // the sources it was compiled from, for Bundle
	// Warnings name the modules that cannot contribute to the decision
	// (unreachable); logged at load, printed by policy test and config check.
	Warnings []string
}

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
	c := ast.NewCompiler().WithDefaultRegoVersion(ast.RegoV1)
	if c.Compile(parsed); c.Failed() {
		return nil, fmt.Errorf("compile: %w", c.Errors)
	}
	pq, err := rego.New(rego.Query(Query), rego.SetRegoVersion(ast.RegoV1), rego.Compiler(c)).PrepareForEval(ctx)
	if err != nil {
		return nil, fmt.Errorf("compile: %w", err)
	}
	e := &Engine{query: pq, Version: f.version, Modules: names, LoadedAt: time.Now(), files: f, Warnings: unreachable(c.Modules)}
	if root, ok := analyze(c.Modules); ok {
		e.memo = newMemo(root)
	}
	if _, err := e.Eval(ctx, SampleInput()); err != nil {
		return nil, fmt.Errorf("policy %s rejected: %w", e.Version, err)
	}
	return e, nil
}

// Decide is Eval for a request's input, built here from in and ct. A
// request the policy cannot tell apart from one decided before (the same
// values at every input path the modules read, the same catalog) gets that
// decision without an evaluation. The decision is shared: read it, never
// change it.
func (e *Engine) Decide(ctx context.Context, in *Input, ct *CatalogTerms) (Decision, error) {
	var parts inputParts
	var key []byte
	if e.memo != nil && ct.whole(in.Candidates) {
		key = e.memo.key(make([]byte, 0, 512), in, ct, &parts)
		if d := e.memo.get(key); d != nil {
			e.memo.hits.Add(1)
			return *d, nil
		}
		e.memo.misses.Add(1)
	}
	v, release := in.value(ct, &parts)
	d, err := e.Eval(ctx, v)
	release()
	if err == nil && key != nil {
		e.memo.put(key, &d)
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

// Eval evaluates the decision for one input.
func (e *Engine) Eval(ctx context.Context, input ast.Value) (Decision, error) {
	rs, err := e.query.Eval(ctx, rego.EvalParsedInput(input))
	if err != nil {
		return Decision{}, fmt.Errorf("evaluation: %w", err)
	}
	if len(rs) == 0 || len(rs[0].Expressions) == 0 {
		return Decision{}, ErrNoDecision
	}
	return decode(rs[0].Expressions[0].Value)
}

// TestResult is one Rego test's outcome.
type TestResult struct {
	Name   string // package.test_name
	File   string
	Passed bool
	Error  string
}

// RunTests runs every *_test.rego of a source against its modules with
// OPA's tester (Rego v1).
func RunTests(ctx context.Context, src Source) ([]TestResult, error) {
	f, err := src.collect()
	if err != nil {
		return nil, err
	}
	return runTests(ctx, f)
}

func runTests(ctx context.Context, f files) ([]TestResult, error) {
	parsed := map[string]*ast.Module{}
	popts := ast.ParserOptions{RegoVersion: ast.RegoV1}
	for _, set := range []map[string]string{f.modules, f.tests} {
		for name, src := range set {
			m, err := ast.ParseModuleWithOpts(name, src, popts)
			if err != nil {
				return nil, err
			}
			parsed[name] = m
		}
	}
	ch, err := tester.NewRunner().SetCompiler(ast.NewCompiler().WithDefaultRegoVersion(ast.RegoV1)).
		SetTimeout(30*time.Second).SetModules(parsed).RunTests(ctx, nil)
	if err != nil {
		return nil, err
	}
	var out []TestResult
	for r := range ch {
		tr := TestResult{Name: strings.TrimPrefix(r.Package, "data.") + "." + r.Name, Passed: !r.Fail && r.Error == nil}
		if r.Location != nil {
			tr.File = r.Location.File
		}
		if r.Error != nil {
			tr.Error = r.Error.Error()
		} else if r.Fail {
			tr.Error = "failed"
		}
		out = append(out, tr)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out, nil
}
