package extproc

import (
	"context"
	"encoding/json"
	"slices"
	"strings"
	"testing"

	"go.uber.org/zap"

	"github.com/stellwerk/stellwerk/internal/auth"
	"github.com/stellwerk/stellwerk/internal/config"
)

// productionState is examples/production.yaml (the shipped 71-model catalog)
// with one key per kind of access list: none, a workspace allow list of two
// models, and a team that denies a provider.
func productionState(tb testing.TB) *State {
	tb.Helper()
	return productionStateEnv(tb, func(string) string { return "" })
}

// productionStateEnv is productionState with the credentials getenv gives.
func productionStateEnv(tb testing.TB, getenv func(string) string) *State {
	tb.Helper()
	c, err := config.Load("../examples/production.yaml")
	if err != nil {
		tb.Fatal(err)
	}
	c.Workspaces = append(c.Workspaces, config.Workspace{Name: "narrow", Allow: []string{"gpt-4o-mini", "mistral-small"}})
	c.Keys = []config.Key{
		{ID: "open", SHA256: auth.Hash("sk-open"), Workspace: "default"},
		{ID: "narrow", SHA256: auth.Hash("sk-narrow"), Workspace: "narrow"},
		{ID: "team", SHA256: auth.Hash("sk-team"), Workspace: "legal", Team: "contracts"},
	}
	c.ApplyDefaults()
	if err := c.Validate(); err != nil {
		tb.Fatal(err)
	}
	return stateFor(tb, c, getenv)
}

// TestModelsPerKey: /v1/models, /v1/models/{id} and a chat request's
// model_not_found show a key only the models its access lists allow, and a
// model it may not use looks exactly like one that does not exist.
func TestModelsPerKey(t *testing.T) {
	st := productionStateEnv(t, func(string) string { return "sk-test" }) // every provider's credential configured
	cases := map[string]struct {
		key, method, path, body string
		status                  int
		want                    string // the model ids listed, or the error message
	}{
		"narrow key lists two": {"narrow", "GET", "/v1/models", "", 200, "auto gpt-4o-mini mistral-small"},
		"narrow key, allowed":  {"narrow", "GET", "/v1/models/mistral-small", "", 200, "mistral-small"},
		"narrow key, auto":     {"narrow", "GET", "/v1/models/auto", "", 200, "auto"},
		"narrow key, excluded": {"narrow", "GET", "/v1/models/gpt-4o", "", 404, `the model "gpt-4o" does not exist or is not available to you`},
		"narrow key, unknown":  {"narrow", "GET", "/v1/models/gpt-9", "", 404, `the model "gpt-9" does not exist or is not available to you`},
		"narrow key, chat excluded": {"narrow", "POST", "/v1/chat/completions", `{"model":"gpt-4o","messages":[{"role":"user","content":"x"}]}`, 404,
			`the model "gpt-4o" does not exist or is not available to you; available: gpt-4o-mini, mistral-small, auto`},
		"narrow key, chat unknown": {"narrow", "POST", "/v1/chat/completions", `{"model":"gpt-9","messages":[{"role":"user","content":"x"}]}`, 404,
			`the model "gpt-9" does not exist or is not available to you; available: gpt-4o-mini, mistral-small, auto`},
		// The models offered are the ones that serve the endpoint (an
		// embeddings request was offered chat models: the peer-switcher
		// probe).
		"narrow key, embeddings unknown": {"narrow", "POST", "/v1/embeddings", `{"model":"gpt-9","input":"x"}`, 404,
			`the model "gpt-9" does not exist or is not available to you; available: auto`},
		"open key, embeddings unknown": {"open", "POST", "/v1/embeddings", `{"model":"gpt-9","input":"x"}`, 404,
			`the model "gpt-9" does not exist or is not available to you; available: azure-eu/text-embedding-3-small, mistral-embed, text-embedding-3-large, text-embedding-3-small, auto`},
		"team key, provider denied": {"team", "GET", "/v1/models/deepseek-chat", "", 404, `the model "deepseek-chat" does not exist or is not available to you`},
		// The SDKs escape the id as a path segment.
		"an id with a slash, escaped": {"open", "GET", "/v1/models/groq%2Fllama-3.3-70b", "", 200, "groq/llama-3.3-70b"},
		"an id with a slash":          {"open", "GET", "/v1/models/groq/llama-3.3-70b", "", 200, "groq/llama-3.3-70b"},
		"escaped, unknown":            {"open", "GET", "/v1/models/groq%2Fnone", "", 404, `the model "groq/none" does not exist or is not available to you`},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			p := &edge{filter: filter{state: st, log: zap.NewNop(), id: "id"}, ctx: context.Background()}
			r := p.handle(headersMsg(tc.method, tc.path, tc.body == "", "authorization", "Bearer sk-"+tc.key))
			if tc.body != "" {
				r = p.handle(bodyMsg(tc.body))
			}
			ir := r.GetImmediateResponse()
			if ir == nil || int(ir.GetStatus().GetCode()) != tc.status {
				t.Fatalf("want %d, got %v", tc.status, r)
			}
			if tc.status != 200 {
				var e struct {
					Error struct{ Code, Message string }
				}
				_ = json.Unmarshal(ir.Body, &e)
				if e.Error.Code != "model_not_found" || e.Error.Message != tc.want {
					t.Errorf("error %+v, want %q", e.Error, tc.want)
				}
				return
			}
			var list struct{ Data []struct{ ID string } }
			var one struct{ ID string }
			_ = json.Unmarshal(ir.Body, &list)
			_ = json.Unmarshal(ir.Body, &one)
			ids := []string{one.ID}
			if list.Data != nil {
				ids = ids[:0]
				for _, d := range list.Data {
					ids = append(ids, d.ID)
				}
			}
			if strings.Join(ids, " ") != tc.want {
				t.Errorf("listed %v, want %s", ids, tc.want)
			}
		})
	}

	// Keys without lists see the whole catalog; a team sees less than its
	// workspace.
	count := func(key string) int {
		p := &edge{filter: filter{state: st, log: zap.NewNop(), id: "id"}, ctx: context.Background()}
		var list struct{ Data []struct{ ID string } }
		_ = json.Unmarshal(p.handle(headersMsg("GET", "/v1/models", true, "authorization", "Bearer sk-"+key)).GetImmediateResponse().Body, &list)
		return len(list.Data)
	}
	if n := count("open"); n != len(st.Router.Catalog.Models())+1 {
		t.Errorf("open key sees %d of %d", n, len(st.Router.Catalog.Models())+1)
	}
	if n := count("team"); n >= count("open") || n < 2 {
		t.Errorf("team key sees %d", n)
	}
}

