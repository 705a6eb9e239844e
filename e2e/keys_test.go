package e2e

import (
	"encoding/json"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stellwerk/stellwerk/internal/config"
	"github.com/stellwerk/stellwerk/internal/harness"
)

// adminDo sends a request with a body to the admin API with the stack's
// admin token.
func adminDo(t *testing.T, s *harness.Stack, method, path, body string) (*http.Response, []byte) {
	t.Helper()
	req, err := http.NewRequest(method, s.AdminURL+path, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+s.AdminToken)
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp, b
}

// TestKeyStoreLifecycle: a key created through the admin API is accepted by
// a request through Envoy, limited to its own models, and refused (401, in
// the OpenAI error shape) within a second of its revocation; the state is
// the embedded SQLite file beside the config, private to its owner, and the
// secret is in no log.
func TestKeyStoreLifecycle(t *testing.T) {
	t.Parallel()
	s := harness.Start(t, harness.Options{
		Mutate: func(c *config.Config) {
			c.Auth.Mode = "keys"
			c.Workspaces = append(c.Workspaces, config.Workspace{Name: "legal"})
		},
	})
	resp, b := adminDo(t, s, "POST", "/admin/keys", `{"id":"e2e-bot","workspace":"legal","models":["alpha-model"],"metadata":{"owner":"e2e"}}`)
	if resp.StatusCode != 201 {
		t.Fatalf("create: %d %s", resp.StatusCode, b)
	}
	var created struct {
		Key struct {
			ID, Prefix, Status string
		}
		Secret string
	}
	mustJSON(t, b, &created)
	if !strings.HasPrefix(created.Secret, "sk-sw-") || created.Key.Status != "active" || !strings.HasPrefix(created.Secret, created.Key.Prefix) {
		t.Fatalf("created %+v", created)
	}
	auth := map[string]string{"Authorization": "Bearer " + created.Secret}
	chat := func(model string) (*http.Response, []byte) {
		return post(t, s.URL+"/v1/chat/completions", `{"model":"`+model+`","messages":[{"role":"user","content":"hello"}]}`, auth)
	}

	// The replica that created it answers once its table holds it: the
	// key is usable at once there (the fleet probe's 401 for 0.2 s), on
	// other replicas within state.refresh_interval.
	resp, b = chat("auto")
	if resp.StatusCode != 200 || resp.Header.Get("x-stellwerk-model") != "alpha-model" {
		t.Fatalf("new key: %d %s %s", resp.StatusCode, resp.Header.Get("x-stellwerk-model"), b)
	}
	// Its model list holds: beta-model is answered as not found.
	resp, b = chat("beta-model")
	if e := decodeError(t, b); resp.StatusCode != 404 || e.Error.Code != "model_not_found" {
		t.Errorf("model outside the key's list: %d %s", resp.StatusCode, b)
	}
	// GET /v1/models lists what the key may use, and no more.
	req, _ := http.NewRequest(http.MethodGet, s.URL+"/v1/models", nil)
	req.Header.Set("Authorization", "Bearer "+created.Secret)
	if mr, err := http.DefaultClient.Do(req); err != nil {
		t.Error(err)
	} else {
		mb, _ := io.ReadAll(mr.Body)
		mr.Body.Close()
		if mr.StatusCode != 200 || !strings.Contains(string(mb), `"alpha-model"`) || strings.Contains(string(mb), `"beta-model"`) {
			t.Errorf("models for the key: %d %s", mr.StatusCode, mb)
		}
	}
	if mr, mb := get(t, s, "/v1/models/beta-model", created.Secret); mr != 404 {
		t.Errorf("GET /v1/models/beta-model with the key: %d %s", mr, mb)
	}

	resp, b = adminDo(t, s, "POST", "/admin/keys/e2e-bot/revoke", "")
	if resp.StatusCode != 200 || !strings.Contains(string(b), `"status":"revoked"`) {
		t.Fatalf("revoke: %d %s", resp.StatusCode, b)
	}
	// Refused by this replica as soon as the revocation is answered.
	resp, b = chat("auto")
	if e := decodeError(t, b); resp.StatusCode != 401 || e.Error.Code != "invalid_api_key" {
		t.Errorf("refusal: %s", b)
	}
	calls := len(s.Providers["alpha"].Requests())
	if resp, _ := chat("auto"); resp.StatusCode != 401 || len(s.Providers["alpha"].Requests()) != calls {
		t.Errorf("a revoked key's request reached the provider")
	}

	// The list shows the revoked key to a reader, without its secret.
	resp, b = adminDo(t, s, "GET", "/admin/keys?status=revoked", "")
	if resp.StatusCode != 200 || !strings.Contains(string(b), `"e2e-bot"`) || strings.Contains(string(b), created.Secret[10:]) {
		t.Errorf("list: %d %s", resp.StatusCode, b)
	}
	var list struct{ Data []json.RawMessage }
	mustJSON(t, b, &list)
	ks, _ := adminJSON(t, s, "/status")["key_store"].(map[string]any)
	if ks["backend"] != "sqlite" || ks["reachable"] != true || ks["keys"] != float64(1) {
		t.Errorf("/status key_store: %v", ks)
	}

	for path, mode := range map[string]os.FileMode{filepath.Join(s.Dir, "state"): 0o700, filepath.Join(s.Dir, "state", "stellwerk.db"): 0o600} {
		if st, err := os.Stat(path); err != nil || st.Mode().Perm() != mode {
			t.Errorf("%s: %v %v", path, st, err)
		}
	}
	if log := s.Log("stellwerk") + s.Log("envoy"); strings.Contains(log, created.Secret[10:]) {
		t.Errorf("a log shows the key's secret")
	}
}

