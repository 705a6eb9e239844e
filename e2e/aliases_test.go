package e2e

import (
	"encoding/json"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/tidwall/gjson"

	"github.com/stellwerk/stellwerk/internal/auth"
	"github.com/stellwerk/stellwerk/internal/config"
	"github.com/stellwerk/stellwerk/internal/harness"
)

// TestRetiredModelAnswersToItsAlias: a provider retires a model and the
// catalog replaces it. Applications that pin its id, a key limited to it,
// a deployed route naming it and a per-request allow list naming it kept
// failing (404, 401-like silence, 503) until each was edited (the catalog
// probe). With the old id an alias of its successor, a reload keeps every
// one of them working, each answer says which name it was asked by, and
// an alias never tells a caller about a model it may not use.
func TestRetiredModelAnswersToItsAlias(t *testing.T) {
	t.Parallel()
	// A platform rule written against the old id: once it is an alias it
	// never applies (the policy sees ids), and each reload says so.
	policyDir := t.TempDir()
	if err := os.WriteFile(filepath.Join(policyDir, "legacy.rego"),
		[]byte("package stellwerk\n\ntags[\"legacy\"] := \"yes\" if input.request.model == \"old\"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	s := harness.Start(t, harness.Options{
		Providers: []harness.ProviderSpec{{Name: "p", Key: "sk-p", Residency: "eu"}, {Name: "q", Key: "sk-q", Residency: "us"}},
		Models: []config.Model{
			{ID: "old", Provider: "p", ProviderModel: "old-up", ContextWindow: 8000},
			{ID: "new", Provider: "p", ProviderModel: "new-up", ContextWindow: 8000},
			{ID: "hidden", Provider: "q", ProviderModel: "hidden-up", ContextWindow: 8000},
		},
		DefaultModel: "new",
		Mutate: func(c *config.Config) {
			c.Auth.Mode = "keys"
			c.Keys = append(c.Keys, config.Key{ID: "app", Workspace: "default", SHA256: auth.Hash("sk-alias-app")},
				config.Key{ID: "narrow", Workspace: "narrow", SHA256: auth.Hash("sk-alias-narrow")})
			c.Workspaces = append(c.Workspaces, config.Workspace{Name: "narrow", Deny: []string{"hidden"}})
			c.Policy.Dir = policyDir
		},
	})
	app := map[string]string{"Authorization": "Bearer sk-alias-app"}
	resp, b := adminDo(t, s, "POST", "/admin/keys", `{"id":"pinned","workspace":"default","models":["old"]}`)
	if resp.StatusCode != 201 {
		t.Fatalf("create: %d %s", resp.StatusCode, b)
	}
	var created struct{ Secret string }
	mustJSON(t, b, &created)
	pinned := map[string]string{"Authorization": "Bearer " + created.Secret}
	if err := os.MkdirAll(filepath.Join(s.Dir, "routes"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(s.Dir, "routes", "eu.yaml"), []byte("route: eu\nnodes:\n  - id: strong\n    model: old\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	chat := func(model string, h map[string]string) (*http.Response, []byte) {
		return post(t, s.URL+"/v1/chat/completions", `{"model":"`+model+`","messages":[{"role":"user","content":"hi"}]}`, h)
	}
	waitFor(t, "the route deployed", func() bool {
		resp, _ := chat("route:eu", app)
		return resp.StatusCode == 200 && resp.Header.Get("x-stellwerk-model") == "old"
	})

	// The reload: old is retired, new answers to its id; the narrow
	// workspace's deny list names hidden by a name of the team's own.
	cfg := *s.Config
	cfg.Models = []config.Model{cfg.Models[1], cfg.Models[2]}
	cfg.Models[0].Aliases = []string{"old"}
	cfg.Routing.Aliases = map[string]string{"secret-name": "hidden"}
	cfg.Workspaces = slices.Clone(cfg.Workspaces)
	for i := range cfg.Workspaces {
		if cfg.Workspaces[i].Name == "narrow" {
			cfg.Workspaces[i].Deny = []string{"secret-name"}
		}
	}
	s.WriteConfig(&cfg)
	waitFor(t, "the reload with the alias", func() bool {
		resp, _ := chat("old", app)
		return resp.StatusCode == 200 && resp.Header.Get("x-stellwerk-model") == "new"
	})
	waitFor(t, "the reload's word on the policy", func() bool {
		return strings.Contains(s.Log("stellwerk"), `"msg":"the policy names a model by an alias, which it never sees","where":"`) &&
			strings.Contains(s.Log("stellwerk"), `legacy.rego:3: \"old\" is an alias of the model \"new\"`)
	})
	p := s.Providers["p"]
	p.Reset()

	// The official SDK, pinned to the old id.
	py := harness.RequirePython(t)
	out, err := exec.Command(py, filepath.Join(harness.Root(), "e2e", "clients", "python", "aliases.py"), s.URL, "sk-alias-app", "old").Output()
	if err != nil {
		t.Fatalf("python: %v\n%s", err, out)
	}
	var sdk struct {
		Served       string
		DecisionID   string `json:"decision_id"`
		RoutingAlias string `json:"routing_alias"`
		Reason       string
		Retrieved    struct {
			ID      string
			AliasOf string `json:"alias_of"`
		}
		Listed []string
	}
	if err := json.Unmarshal(out, &sdk); err != nil {
		t.Fatalf("python printed %q: %v", out, err)
	}
	if sdk.Served != "new" || sdk.RoutingAlias != "old" || !strings.Contains(sdk.Reason, "as old, an alias of new") {
		t.Errorf("SDK chat with the old id: %+v", sdk)
	}
	if sdk.Retrieved.ID != "old" || sdk.Retrieved.AliasOf != "new" || slices.Contains(sdk.Listed, "old") || !slices.Contains(sdk.Listed, "new") {
		t.Errorf("SDK models: retrieve %+v, list %v", sdk.Retrieved, sdk.Listed)
	}
	if reqs := p.Requests(); len(reqs) != 1 || gjson.GetBytes(reqs[0].Body, "model").Str != "new-up" {
		t.Errorf("the provider got %d requests, the last for %q", len(reqs), gjson.GetBytes(reqs[len(reqs)-1].Body, "model").Str)
	}
	// The audit record keeps the name the request sent.
	var rec string
	waitFor(t, "the SDK request's record", func() bool {
		recs := auditPage(t, s, "kind=decision&decision_id="+sdk.DecisionID).Records
		if len(recs) == 1 {
			rec = string(recs[0].Record)
		}
		return rec != ""
	})
	if m := gjson.Get(rec, "request.model").Str; m != "old" {
		t.Errorf("the record's request.model is %q: %.400s", m, rec)
	}

	// The key limited to old, the route naming it, a per-request allow
	// list naming it: all served by new.
	if resp, b := chat("auto", pinned); resp.StatusCode != 200 || resp.Header.Get("x-stellwerk-model") != "new" {
		t.Errorf("the key limited to old: %d %s %.300s", resp.StatusCode, resp.Header.Get("x-stellwerk-model"), b)
	}
	if strings.Contains(s.Log("stellwerk"), "virtual key may use models the catalog no longer has") {
		t.Errorf("the reload warned of the key whose model is an alias now")
	}
	if resp, b := chat("route:eu", app); resp.StatusCode != 200 || resp.Header.Get("x-stellwerk-model") != "new" {
		t.Errorf("route:eu naming old: %d %s %.300s", resp.StatusCode, resp.Header.Get("x-stellwerk-model"), b)
	}
	resp, b = post(t, s.URL+"/v1/chat/completions", `{"model":"auto","policy":{"allow":["old"]},"messages":[{"role":"user","content":"hi"}]}`, app)
	if resp.StatusCode != 200 || resp.Header.Get("x-stellwerk-model") != "new" {
		t.Errorf("policy.allow [old]: %d %s %.300s", resp.StatusCode, resp.Header.Get("x-stellwerk-model"), b)
	}
	// The record keeps the policy as sent, which its fingerprint is of
	// (the red team: the record held the resolved list).
	pid := resp.Header.Get("x-stellwerk-decision-id")
	var prec string
	waitFor(t, "the allow-list request's record", func() bool {
		if recs := auditPage(t, s, "kind=decision&decision_id="+pid).Records; len(recs) == 1 {
			prec = string(recs[0].Record)
		}
		return prec != ""
	})
	if got := gjson.Get(prec, "request_policy.policy").Raw; got != `{"allow":["old"]}` {
		t.Errorf("the record's request policy is %s, sent as {\"allow\":[\"old\"]}", got)
	}

	// Denied to the narrow workspace by its alias: the alias is not found,
	// and the answer does not name the model behind it.
	narrow := map[string]string{"Authorization": "Bearer sk-alias-narrow"}
	for _, name := range []string{"secret-name", "hidden"} {
		resp, b := chat(name, narrow)
		if resp.StatusCode != 404 || !strings.Contains(string(b), "model_not_found") || (name != "hidden" && strings.Contains(string(b), "hidden")) {
			t.Errorf("%s to the narrow workspace: %d %s", name, resp.StatusCode, b)
		}
		if code, b := get(t, s, "/v1/models/"+name, "sk-alias-narrow"); code != 404 {
			t.Errorf("GET /v1/models/%s to the narrow workspace: %d %s", name, code, b)
		}
	}
	if n := len(s.Providers["q"].Requests()); n != 0 {
		t.Errorf("the hidden model's provider got %d requests", n)
	}
}
