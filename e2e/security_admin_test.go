package e2e

import (
	"encoding/json"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stellwerk/stellwerk/internal/auth"
	"github.com/stellwerk/stellwerk/internal/config"
	"github.com/stellwerk/stellwerk/internal/harness"
)

// roleTokens are one admin token per role, configured by digest.
var roleTokens = map[string]string{
	config.RoleAdmin:    "adm-e2e-4a1f0c",
	config.RoleOperator: "ops-e2e-9b2e1d",
	config.RoleViewer:   "view-e2e-77c3aa",
	config.RoleAuditor:  "audit-e2e-51d0be",
}

func withRoleTokens(c *config.Config) {
	c.Admin.Tokens = nil
	for _, role := range config.AdminRoles {
		c.Admin.Tokens = append(c.Admin.Tokens, config.AdminToken{ID: role + "-token", Role: role, SHA256: auth.Hash(roleTokens[role])})
	}
}

func adminGet(t *testing.T, s *harness.Stack, path, token string) (*http.Response, []byte) {
	t.Helper()
	resp, err := s.AdminGetAs(path, token)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp, b
}

// TestSecurityAdminRequiresToken: only the probes answer without a token;
// every other endpoint answers 401 without a valid token and 403 to a role
// that may not read it, in the OpenAI error shape.
func TestSecurityAdminRequiresToken(t *testing.T) {
	t.Parallel()
	s := harness.Start(t, harness.Options{Mutate: withRoleTokens})
	paths := []string{"/healthz", "/readyz", "/version", "/status", "/policy", "/config", "/debug/vars"}
	// The expected status per path for: no token, a wrong token, viewer,
	// auditor, operator, admin.
	want := map[string][6]int{
		"/healthz":    {200, 200, 200, 200, 200, 200},
		"/readyz":     {200, 200, 200, 200, 200, 200},
		"/version":    {401, 401, 200, 200, 200, 200},
		"/status":     {401, 401, 200, 200, 200, 200},
		"/policy":     {401, 401, 200, 200, 200, 200},
		"/config":     {401, 401, 403, 200, 200, 200},
		"/debug/vars": {401, 401, 403, 403, 200, 200},
	}
	callers := []struct{ name, token string }{
		{"no token", ""}, {"wrong token", "adm-e2e-guess"},
		{config.RoleViewer, roleTokens[config.RoleViewer]}, {config.RoleAuditor, roleTokens[config.RoleAuditor]},
		{config.RoleOperator, roleTokens[config.RoleOperator]}, {config.RoleAdmin, roleTokens[config.RoleAdmin]},
	}
	for _, path := range paths {
		for i, c := range callers {
			resp, b := adminGet(t, s, path, c.token)
			if resp.StatusCode != want[path][i] {
				t.Errorf("%s as %s: %d, want %d: %s", path, c.name, resp.StatusCode, want[path][i], b)
				continue
			}
			switch resp.StatusCode {
			case 401:
				if e := decodeError(t, b); e.Error.Code != "invalid_admin_token" || resp.Header.Get("WWW-Authenticate") == "" {
					t.Errorf("%s as %s: %+v %v", path, c.name, e.Error, resp.Header)
				}
			case 403:
				if e := decodeError(t, b); e.Error.Code != "insufficient_role" || !strings.Contains(e.Error.Message, c.name) {
					t.Errorf("%s as %s: %+v", path, c.name, e.Error)
				}
			}
		}
	}
	// The harness's own token was replaced: it opens nothing now.
	if resp, _ := adminGet(t, s, "/status", s.AdminToken); resp.StatusCode != 401 {
		t.Errorf("a token not in admin.tokens got %d", resp.StatusCode)
	}
	log := s.Log("stellwerk")
	for _, tok := range append([]string{"adm-e2e-guess"}, roleTokens[config.RoleViewer], roleTokens[config.RoleAdmin]) {
		if strings.Contains(log, tok) {
			t.Errorf("the log shows a token")
		}
	}
	if !strings.Contains(log, "admin request refused") {
		t.Errorf("refusals are not logged")
	}
}