// get sends GET path to Envoy with key as the bearer token.
func get(t *testing.T, s *harness.Stack, path, key string) (int, []byte) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodGet, s.URL+path, nil)
	req.Header.Set("Authorization", "Bearer "+key)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, b
}

// TestRevokedKeyBesideAnotherCredential: in open mode a revoked key is
// refused even when the request also carries another credential header:
// stellwerk read only the first and let the caller in as the anonymous
// principal (a probe of make run); two headers naming different keys are
// now a 401 whichever is valid.
func TestRevokedKeyBesideAnotherCredential(t *testing.T) {
	t.Parallel()
	s := harness.Start(t, harness.Options{})
	resp, b := adminDo(t, s, "POST", "/admin/keys", `{"id":"gone","workspace":"default"}`)
	if resp.StatusCode != 201 {
		t.Fatalf("create: %d %s", resp.StatusCode, b)
	}
	var created struct{ Secret string }
	mustJSON(t, b, &created)
	if resp, b := adminDo(t, s, "POST", "/admin/keys/gone/revoke", ""); resp.StatusCode != 200 {
		t.Fatalf("revoke: %d %s", resp.StatusCode, b)
	}
	const chat = `{"model":"auto","messages":[{"role":"user","content":"hello"}]}`
	alone := map[string]string{"Authorization": "Bearer " + created.Secret}
	for deadline := time.Now().Add(2 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		if resp, _ := post(t, s.URL+"/v1/chat/completions", chat, alone); resp.StatusCode == 401 {
			break
		} else if time.Now().After(deadline) {
			t.Fatalf("the revoked key alone is still %d", resp.StatusCode)
		}
	}
	resp, b = post(t, s.URL+"/v1/chat/completions", chat, map[string]string{"Authorization": "Bearer garbage", "x-api-key": created.Secret})
	if resp.StatusCode != 401 || decodeError(t, b).Error.Code != "invalid_api_key" {
		t.Fatalf("a revoked key beside a garbage bearer: %d %s", resp.StatusCode, b)
	}
	if resp, b := post(t, s.URL+"/v1/chat/completions", chat, map[string]string{"Authorization": "Bearer anything"}); resp.StatusCode != 200 {
		t.Fatalf("open mode, one unknown credential: %d %s", resp.StatusCode, b)
	}
	// A store key cut short when pasted is meant as one: refused, not
	// the anonymous principal (found through the console's try-it).
	resp, b = adminDo(t, s, "POST", "/admin/keys", `{"id":"cut","workspace":"default"}`)
	if resp.StatusCode != 201 {
		t.Fatalf("create: %d %s", resp.StatusCode, b)
	}
	mustJSON(t, b, &created)
	for _, cut := range []string{created.Secret[:len(created.Secret)-1], "sk-sw-bogus"} {
		resp, b := post(t, s.URL+"/v1/chat/completions", chat, map[string]string{"Authorization": "Bearer " + cut})
		if resp.StatusCode != 401 || decodeError(t, b).Error.Code != "invalid_api_key" {
			t.Fatalf("open mode, a store key cut short: %d %s", resp.StatusCode, b)
		}
	}
}

