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