// TestSecurityConfigRedacted: /config shows no key or token digest and no
// credential file path; /debug/vars shows no command line.
func TestSecurityConfigRedacted(t *testing.T) {
	t.Parallel()
	keyFile := filepath.Join(t.TempDir(), "gamma-secret.key")
	if err := os.WriteFile(keyFile, []byte("sk-gamma"), 0o600); err != nil {
		t.Fatal(err)
	}
	keyDigest := auth.Hash("sk-e2e-client")
	s := harness.Start(t, harness.Options{
		Providers: []harness.ProviderSpec{{Name: "alpha", Key: "sk-alpha"}, {Name: "gamma"}},
		Mutate: func(c *config.Config) {
			withRoleTokens(c)
			c.Providers[1].Credential.File = keyFile
			c.Keys = append(c.Keys, config.Key{ID: "client", SHA256: keyDigest, Workspace: "default"})
		},
	})
	resp, b := adminGet(t, s, "/config", roleTokens[config.RoleAuditor])
	if resp.StatusCode != 200 {
		t.Fatalf("/config: %d %s", resp.StatusCode, b)
	}
	for _, secret := range []string{keyDigest, auth.Hash(roleTokens[config.RoleAdmin]), keyFile, "gamma-secret", "sk-alpha", "sk-gamma"} {
		if strings.Contains(string(b), secret) {
			t.Errorf("/config shows %q", secret)
		}
	}
	for _, kept := range []string{"id: client", "env: STELLWERK_TEST_KEY_ALPHA", "file: '[redacted]'", "sha256: '[redacted]'", "role: auditor"} {
		if !strings.Contains(string(b), kept) {
			t.Errorf("/config lacks %q:\n%s", kept, b)
		}
	}

	resp, b = adminGet(t, s, "/debug/vars", roleTokens[config.RoleOperator])
	var vars map[string]json.RawMessage
	if resp.StatusCode != 200 || json.Unmarshal(b, &vars) != nil {
		t.Fatalf("/debug/vars: %d %s", resp.StatusCode, b)
	}
	if _, ok := vars["cmdline"]; ok || strings.Contains(string(b), "stellwerk.yaml") {
		t.Errorf("/debug/vars shows the command line: %.300s", b)
	}
	if _, ok := vars["goroutines"]; !ok {
		t.Errorf("/debug/vars lacks goroutines (the soak bench reads it)")
	}
}

// TestSecurityAdminRefusesOpenAddress: an admin API on a non-loopback
// address without tokens does not start, and says why.
func TestSecurityAdminRefusesOpenAddress(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	cfg := filepath.Join(dir, "stellwerk.yaml")
	if err := os.WriteFile(cfg, []byte(`
routing: {default_model: m1}
providers:
  - {name: p1, base_url: "http://127.0.0.1:9/v1", residency: eu}
models:
  - {id: m1, provider: p1, context_window: 1000}
`), 0o600); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(harness.Binary(t), "serve", "--config", cfg, "--admin", "0.0.0.0:0", "--grpc", "127.0.0.1:0")
	done := make(chan struct{})
	var out []byte
	var err error
	go func() { out, err = cmd.CombinedOutput(); close(done) }()
	select {
	case <-done:
	case <-time.After(20 * time.Second):
		_ = cmd.Process.Kill()
		t.Fatal("stellwerk started with an open admin API and no tokens")
	}
	if err == nil || !strings.Contains(string(out), "server.admin: 0.0.0.0:0 is reachable from other machines but admin.tokens is empty") {
		t.Errorf("err %v, output:\n%s", err, out)
	}
}