// TestKeyOfARetiredModel (the catalog probe): a store key restricted to a
// model that a catalog update retires loses it, and the reload says so in
// the log; PUT /admin/keys/{id}/models gives it the successor, and the key
// serves again with its secret unchanged. It could only be revoked and
// issued anew, its new secret handed out again.
func TestKeyOfARetiredModel(t *testing.T) {
	t.Parallel()
	s := harness.Start(t, harness.Options{
		Models: []config.Model{
			{ID: "old", Provider: "alpha", ProviderModel: "old-up", ContextWindow: 8000},
			{ID: "new", Provider: "alpha", ProviderModel: "new-up", ContextWindow: 8000},
		},
		DefaultModel: "new",
		Mutate:       func(c *config.Config) { c.Auth.Mode = "keys" },
	})
	resp, b := adminDo(t, s, "POST", "/admin/keys", `{"id":"pinned","workspace":"default","models":["old"]}`)
	if resp.StatusCode != 201 {
		t.Fatalf("create: %d %s", resp.StatusCode, b)
	}
	var created struct{ Secret string }
	mustJSON(t, b, &created)
	auth := map[string]string{"Authorization": "Bearer " + created.Secret}
	chat := func() (*http.Response, []byte) {
		return post(t, s.URL+"/v1/chat/completions", `{"model":"auto","messages":[{"role":"user","content":"hello"}]}`, auth)
	}
	if resp, b := chat(); resp.StatusCode != 200 || resp.Header.Get("x-stellwerk-model") != "old" {
		t.Fatalf("before: %d %s", resp.StatusCode, b)
	}
	cfg := *s.Config
	cfg.Models = []config.Model{cfg.Models[1]}
	s.WriteConfig(&cfg)
	waitFor(t, "the reload's word on the key", func() bool {
		return strings.Contains(s.Log("stellwerk"), "virtual key may use models the catalog no longer has") &&
			strings.Contains(s.Log("stellwerk"), `"key_id":"pinned"`)
	})
	if resp, _ := chat(); resp.StatusCode == 200 {
		t.Fatalf("the key still served with its only model retired")
	}
	// An unknown model is refused as at creation.
	if resp, b := adminDo(t, s, "PUT", "/admin/keys/pinned/models", `{"models":["old"]}`); resp.StatusCode != 400 || !strings.Contains(string(b), `unknown model`) {
		t.Errorf("PUT models naming the retired model: %d %s", resp.StatusCode, b)
	}
	if resp, b := adminDo(t, s, "PUT", "/admin/keys/pinned/models", `{"models":["new"]}`); resp.StatusCode != 200 || !strings.Contains(string(b), `"new"`) {
		t.Fatalf("PUT models: %d %s", resp.StatusCode, b)
	}
	if resp, b := chat(); resp.StatusCode != 200 || resp.Header.Get("x-stellwerk-model") != "new" {
		t.Errorf("after PUT models: %d %s %s", resp.StatusCode, resp.Header.Get("x-stellwerk-model"), b)
	}
}
