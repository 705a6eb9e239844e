package admin

import (
	"context"
	"encoding/json"
	"strings"
	"sync"
	"testing"

	"go.uber.org/zap"

	"github.com/stellwerk/stellwerk/internal/audit"
	"github.com/stellwerk/stellwerk/internal/config"
	"github.com/stellwerk/stellwerk/internal/store"
)

// recordingKeys is a key service with an audit log: the changes recorded.
type recordingKeys struct {
	*keyStatus
	mu      sync.Mutex
	changes []audit.Change
}

func (r *recordingKeys) RecordChange(_, _ string, c audit.Change) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.changes = append(r.changes, c)
}

func (r *recordingKeys) last(t *testing.T, action string) audit.Change {
	t.Helper()
	r.mu.Lock()
	defer r.mu.Unlock()
	for i := len(r.changes) - 1; i >= 0; i-- {
		if r.changes[i].Action == action {
			return r.changes[i]
		}
	}
	t.Fatalf("no %s change recorded: %+v", action, r.changes)
	return audit.Change{}
}

func recordingHandler(t *testing.T) (*recordingKeys, func(method, path, body string) (int, []byte)) {
	t.Helper()
	db, err := store.OpenSQLite(context.Background(), t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	cfg := keyTestConfig()
	cfg.Keys = []config.Key{{ID: "ci", SHA256: strings.Repeat("a", 64), Workspace: "legal", Team: "contracts"}}
	rk := &recordingKeys{keyStatus: &keyStatus{fakeStatus: fakeStatus{tokens: testTokens()}, ks: openKeys(t, db), cfg: cfg}}
	h := Handler(rk, zap.NewNop())
	return rk, func(method, path, body string) (int, []byte) {
		rec := do(t, h, method, path, config.RoleAdmin, body)
		return rec.Code, rec.Body.Bytes()
	}
}

// A key of stellwerk.yaml serves, so a verb on its id says it is the
// config's, not "no such key" (the incident probe's F7: a responder
// revoking a leaked config key was told it did not exist).
func TestConfigKeyVerbsSayWhereTheKeyIs(t *testing.T) {
	_, call := recordingHandler(t)
	for name, c := range map[string]struct{ method, path, body string }{
		"show":   {"GET", "/admin/keys/ci", ""},
		"revoke": {"POST", "/admin/keys/ci/revoke", ""},
		"rotate": {"POST", "/admin/keys/ci/rotate", ""},
		"limits": {"PUT", "/admin/keys/ci/limits", "{}"},
		"models": {"PUT", "/admin/keys/ci/models", `{"models":[]}`},
	} {
		t.Run(name, func(t *testing.T) {
			code, body := call(c.method, c.path, c.body)
			var e struct {
				Error struct{ Code, Message string }
			}
			json.Unmarshal(body, &e)
			if code != 409 || e.Error.Code != "config_key" || !strings.Contains(e.Error.Message, "stellwerk.yaml") ||
				!strings.Contains(e.Error.Message, "every replica") {
				t.Fatalf("%d %s", code, body)
			}
		})
	}
	// An id that is no key at all is still not found.
	if code, body := call("POST", "/admin/keys/nope/revoke", ""); code != 404 || !strings.Contains(string(body), "key_not_found") {
		t.Fatalf("unknown key: %d %s", code, body)
	}
}

// GET /admin/keys names the config's keys beside the store's page (first
// page only), never with a digest.
func TestKeyListNamesConfigKeys(t *testing.T) {
	_, call := recordingHandler(t)
	if code, body := call("POST", "/admin/keys", `{"id":"app","workspace":"legal"}`); code != 201 {
		t.Fatalf("create: %d %s", code, body)
	}
	for q, want := range map[string]int{"": 1, "?workspace=legal&team=contracts": 1, "?workspace=default": 0, "?status=revoked": 0, "?limit=1": 1} {
		code, body := call("GET", "/admin/keys"+q, "")
		var page KeyPage
		if err := json.Unmarshal(body, &page); err != nil || code != 200 {
			t.Fatalf("%s: %d %s", q, code, body)
		}
		if len(page.ConfigKeys) != want || want == 1 && (page.ConfigKeys[0].ID != "ci" || page.ConfigKeys[0].Source != "config") {
			t.Errorf("%s: config keys %+v, want %d", q, page.ConfigKeys, want)
		}
		if strings.Contains(string(body), strings.Repeat("a", 64)) {
			t.Errorf("%s: the digest is shown: %s", q, body)
		}
		for _, k := range page.Data {
			if k.ID == "ci" {
				t.Errorf("%s: the config key is among the store's: %s", q, body)
			}
		}
	}
}

// The audit record of a created key says what it may do (never its
// secret, prefix or digest); a revocation records its reason.
func TestKeyChangeRecordsSayWhat(t *testing.T) {
	rk, call := recordingHandler(t)
	code, body := call("POST", "/admin/keys", `{"id":"bot","workspace":"legal","team":"contracts","user":"u-1","models":["gpt-4o-mini"],
		"expires_at":"2099-01-01T00:00:00Z","limits":{"budgets":[{"amount_eur":5,"period":"day"}]},"metadata":{"ticket":"OPS-1"}}`)
	if code != 201 {
		t.Fatalf("create: %d %s", code, body)
	}
	var created KeyWithSecret
	json.Unmarshal(body, &created)
	c := rk.last(t, "create")
	for k, want := range map[string]string{"team": "contracts", "user": "u-1", "models": "gpt-4o-mini", "expires_at": "2099-01-01T00:00:00Z",
		"metadata": `{"ticket":"OPS-1"}`} {
		if c.Detail[k] != want {
			t.Errorf("create detail %s = %q, want %q (%v)", k, c.Detail[k], want, c.Detail)
		}
	}
	if !strings.Contains(c.Detail["limits"], `"amount_eur":5`) {
		t.Errorf("create detail limits = %q", c.Detail["limits"])
	}
	rec, _ := json.Marshal(c)
	if strings.Contains(string(rec), created.Secret) || strings.Contains(string(rec), created.Key.Prefix) {
		t.Errorf("the record shows the secret or its prefix: %s", rec)
	}

	for name, bad := range map[string]string{
		"two lines": `{"reason":"leaked\nforged line"}`,
		"bidi":      `{"reason":"ops\u202e"}`,
		"U+2028":    `{"reason":"ok\u2028line"}`,
		"too long":  `{"reason":"` + strings.Repeat("x", MaxRevokeReason+1) + `"}`,
		"unknown":   `{"why":"x"}`,
	} {
		if code, body := call("POST", "/admin/keys/bot/revoke", bad); code != 400 {
			t.Errorf("%s: %d %s", name, code, body)
		}
	}
	if code, body := call("GET", "/admin/keys/bot", ""); code != 200 || !strings.Contains(string(body), `"status":"active"`) {
		t.Fatalf("a refused reason revoked the key: %d %s", code, body)
	}
	if code, body := call("POST", "/admin/keys/bot/revoke", `{"reason":"OPS-7: secret pasted in a public issue"}`); code != 200 {
		t.Fatalf("revoke: %d %s", code, body)
	}
	if r := rk.last(t, "revoke"); r.Detail["reason"] != "OPS-7: secret pasted in a public issue" {
		t.Errorf("revoke detail %v", r.Detail)
	}
	// No body is still a revocation, without a reason.
	call("POST", "/admin/keys", `{"id":"bot2","workspace":"legal"}`)
	if code, body := call("POST", "/admin/keys/bot2/revoke", ""); code != 200 {
		t.Fatalf("revoke without body: %d %s", code, body)
	}
	if r := rk.last(t, "revoke"); r.Target != "bot2" || r.Detail != nil {
		t.Errorf("revoke without reason: %+v", r)
	}
}