// TestSecurityModelsListedPerKey: a key whose workspace allows two models
// sees those two (and auto) on /v1/models, and a model outside its lists is
// answered exactly like a model that does not exist, without the catalog.
func TestSecurityModelsListedPerKey(t *testing.T) {
	t.Parallel()
	s := harness.Start(t, harness.Options{
		Providers: []harness.ProviderSpec{{Name: "alpha", Key: "sk-alpha"}, {Name: "beta", Key: "sk-beta", Residency: "eu"}, {Name: "gamma", Key: "sk-gamma"}},
		Mutate: func(c *config.Config) {
			c.Workspaces = append(c.Workspaces, config.Workspace{Name: "narrow", Allow: []string{"alpha-model", "beta-model"}})
			c.Keys = append(c.Keys, config.Key{ID: "narrow-key", SHA256: auth.Hash("sk-narrow"), Workspace: "narrow"})
		},
	})
	get := func(path, key string) (*http.Response, []byte) {
		req, _ := http.NewRequest(http.MethodGet, s.URL+path, nil)
		req.Header.Set("Authorization", "Bearer "+key)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp, b
	}
	ids := func(b []byte) string {
		var list struct{ Data []struct{ ID string } }
		mustJSON(t, b, &list)
		var out []string
		for _, d := range list.Data {
			out = append(out, d.ID)
		}
		return strings.Join(out, ",")
	}

	if _, b := get("/v1/models", "sk-narrow"); ids(b) != "auto,alpha-model,beta-model" {
		t.Errorf("narrow key lists %s", ids(b))
	}
	if _, b := get("/v1/models", "sk-client-key"); ids(b) != "auto,alpha-model,beta-model,gamma-model" {
		t.Errorf("default workspace lists %s", ids(b))
	}
	if resp, b := get("/v1/models/beta-model", "sk-narrow"); resp.StatusCode != 200 || !strings.Contains(string(b), `"beta-model"`) {
		t.Errorf("allowed model: %d %s", resp.StatusCode, b)
	}

	// gamma-model exists, nope does not: the narrow key cannot tell them apart.
	answers := map[string]string{}
	for _, model := range []string{"gamma-model", "nope"} {
		resp, b := get("/v1/models/"+model, "sk-narrow")
		e := decodeError(t, b)
		if resp.StatusCode != 404 || e.Error.Code != "model_not_found" {
			t.Errorf("GET /v1/models/%s: %d %+v", model, resp.StatusCode, e.Error)
		}
		answers["get "+model] = strings.ReplaceAll(e.Error.Message, model, "X")

		resp, b = post(t, s.URL+"/v1/chat/completions", `{"model":"`+model+`","messages":[{"role":"user","content":"x"}]}`,
			map[string]string{"Authorization": "Bearer sk-narrow"})
		e = decodeError(t, b)
		if resp.StatusCode != 404 || e.Error.Code != "model_not_found" || !strings.HasSuffix(e.Error.Message, "available: alpha-model, beta-model, auto") {
			t.Errorf("chat %s: %d %+v", model, resp.StatusCode, e.Error)
		}
		if strings.Contains(strings.ReplaceAll(e.Error.Message, `"`+model+`"`, ""), "gamma") {
			t.Errorf("chat %s reveals gamma: %s", model, e.Error.Message)
		}
		answers["chat "+model] = strings.ReplaceAll(e.Error.Message, model, "X")
	}
	if answers["get gamma-model"] != answers["get nope"] || answers["chat gamma-model"] != answers["chat nope"] {
		t.Errorf("an existing model is answered differently from a missing one: %q", answers)
	}
	if n := len(s.Providers["gamma"].Requests()); n != 0 {
		t.Errorf("gamma got %d requests", n)
	}

	// The same through the official OpenAI Python SDK.
	py := harness.RequirePython(t)
	out, err := exec.Command(py, filepath.Join(harness.Root(), "e2e", "clients", "python", "models.py"), s.URL, "sk-narrow", "gamma-model").Output()
	if err != nil {
		t.Fatalf("python: %v\n%s", err, out)
	}
	type refusal struct {
		Raised  string
		Status  int
		Code    string
		Message string
	}
	var r struct {
		Models         []string
		RetrieveHidden refusal `json:"retrieve_hidden"`
		ChatHidden     refusal `json:"chat_hidden"`
	}
	if err := json.Unmarshal(out, &r); err != nil {
		t.Fatalf("python printed %q: %v", out, err)
	}
	if strings.Join(r.Models, ",") != "auto,alpha-model,beta-model" {
		t.Errorf("SDK models.list(): %v", r.Models)
	}
	for name, e := range map[string]refusal{"retrieve": r.RetrieveHidden, "chat": r.ChatHidden} {
		if e.Raised != "NotFoundError" || e.Status != 404 || e.Code != "model_not_found" || strings.Contains(e.Message, "gamma-model, ") {
			t.Errorf("SDK %s of a hidden model: %+v", name, e)
		}
	}
}
