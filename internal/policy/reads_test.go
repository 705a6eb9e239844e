package policy

import (
	"context"
	"strings"
	"testing"
)

// TestReads: the input paths a policy reads, as replay asks about the
// values an audit record keeps redacted (the redaction probe: a rule on
// input.request.user was invisible to the what-if).
func TestReads(t *testing.T) {
	type ask struct {
		path []string
		want bool
	}
	for name, tc := range map[string]struct {
		rule string
		asks []ask
	}{
		"the library alone": {"", []ask{
			{[]string{"request", "user"}, false},
			{[]string{"request", "metadata", "team"}, false},
			{[]string{"request", "headers", "x-tenant"}, false},
			{[]string{"classification"}, true},
		}},
		"the user by name": {`deny contains "blocked" if input.request.user == "bob@example.com"`, []ask{
			{[]string{"request", "user"}, true},
			{[]string{"request", "metadata", "team"}, false},
		}},
		"one metadata key": {`deny contains "no team" if input.request.metadata.team == ""`, []ask{
			{[]string{"request", "metadata", "team"}, true},
			{[]string{"request", "metadata", "project"}, false},
			{[]string{"request", "user"}, false},
		}},
		"every metadata value": {`deny contains v if { some k, v in input.request.metadata; startswith(k, "x") }`, []ask{
			{[]string{"request", "metadata", "team"}, true},
			{[]string{"request", "headers", "x-tenant"}, false},
		}},
		"the request whole": {`deny contains "big" if count(input.request) > 100`, []ask{
			{[]string{"request", "headers", "x-tenant"}, true},
		}},
	} {
		t.Run(name, func(t *testing.T) {
			files := map[string]string{}
			if tc.rule != "" {
				files["r.rego"] = "package stellwerk\n\n" + tc.rule + "\n"
			}
			e, err := Load(context.Background(), Source{Library: true, Dir: policyDir(t, files)})
			if err != nil {
				t.Fatal(err)
			}
			for _, a := range tc.asks {
				if got := e.Reads(a.path...); got != a.want {
					t.Errorf("Reads(input.%s) = %v, want %v", strings.Join(a.path, "."), got, a.want)
				}
			}
		})
	}
}

// TestGuardedReads: a member of an element is read under guards only when
// every read of it follows, in its body, guards on the same element; the
// library's budgets read name, warn and exceeded only of downgrade budgets.
func TestGuardedReads(t *testing.T) {
	for name, tc := range map[string]struct {
		rule        string
		conditional map[string]bool // members of input.budgets[_]
	}{
		"the library alone": {"", map[string]bool{"action": false, "name": true, "warn": true, "exceeded": true}},
		"a name read before its guard": {`names contains n if { n := input.budgets[i].name; input.budgets[i].action == "block" }`,
			map[string]bool{"action": false, "name": false}},
		"a name read under a negated guard": {`names contains n if { not input.budgets[i].action == "block"; n := input.budgets[i].name }`,
			map[string]bool{"name": false}},
		"a name read in a comprehension": {`names contains n if { input.budgets[i].action == "block"; n := [x | x := input.budgets[i].name] }`,
			map[string]bool{"name": false}},
		"a guard on another element": {`names contains n if { input.budgets[j].action == "block"; n := input.budgets[i].name }`,
			map[string]bool{"name": false}},
		"a name read under its own guard": {`names contains n if { input.budgets[i].scope == "key"; n := input.budgets[i].name }`,
			map[string]bool{"name": true, "scope": false}},
	} {
		t.Run(name, func(t *testing.T) {
			files := map[string]string{}
			if tc.rule != "" {
				files["r.rego"] = "package stellwerk\n\n" + tc.rule + "\n"
			}
			e, err := Load(context.Background(), Source{Library: true, Dir: policyDir(t, files)})
			if err != nil {
				t.Fatal(err)
			}
			el := e.reads.get("budgets").get("0")
			for m, want := range tc.conditional {
				p := el.get(m)
				if p == nil {
					t.Fatalf("input.budgets[_].%s is not read", m)
				}
				if got := p.conditional(); got != want {
					t.Errorf("input.budgets[_].%s read under guards: %v, want %v", m, got, want)
				}
			}
		})
	}
}
