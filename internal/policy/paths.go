package policy

import (
	"fmt"
	"sort"
	"strings"
	"sync"

	"github.com/open-policy-agent/opa/v1/ast"

	"github.com/stellwerk/stellwerk/internal/auth"
	"github.com/stellwerk/stellwerk/internal/config"
	"github.com/stellwerk/stellwerk/internal/ledger"
	"github.com/stellwerk/stellwerk/internal/reqpolicy"
)

// inputSchema is an input document with every optional part present (a
// named route, budgets, a team, a per-request policy with every field):
// the paths a policy can read. Built once, for the load's check.
var inputSchema = sync.OnceValue(func() ast.Value {
	in, ct := sampleFacts(map[string]string{})
	q := 0.5
	yes := true
	in.Request.Policy = reqpolicy.Policy{Set: true, Optimize: "cost", Residency: "eu", MaxRisk: "low", MaxCost: 1, SLAMS: 1, MinQuality: &q,
		Allow: []string{"m"}, Deny: []string{"m"}, Fallback: &yes, Fingerprint: "0"}
	in.Request.Route = &RouteFacts{Name: "r", Version: 1, Path: []string{"n"}, Targets: []string{"m"}, Objective: "cost"}
	in.Principal = auth.Principal{Authenticated: true, KeyID: "k", Workspace: in.Workspace.Name, Team: "t", User: "u", Roles: []string{"r"}}
	in.Team = &config.Team{Name: "t", Allow: []string{}, Deny: []string{}}
	in.Budgets = []ledger.BudgetState{{Name: "b", Scope: ledger.ScopeWorkspace, Subject: in.Workspace.Name, Period: ledger.PeriodDay, Limit: 1}}
	v, _ := in.Value(ct) // kept
	return v
})

// openInput are the objects whose keys are the request's or the config's
// own: any key may be read there.
var openInput = map[string]bool{
	"input.request.metadata":          true,
	"input.request.headers":           true,
	"input.classification.pii_counts": true,
	"input.classification.terms":      true,
	"input.classification.unread":     true,
}

// unknownInputs names each reference of policy.dir's modules (tests
// aside) to an input path the input never has, such as
// input.request.metdata: Rego reads it as undefined, so a deny on it never
// fires and a negated one always does (a helper's typos loaded without a
// word). Only the path a reference spells out is checked, up to its first
// variable or computed key.
func unknownInputs(mods map[string]*ast.Module) []string {
	schema := inputSchema()
	var out []string
	seen := map[string]bool{}
	for name, m := range mods {
		if strings.HasPrefix(name, "library/") || strings.HasSuffix(name, "_test.rego") {
			continue
		}
		ast.WalkRefs(m, func(r ast.Ref) bool {
			if !r.HasPrefix(ast.InputRootRef) {
				return false
			}
			path, near := unknownPath(schema, r[1:])
			if path == "" {
				return false
			}
			where := name
			if loc := r[0].Location; loc != nil {
				where = loc.String()
			}
			msg := fmt.Sprintf("%s: %s is not in the input (docs/policy.md): Rego reads it as undefined, so a rule on it never applies (and a negated one always does)", where, path)
			if near != "" {
				msg += "; did you mean " + near + "?"
			}
			if !seen[msg] {
				seen[msg] = true
				out = append(out, msg)
			}
			return false
		})
	}
	sort.Strings(out)
	return out
}

// unknownPath follows terms through schema; it returns the path up to the
// first member the input cannot have, and the closest that it has ("",
// "" when the path exists or cannot be told statically).
func unknownPath(schema ast.Value, terms []*ast.Term) (path, near string) {
	node, at := schema, "input"
	for _, t := range terms {
		key, isString := t.Value.(ast.String)
		switch n := node.(type) {
		case ast.Object:
			if !isString || openInput[at] {
				return "", ""
			}
			v := n.Get(t)
			if v == nil {
				best := 3
				n.Foreach(func(k, _ *ast.Term) {
					if s, ok := k.Value.(ast.String); ok {
						if d := editDistance(string(key), string(s)); d < best {
							best, near = d, at+"."+string(s)
						}
					}
				})
				return at + "." + string(key), near
			}
			node, at = v.Value, at+"."+string(key)
		case *ast.Array:
			if isString {
				return at + "." + string(key), "" // an array has no members by name
			}
			if n.Len() == 0 {
				return "", ""
			}
			node, at = n.Elem(0).Value, at+"[_]"
		default:
			return "", "" // a set, a scalar: left to Rego
		}
	}
	return "", ""
}
