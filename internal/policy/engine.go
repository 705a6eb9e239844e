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
	Version  string
	Modules  []string
	LoadedAt time.Time
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
	opts := []func(*rego.Rego){rego.Query(Query), rego.SetRegoVersion(ast.RegoV1)}
	names := make([]string, 0, len(f.modules))
	for name, src := range f.modules {
		opts = append(opts, rego.Module(name, src))
		names = append(names, name)
	}
	sort.Strings(names)
	pq, err := rego.New(opts...).PrepareForEval(ctx)
	if err != nil {
		return nil, fmt.Errorf("compile: %w", err)
	}
	e := &Engine{query: pq, Version: f.version, Modules: names, LoadedAt: time.Now()}
	if _, err := e.Eval(ctx, SampleInput()); err != nil {
		return nil, fmt.Errorf("policy %s rejected: %w", e.Version, err)
	}
	return e, nil
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
		SetTimeout(30*time.Second).Run(ctx, parsed)
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
