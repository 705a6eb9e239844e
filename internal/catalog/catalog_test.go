package catalog

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stellwerk/stellwerk/internal/config"
)

func build(t *testing.T, yaml string, env map[string]string, files map[string]string) *Catalog {
	t.Helper()
	c, err := config.Decode(strings.NewReader(yaml))
	if err != nil {
		t.Fatal(err)
	}
	cat, err := New(c, Env{
		Getenv: func(k string) string { return env[k] },
		ReadFile: func(p string) ([]byte, error) {
			if v, ok := files[p]; ok {
				return []byte(v), nil
			}
			return nil, errors.New("no such file")
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	return cat
}

const cfg = `
routing: {default_model: a1}
providers:
  - {name: envkey, base_url: "https://api.example.com/v1/", residency: us, credential: {env: KEY_A}}
  - {name: filekey, base_url: "http://10.0.0.5:8000", residency: on_prem, credential: {file: /run/secrets/k, header: api-key}}
  - {name: anthropicish, base_url: "https://llm.example.eu:8443/api", residency: eu, credential: {env: KEY_MISSING, header: x-api-key}}
  - {name: open, base_url: "http://127.0.0.1:9000/v1", residency: on_prem}
models:
  - {id: a1, provider: envkey, provider_model: upstream-a1, context_window: 10}
  - {id: b1, provider: filekey, context_window: 10}
`

func TestProviders(t *testing.T) {
	cat := build(t, cfg, map[string]string{"KEY_A": " sk-a \n"}, map[string]string{"/run/secrets/k": "sk-file\n"})
	cases := map[string]struct {
		cluster, authority, path string
		port                     int
		tls, ip                  bool
		credName, credValue      string
		credOK                   bool
	}{
		"envkey":       {"provider_envkey", "api.example.com", "/v1/chat/completions", 443, true, false, "authorization", "Bearer sk-a", true},
		"filekey":      {"provider_filekey", "10.0.0.5:8000", "/chat/completions", 8000, false, true, "api-key", "sk-file", true},
		"anthropicish": {"provider_anthropicish", "llm.example.eu:8443", "/api/chat/completions", 8443, true, false, "", "", false},
		"open":         {"provider_open", "127.0.0.1:9000", "/v1/chat/completions", 9000, false, true, "", "", true},
	}
	for _, p := range cat.Providers() {
		want, ok := cases[p.Name]
		if !ok {
			t.Fatalf("unexpected provider %s", p.Name)
		}
		if p.Cluster != want.cluster || p.Authority != want.authority || p.Port != want.port || p.TLS() != want.tls || p.IsIP() != want.ip {
			t.Errorf("%s: %+v", p.Name, p)
		}
		if got := p.UpstreamPath("/v1/chat/completions"); got != want.path {
			t.Errorf("%s: path %q, want %q", p.Name, got, want.path)
		}
		n, v, ok := p.Credential()
		if n != want.credName || v != want.credValue || ok != want.credOK {
			t.Errorf("%s: credential (%q, %q, %v)", p.Name, n, v, ok)
		}
		if p.HasCredential() != ok {
			t.Errorf("%s: HasCredential %v, Credential's ok %v", p.Name, p.HasCredential(), ok)
		}
	}
	if got := cat.MissingCredentials(); len(got) != 1 || got[0] != "anthropicish (environment variable KEY_MISSING)" {
		t.Errorf("missing: %v", got)
	}
	if m, ok := cat.Lookup("a1"); !ok || m.ProviderModel != "upstream-a1" || m.Provider.Name != "envkey" {
		t.Errorf("lookup a1: %+v", m)
	}
	if cat.Default.ID != "a1" || strings.Join(cat.IDs(), ",") != "a1,b1" {
		t.Errorf("default %s ids %v", cat.Default.ID, cat.IDs())
	}
}

func TestKeyWithNewlineIsMissing(t *testing.T) {
	cat := build(t, cfg, map[string]string{"KEY_A": "sk-a\r\nx-injected: 1"}, nil)
	if _, _, ok := cat.Providers()[0].Credential(); ok || cat.Providers()[0].HasCredential() {
		t.Fatal("a key that would split a header must not be used")
	}
}

// TestResponsesServing: which models serve the Responses API, natively or
// translated, and which can continue a stored response.
func TestResponsesServing(t *testing.T) {
	cat := build(t, `
routing: {default_model: chat}
providers:
  - {name: oai, base_url: "https://api.example.com/v1", residency: us, stored_responses: true}
  - {name: zdr, base_url: "https://zdr.example.com/v1", residency: eu}
  - {name: claude, base_url: "https://claude.example.com/v1", residency: eu, wire_format: anthropic}
models:
  - {id: chat, provider: oai, context_window: 10}
  - {id: native, provider: oai, context_window: 10, capabilities: [chat, responses]}
  - {id: only-responses, provider: oai, context_window: 10, capabilities: [responses, tools]}
  - {id: native-zdr, provider: zdr, context_window: 10, capabilities: [chat, responses]}
  - {id: sonnet, provider: claude, context_window: 10}
  - {id: emb, provider: oai, context_window: 10, capabilities: [embeddings]}
`, nil, nil)
	for id, want := range map[string]struct {
		chat, responses, native, stores bool
		why                             string
	}{
		"chat":           {chat: true, responses: true},
		"native":         {chat: true, responses: true, native: true, stores: true},
		"only-responses": {responses: true, native: true, stores: true, why: "does not serve chat"},
		"native-zdr":     {chat: true, responses: true, native: true},
		"sonnet":         {chat: true, responses: true},
		"emb":            {why: "does not serve chat"},
	} {
		m, _ := cat.Lookup(id)
		if m.Serves("chat") != want.chat || m.Serves("responses") != want.responses || m.NativeResponses() != want.native || m.StoresResponses() != want.stores {
			t.Errorf("%s: chat %v responses %v native %v stores %v; want %+v", id, m.Serves("chat"), m.Serves("responses"), m.NativeResponses(), m.StoresResponses(), want)
		}
		if want.why != "" && !strings.Contains(m.CannotServe("chat"), want.why) {
			t.Errorf("%s: %q", id, m.CannotServe("chat"))
		}
		if !want.responses && !strings.Contains(m.CannotServe("responses"), "does not serve responses or chat") {
			t.Errorf("%s responses: %q", id, m.CannotServe("responses"))
		}
	}
	// What selection writes for a model that cannot serve a request, per
	// API; the reasons for chat, embeddings and completions cost nothing to
	// write, as selection writes them for every such model of every request.
	chat, _ := cat.Lookup("chat")
	emb, _ := cat.Lookup("emb")
	sonnet, _ := cat.Lookup("sonnet")
	for _, tc := range []struct {
		m        *Model
		api, why string
	}{
		{emb, "", "does not serve chat (capabilities)"},
		{emb, "chat", "does not serve chat (capabilities)"},
		{emb, "completions", "does not serve completions (capabilities)"},
		{emb, "messages", "does not serve chat (capabilities), which the Messages API needs"},
		{chat, "embeddings", "does not serve embeddings (capabilities)"},
		{emb, "rerank", "does not serve rerank (capabilities)"},
		{sonnet, "embeddings", "wire format anthropic has no embeddings endpoint"},
		{emb, "embeddings", ""},
	} {
		if got := tc.m.CannotServe(tc.api); got != tc.why {
			t.Errorf("%s for %q: %q, want %q", tc.m.ID, tc.api, got, tc.why)
		}
	}
	var why, why2 string
	if n := testing.AllocsPerRun(100, func() { why, why2 = emb.CannotServe("chat"), chat.CannotServe("embeddings") }); n != 0 {
		t.Errorf("CannotServe allocates %.0f times (%s; %s)", n, why, why2)
	}
}

// TestMediaTokens: each image costs the model's image bound, each inline
// PDF page 1,500 tokens of text and an image, a PDF's share at most the
// context window, and the whole window when its pages could not be counted.
func TestMediaTokens(t *testing.T) {
	m := &Model{ImageTokens: 1000, ContextWindow: 20000}
	for name, tc := range map[string]struct {
		images, pages int
		uncounted     bool
		want          int
	}{
		"nothing":                 {want: 0},
		"three images":            {images: 3, want: 3000},
		"two pages":               {pages: 2, want: 5000},
		"images and pages":        {images: 1, pages: 2, want: 6000},
		"pages past the window":   {images: 1, pages: 100, want: 21000},
		"uncounted: the window":   {pages: 1, uncounted: true, want: 20000},
		"uncounted with an image": {images: 2, pages: 3, uncounted: true, want: 22000},
	} {
		if got := m.MediaTokens(tc.images, tc.pages, tc.uncounted); got != tc.want {
			t.Errorf("%s: %d, want %d", name, got, tc.want)
		}
	}
	if got := PDFTokens(3, 2700); got != 3*(1500+2700) {
		t.Errorf("PDFTokens(3, 2700) = %d", got)
	}
}

// TestScorecardOfARetiredModel (the catalog probe): a scorecard's rows of
// a model the catalog no longer has are skipped and listed, not an error:
// they refused the whole config, a price change in it too. Its other rows
// still score their models.
func TestScorecardOfARetiredModel(t *testing.T) {
	path := filepath.Join(t.TempDir(), "scores.csv")
	if err := os.WriteFile(path, []byte("model,task,score\ngpt-4o,code,0.9\na1,code,0.7\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	cat := build(t, `
routing: {default_model: a1}
providers:
  - {name: open, base_url: "http://127.0.0.1:9000/v1", residency: on_prem}
models:
  - {id: a1, provider: open, context_window: 10}
evals: [`+path+`]
`, nil, nil)
	if len(cat.IgnoredScores) != 1 || !strings.HasSuffix(cat.IgnoredScores[0], ": gpt-4o") {
		t.Errorf("ignored %v, want the rows of gpt-4o", cat.IgnoredScores)
	}
	if m, _ := cat.Lookup("a1"); m.QualityFor("code") != 0.7 {
		t.Errorf("a1's code score %v, want 0.7", m.QualityFor("code"))
	}
}

// TestLookupByAlias: a model is found by its id and by each of its
// aliases, the model's own and routing.aliases; its ID says which it is.
func TestLookupByAlias(t *testing.T) {
	cat := build(t, `
routing: {default_model: older, aliases: {fast: m2}}
providers:
  - {name: p, base_url: "http://127.0.0.1:9000/v1", residency: eu}
models:
  - {id: m1, provider: p, context_window: 1000, aliases: [old, older]}
  - {id: m2, provider: p, context_window: 1000}
`, nil, nil)
	for name, want := range map[string]string{"m1": "m1", "old": "m1", "older": "m1", "m2": "m2", "fast": "m2"} {
		if m, ok := cat.Lookup(name); !ok || m.ID != want {
			t.Errorf("Lookup(%q) = %v, %v; want %s", name, m, ok, want)
		}
	}
	if _, ok := cat.Lookup("auto"); ok {
		t.Error("Lookup(auto) found a model")
	}
	if cat.AliasOf("m1") != nil || cat.AliasOf("fast").ID != "m2" || cat.Default.ID != "m1" {
		t.Errorf("AliasOf(m1) %v, AliasOf(fast) %v, default %s", cat.AliasOf("m1"), cat.AliasOf("fast"), cat.Default.ID)
	}
	if m, _ := cat.Lookup("m1"); strings.Join(m.Aliases, ",") != "old,older" || strings.Join(cat.IDs(), ",") != "m1,m2" {
		t.Errorf("aliases %v, ids %v", m.Aliases, cat.IDs())
	}
}
