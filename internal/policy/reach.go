package policy

import (
	"fmt"
	"slices"
	"sort"
	"strings"

	"github.com/open-policy-agent/opa/v1/ast"
)

// decisionPackage is the package whose rules the decision is made of.
var decisionPackage = ast.MustParseRef("data.stellwerk")

// unreachable names the modules that cannot contribute to
// data.stellwerk.decision, with why: those not in package stellwerk that
// no contributing module refers to (or imports), directly or through
// others. Such a module — `package acme` beside the library — loads,
// compiles and is silently ignored; a policy author wants to be told.
// The modules must be compiled, so that every reference is a full data
// path.
func unreachable(mods map[string]*ast.Module) []string {
	refs := make(map[string][]ast.Ref, len(mods)) // module -> the data paths it reads
	var queue []string
	in := map[string]bool{}
	for name, m := range mods {
		for _, rule := range m.Rules { // not m: its package path would refer to its parent
			ast.WalkRefs(rule, func(r ast.Ref) bool {
				if p := r.GroundPrefix(); len(p) > 1 && p[0].Equal(ast.DefaultRootDocument) {
					refs[name] = append(refs[name], p)
				}
				return false
			})
		}
		for _, imp := range m.Imports {
			if r, ok := imp.Path.Value.(ast.Ref); ok && r[0].Equal(ast.DefaultRootDocument) {
				refs[name] = append(refs[name], r)
			}
		}
		if m.Package.Path.Equal(decisionPackage) {
			in[name] = true
			queue = append(queue, name)
		}
	}
	for len(queue) > 0 {
		cur := queue[0]
		queue = queue[1:]
		for _, r := range refs[cur] {
			for name, m := range mods {
				if in[name] {
					continue
				}
				if p := m.Package.Path; r.HasPrefix(p) || p.HasPrefix(r) {
					in[name] = true
					queue = append(queue, name)
				}
			}
		}
	}
	var out []string
	for name, m := range mods {
		if !in[name] {
			out = append(out, fmt.Sprintf("%s (package %s) cannot contribute to %s: it is not package stellwerk and nothing under it refers to it",
				name, m.Package.Path.String()[len("data."):], Query))
		}
	}
	sort.Strings(out)
	return out
}

// Unreachable compiles a source's modules (not its tests) and returns the
// warnings of unreachable, for `stellwerk policy test`, which does not
// otherwise load the policy.
func Unreachable(src Source) ([]string, error) {
	f, err := src.collect()
	if err != nil {
		return nil, err
	}
	parsed := make(map[string]*ast.Module, len(f.modules))
	for name, s := range f.modules {
		m, err := ast.ParseModuleWithOpts(name, s, ast.ParserOptions{RegoVersion: ast.RegoV1})
		if err != nil {
			return nil, fmt.Errorf("compile: %w", err)
		}
		parsed[name] = m
	}
	c := ast.NewCompiler().WithDefaultRegoVersion(ast.RegoV1)
	if c.Compile(parsed); c.Failed() {
		return nil, fmt.Errorf("compile: %w", c.Errors)
	}
	return f.warnings(c.Modules), nil
}

// warnings are a load's: the modules that cannot contribute, and the data
// files that are not read.
func (f files) warnings(modules map[string]*ast.Module) []string {
	w := append(append(append(unreachable(modules), unread(modules)...), unknownInputs(modules)...), unknownLogLevels(modules)...)
	for _, d := range f.data {
		w = append(w, d+": data files are not read (stellwerk loads *.rego only); write the data as a rule, e.g. blocked_users := {\"mallory\"} in a module")
	}
	return w
}

// unread names the rules of policy.dir's modules in package stellwerk that
// no rule reads and that are none of the extension points: a typo (denny,
// log_level) loads, compiles and silently has no effect.
func unread(mods map[string]*ast.Module) []string {
	read := map[string]bool{"decision": true} // the query
	for _, m := range mods {
		for _, rule := range m.Rules {
			ast.WalkRefs(rule, func(r ast.Ref) bool {
				if len(r) > 2 && r.HasPrefix(decisionPackage) {
					if s, ok := r[2].Value.(ast.String); ok {
						read[string(s)] = true
					}
				}
				return false
			})
		}
	}
	names := make([]string, len(extensionPoints))
	for i, ep := range extensionPoints {
		names[i] = ep.name
	}
	var out []string
	seen := map[string]bool{} // per file and rule name
	platformRules(mods, func(rule *ast.Rule, head string) {
		key := rule.Location.File + "\x00" + head
		if _, ext := extensionShape(head); ext || seen[key] || read[head] || strings.HasPrefix(head, "test_") {
			return
		}
		seen[key] = true
		hint := ""
		for _, ep := range names {
			if editDistance(head, ep) <= 2 {
				hint = "; did you mean " + ep + "?"
			}
		}
		out = append(out, fmt.Sprintf("%s: rule %s is read by no rule and is none of the extension points (%s): it has no effect%s",
			rule.Location, head, strings.Join(names, ", "), hint))
	})
	sort.Strings(out)
	return out
}

// unknownLogLevels names the log_levels a platform rule adds that the
// decision does not know (warning, trace): the decision's log level ignores
// them, so the rule has no effect (the policy-author probe: nothing said so,
// while denny got "did you mean deny?").
func unknownLogLevels(mods map[string]*ast.Module) []string {
	var out []string
	platformRules(mods, func(rule *ast.Rule, head string) {
		if head != "log_levels" || rule.Head.Key == nil {
			return
		}
		if s, ok := rule.Head.Key.Value.(ast.String); ok && !slices.Contains(logLevels[1:], string(s)) {
			out = append(out, fmt.Sprintf("%s: log_levels contains %q, which is none of %s: it has no effect",
				rule.Location, string(s), strings.Join(logLevels[1:], ", ")))
		}
	})
	sort.Strings(out)
	return out
}

// editDistance is the Levenshtein distance of two short names.
func editDistance(a, b string) int {
	prev := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur := make([]int, len(b)+1)
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev = cur
	}
	return prev[len(b)]
}
