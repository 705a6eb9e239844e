package policy

import (
	"github.com/open-policy-agent/opa/v1/ast"
	"github.com/open-policy-agent/opa/v1/topdown"
)

// Workspaces of the same settings share decisions. The shipped library
// reads the workspace's name only to name it in a reason (an access list
// of its own, a residency it requires), so the name in the memo key kept
// apart the decisions of 200 workspaces that differ in nothing else: the
// bench's --tenants 200x20 evaluated two requests in five at 100 rps.
// A decision whose evaluation never read input.workspace.name is the
// same under any name: it is kept under a key without the name, which
// every workspace with the same other values finds first. Whether it was
// read is seen by a tracer on the evaluation (misses only): the
// expressions that can read it are found when the policy is loaded.

// wsName is the path of the name in the input.
var wsName = [...]string{"workspace", "name"}

// nameReads are the expressions whose evaluation may read the workspace's
// name: those that reference it (or a value holding it), every expression
// of a rule that does, and those that reference such a rule (the rule
// index reads the input of a rule's bodies before any of them runs).
// Each is known by its pointer and its location (in case the evaluator
// runs a copy).
type nameReads struct {
	exprs map[*ast.Expr]bool
	locs  map[loc]bool
}

type loc struct {
	file     string
	row, col int
}

// findNameReads returns nil when no evaluation may go without the name:
// the query's own rule reads it.
func findNameReads(mods map[string]*ast.Module) *nameReads {
	var rules []ast.Ref
	nr := &nameReads{exprs: map[*ast.Expr]bool{}, locs: map[loc]bool{}}
	for _, m := range mods {
		for _, r := range m.Rules {
			if !refsAny(r, mayReadName) {
				continue
			}
			rules = append(rules, r.Ref().GroundPrefix())
			ast.WalkExprs(r, func(x *ast.Expr) bool {
				nr.add(x)
				return false
			})
		}
	}
	query := ast.MustParseRef(Query)
	onRule := func(ref ast.Ref) bool {
		if !ref.HasPrefix(ast.DefaultRootRef) {
			return false
		}
		g := ref.GroundPrefix()
		for _, p := range rules {
			if p.HasPrefix(g) || g.HasPrefix(p) {
				return true
			}
		}
		return false
	}
	if onRule(query) {
		return nil
	}
	for _, m := range mods {
		ast.WalkExprs(m, func(x *ast.Expr) bool {
			if refsAny(x, mayReadName) || refsAny(x, onRule) {
				nr.add(x)
			}
			return false
		})
	}
	return nr
}

func (nr *nameReads) add(x *ast.Expr) {
	nr.exprs[x] = true
	if l := x.Loc(); l != nil {
		nr.locs[locKey(l)] = true
	}
}

func locKey(l *ast.Location) loc { return loc{l.File, l.Row, l.Col} }

// refsAny says whether some reference in x satisfies f.
func refsAny(x any, f func(ast.Ref) bool) bool {
	found := false
	ast.WalkRefs(x, func(r ast.Ref) bool {
		if !found && f(r) {
			found = true
		}
		return found
	})
	return found
}

// mayReadName says whether input reference r can read the workspace's
// name: it leads to it (a variable matches any key) or to a value that
// holds it.
func mayReadName(r ast.Ref) bool {
	if !r.HasPrefix(ast.InputRootRef) {
		return false
	}
	for k, want := range wsName {
		if 1+k >= len(r) {
			return true
		}
		if s, ok := r[1+k].Value.(ast.String); ok && string(s) != want {
			return false
		}
	}
	return true
}

// readsName is kept under a key without the name when the evaluation read
// it: every input of the same other values reads it too (the evaluation
// is the same up to the first read), so the next is evaluated without the
// tracer, whose events tripled the allocations of an evaluation.
var readsName = &Decision{}

// nameTracer sees whether an evaluation ran an expression of nameReads.
type nameTracer struct {
	nr   *nameReads
	read bool
}

var _ topdown.QueryTracer = (*nameTracer)(nil)

func (t *nameTracer) Enabled() bool { return true }

func (t *nameTracer) Config() topdown.TraceConfig { return topdown.TraceConfig{} }

func (t *nameTracer) TraceEvent(ev topdown.Event) {
	if t.read || ev.Op != topdown.EvalOp {
		return
	}
	if x, ok := ev.Node.(*ast.Expr); ok && (t.nr.exprs[x] || x.Loc() != nil && t.nr.locs[locKey(x.Loc())]) {
		t.read = true
	}
}

// withoutName is a workspace's paths less its name; nil when the name is
// not read by its own key alone (the workspace read whole or by a
// variable key), or not read at all.
func withoutName(p *paths) *paths {
	if p == nil || p.all || p.any != nil || p.keys[wsName[1]] == nil {
		return nil
	}
	q := &paths{keys: map[string]*paths{}}
	for i, k := range p.names {
		if k == wsName[1] {
			continue
		}
		q.keys[k] = p.keys[k]
		q.names = append(q.names, k)
		q.terms = append(q.terms, p.terms[i])
	}
	return q
}
