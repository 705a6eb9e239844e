package config

import (
	"strings"
	"testing"
)

const withAliases = `
routing: {default_model: old, baseline_model: legacy, aliases: {fast: m2, legacy: m1}}
providers:
  - {name: p1, base_url: "http://127.0.0.1:8081/v1", residency: eu}
models:
  - {id: m1, provider: p1, context_window: 1000, aliases: [old, older]}
  - {id: m2, provider: p1, context_window: 1000}
workspaces:
  - {name: w, default_model: fast, allow: [old, m2], deny: [older], teams: [{name: t, allow: [fast]}]}
rate_limits: [{name: r, scope: model, subject: fast, requests_per_minute: 5}]
`

// TestAliasesResolved: wherever the config names a model, an alias reads
// as its id, because what reads the lists (the Rego library) and the
// rate limits' counters compare ids.
func TestAliasesResolved(t *testing.T) {
	c, err := Decode(strings.NewReader(withAliases))
	if err != nil {
		t.Fatal(err)
	}
	w := c.Workspaces[0]
	got := []string{c.Routing.DefaultModel, c.Routing.BaselineModel, w.DefaultModel, strings.Join(w.Allow, ","), strings.Join(w.Deny, ","),
		strings.Join(w.Teams[0].Allow, ","), c.RateLimits[0].Subject}
	want := []string{"m1", "m1", "m2", "m1,m2", "m1", "m2", "m2"}
	if strings.Join(got, " ") != strings.Join(want, " ") {
		t.Errorf("resolved %v, want %v", got, want)
	}
	if a := c.ModelAliases(); len(a) != 4 || a["old"] != "m1" || a["older"] != "m1" || a["fast"] != "m2" || a["legacy"] != "m1" {
		t.Errorf("ModelAliases %v", a)
	}
}

// TestOllamaModelIDs: Ollama names its models by tag (llama3.1:8b), and
// an operator names them so in the catalog, as ids and aliases; the
// on-prem probe got "models[3].id … must be letters, digits, …".
func TestOllamaModelIDs(t *testing.T) {
	y := strings.Replace(withAliases, "{id: m2,", "{id: \"llama3.1:8b\", aliases: [\"llama3:latest\"],", 1)
	y = strings.ReplaceAll(y, "m2", "llama3.1:8b")
	c, err := Decode(strings.NewReader(y))
	if err != nil {
		t.Fatal(err)
	}
	if c.Models[1].ID != "llama3.1:8b" || c.ModelAliases()["llama3:latest"] != "llama3.1:8b" || c.Workspaces[0].Allow[1] != "llama3.1:8b" {
		t.Errorf("models %+v, aliases %v", c.Models[1], c.ModelAliases())
	}
}

func TestAliasesRefused(t *testing.T) {
	for name, tc := range map[string]struct{ replace, with, want string }{
		"an alias that is an id": {"aliases: [old, older]", "aliases: [old, m2]",
			`models[0].aliases[1]: "m2" is the id of a model: an alias names no model of its own`},
		"reserved":               {"aliases: [old, older]", "aliases: [old, auto]", `models[0].aliases[1]: "auto" is reserved`},
		"a route":                {"aliases: [old, older]", "aliases: [old, \"route:x\"]", `models[0].aliases[1]: "route:x" is reserved`},
		"not an id":              {"aliases: [old, older]", "aliases: [old, \"a b\"]", `models[0].aliases[1]: "a b" must be letters`},
		"a provider":             {"aliases: [old, older]", "aliases: [old, \"provider:p1\"]", `models[0].aliases[1]: "provider:p1" is reserved`},
		"an id a provider":       {"{id: m2,", "{id: \"provider:p1\",", `models[1].id: "provider:p1" is reserved`},
		"an id a route":          {"{id: m2,", "{id: \"route:m2\",", `models[1].id: "route:m2" is reserved`},
		"an id from a colon":     {"{id: m2,", "{id: \":m2\",", `models[1].id: ":m2" must be letters`},
		"given twice":            {"legacy: m1}", "legacy: m1, older: m2}", `routing.aliases.older: "older" is already an alias of model "m1"`},
		"of an unknown model":    {"fast: m2", "fast: m3", `routing.aliases.fast: unknown model "m3"`},
		"of an alias":            {"fast: m2", "fast: old", `routing.aliases.fast: unknown model "old" (an alias names a model by its id)`},
		"routing alias is an id": {"fast: m2", "m2: m1", `routing.aliases.m2: "m2" is the id of a model`},
	} {
		t.Run(name, func(t *testing.T) {
			y := strings.Replace(withAliases, tc.replace, tc.with, 1)
			if y == withAliases {
				t.Fatal("the case changes nothing")
			}
			_, err := Decode(strings.NewReader(y))
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error %v, want %q", err, tc.want)
			}
		})
	}
}

// TestAllowedHosts: the names the standalone listener answers to. Open
// mode takes localhost alone on any listener (0.0.0.0 takes 127.0.0.1's
// connections: the red team); keys mode only on a loopback listener.
func TestAllowedHosts(t *testing.T) {
	for name, tc := range map[string]struct {
		c    Config
		want []string
	}{
		"open, loopback":        {Config{Envoy: Envoy{Listener: "127.0.0.1:10000"}}, []string{"localhost"}},
		"open, wildcard":        {Config{Envoy: Envoy{Listener: "0.0.0.0:10000"}}, []string{"localhost"}},
		"open, IPv6 wildcard":   {Config{Envoy: Envoy{Listener: "[::]:10000"}}, []string{"localhost"}},
		"keys, loopback":        {Config{Auth: Auth{Mode: "keys"}, Envoy: Envoy{Listener: "[::1]:10000"}}, []string{"localhost"}},
		"keys, wildcard":        {Config{Auth: Auth{Mode: "keys"}, Envoy: Envoy{Listener: "0.0.0.0:10000"}}, nil},
		"named":                 {Config{Envoy: Envoy{Listener: "0.0.0.0:10000", Hosts: []string{"gw.example.com"}}}, []string{"gw.example.com"}},
		"any":                   {Config{Envoy: Envoy{Listener: "127.0.0.1:10000", Hosts: []string{"*"}}}, nil},
		"the listener is yours": {Config{Envoy: Envoy{Mode: ModeClusters, Listener: "127.0.0.1:10000"}}, nil},
	} {
		if got := tc.c.AllowedHosts(); strings.Join(got, ",") != strings.Join(tc.want, ",") || (got == nil) != (tc.want == nil) {
			t.Errorf("%s: %v, want %v", name, got, tc.want)
		}
	}
}