// TestModelsNeedACredential: a model whose provider has no credential
// configured here is not listed, and not found by id (pinned, it answers
// 502 provider_credential_missing); SDK model pickers offered it. A
// workspace's own key for the provider lists its models for that
// workspace.
func TestModelsNeedACredential(t *testing.T) {
	st := productionStateEnv(t, func(name string) string {
		if name == "OPENAI_API_KEY" {
			return "sk-test"
		}
		return ""
	})
	list := func(key string) string {
		p := &edge{filter: filter{state: st, log: zap.NewNop(), id: "id"}, ctx: context.Background()}
		var l struct {
			Data []struct {
				OwnedBy string `json:"owned_by"`
			}
		}
		_ = json.Unmarshal(p.handle(headersMsg("GET", "/v1/models", true, "authorization", "Bearer sk-"+key)).GetImmediateResponse().Body, &l)
		var owners []string
		for _, d := range l.Data {
			if !slices.Contains(owners, d.OwnedBy) {
				owners = append(owners, d.OwnedBy)
			}
		}
		slices.Sort(owners)
		return strings.Join(owners, " ")
	}
	// openai's key is configured, self-hosted providers need none; the
	// rest have none here.
	if got := list("open"); got != "ollama openai stellwerk vllm-llama vllm-mistral vllm-qwen" {
		t.Errorf("providers listed: %s", got)
	}
	get := func(id string) int32 {
		p := &edge{filter: filter{state: st, log: zap.NewNop(), id: "id"}, ctx: context.Background()}
		return int32(p.handle(headersMsg("GET", "/v1/models/"+id, true, "authorization", "Bearer sk-open")).GetImmediateResponse().GetStatus().GetCode())
	}
	if got := get("gpt-4o-mini"); got != 200 {
		t.Errorf("gpt-4o-mini: %d", got)
	}
	if got := get("mistral-small"); got != 404 {
		t.Errorf("mistral-small, no credential: %d, want 404", got)
	}
	st.WorkspaceClusters = map[WorkspaceProvider]string{{Workspace: "default", Provider: "mistral"}: "provider_mistral_default"}
	if got := list("open"); got != "mistral ollama openai stellwerk vllm-llama vllm-mistral vllm-qwen" {
		t.Errorf("with the workspace's own mistral key: %s", got)
	}
	if got := get("mistral-small"); got != 200 {
		t.Errorf("mistral-small with the workspace's own key: %d", got)
	}
}

// TestOneCredential: a request whose credential headers name different
// keys is refused (401), whatever the auth mode: reading one and dropping
// the other turned a revoked key, or a stricter workspace's, into the
// anonymous principal in open mode. Headers that name the same key, or
// carry none, are one credential.
func TestOneCredential(t *testing.T) {
	c, err := config.Decode(strings.NewReader(`
routing: {default_model: m}
providers: [{name: p, base_url: "https://p.example.com/v1", residency: eu}]
models: [{id: m, provider: p, context_window: 8000}]
workspaces: [{name: default}, {name: legal}]
keys: [{id: legal-bot, sha256: ` + auth.Hash("sk-legal") + `, workspace: legal}]
`))
	if err != nil {
		t.Fatal(err)
	}
	st := stateFor(t, c, func(string) string { return "" })
	for name, tc := range map[string]struct {
		headers []string
		status  int
	}{
		"x-api-key alone":             {[]string{"x-api-key", "sk-legal"}, 200},
		"garbage bearer and the key":  {[]string{"authorization", "Bearer garbage", "x-api-key", "sk-legal"}, 401},
		"basic and the key":           {[]string{"authorization", "Basic Zm9vOmJhcg==", "api-key", "sk-legal"}, 401},
		"two authorization headers":   {[]string{"authorization", "Bearer sk-legal", "authorization", "Bearer other"}, 401},
		"the same key twice":          {[]string{"authorization", "Bearer sk-legal", "x-api-key", "sk-legal"}, 200},
		"an empty bearer and the key": {[]string{"authorization", "Bearer ", "x-api-key", "sk-legal"}, 200},
	} {
		t.Run(name, func(t *testing.T) {
			p := &edge{filter: filter{state: st, log: zap.NewNop(), id: "id"}, ctx: context.Background()}
			r := p.handle(headersMsg("GET", "/v1/models", true, tc.headers...)).GetImmediateResponse()
			if r == nil || int(r.Status.Code) != tc.status {
				t.Fatalf("%v: %v, want %d", tc.headers, r, tc.status)
			}
		})
	}
}
