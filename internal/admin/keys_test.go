package admin

import (
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"testing"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"

	"github.com/stellwerk/stellwerk/internal/config"
	"github.com/stellwerk/stellwerk/internal/keys"
	"github.com/stellwerk/stellwerk/internal/store"
	"github.com/stellwerk/stellwerk/internal/testsrv"
)

func TestMain(m *testing.M) { os.Exit(testsrv.Main(m)) }

type keyStatus struct {
	fakeStatus
	ks  *keys.Store
	cfg *config.Config
	// refreshed counts KeysChanged calls: one per change answered.
	refreshed int
}

func (k *keyStatus) Keys() *keys.Store                 { return k.ks }
func (k *keyStatus) KeysChanged(context.Context) error { k.refreshed++; return nil }
func (k *keyStatus) Config() *config.Config            { return k.cfg }

func keyTestConfig() *config.Config {
	return &config.Config{
		Workspaces: []config.Workspace{{Name: "default"}, {Name: "legal", Teams: []config.Team{{Name: "contracts"}}}},
		Providers:  []config.Provider{{Name: "openai"}},
		Models:     []config.Model{{ID: "gpt-4o-mini", Provider: "openai"}},
	}
}

func openKeys(t *testing.T, db *store.DB) *keys.Store {
	t.Helper()
	h, _ := keys.NewHasher([]byte("0123456789abcdef0123456789abcdef"))
	mk := sha256.Sum256([]byte("master"))
	ring, _ := keys.NewKeyring([]string{"mk1"}, [][]byte{mk[:]})
	ks, err := keys.Open(context.Background(), db, h, ring)
	if err != nil {
		t.Fatal(err)
	}
	return ks
}

func keyHandler(t *testing.T) (http.Handler, *observer.ObservedLogs, *keys.Store) {
	t.Helper()
	db, err := store.OpenSQLite(context.Background(), t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	ks := openKeys(t, db)
	core, logs := observer.New(zapcore.DebugLevel)
	return Handler(&keyStatus{fakeStatus: fakeStatus{tokens: testTokens()}, ks: ks, cfg: keyTestConfig()}, zap.New(core)), logs, ks
}

func do(t *testing.T, h http.Handler, method, path, role, body string) *httptest.ResponseRecorder {
	t.Helper()
	req := httptest.NewRequest(method, path, strings.NewReader(body))
	if role != "" {
		req.Header.Set("Authorization", "Bearer "+roleTokens[role])
	}
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	return rec
}

// openAIError checks the error shape and returns status, code and param.
func openAIError(t *testing.T, rec *httptest.ResponseRecorder) (int, string, string) {
	t.Helper()
	var e struct {
		Error struct {
			Message, Type, Code string
			Param               *string
		}
	}
	if err := json.Unmarshal(rec.Body.Bytes(), &e); err != nil || e.Error.Message == "" || e.Error.Type == "" || e.Error.Code == "" {
		t.Fatalf("%d: not an OpenAI error: %s", rec.Code, rec.Body)
	}
	p := ""
	if e.Error.Param != nil {
		p = *e.Error.Param
	}
	return rec.Code, e.Error.Code, p
}

func TestKeysAPI(t *testing.T) {
	h, logs, _ := keyHandler(t)
	rec := do(t, h, "POST", "/admin/keys", config.RoleAdmin,
		`{"id":"bot","workspace":"legal","team":"contracts","user":"ana","models":["gpt-4o-mini"],"expires_in":"720h",
		  "limits":{"budgets":[{"amount_eur":10,"period":"month"}],"rate_limit":{"requests_per_minute":60}},"metadata":{"ticket":"OPS-1"}}`)
	if rec.Code != 201 || rec.Header().Get("Cache-Control") != "no-store" {
		t.Fatalf("create: %d %s", rec.Code, rec.Body)
	}
	var created KeyWithSecret
	if err := json.Unmarshal(rec.Body.Bytes(), &created); err != nil {
		t.Fatal(err)
	}
	secret := created.Secret
	if _, ok := keys.ParseSecret(secret); !ok || created.Key.Status != "active" || created.Key.CreatedBy != "admin:root" ||
		created.Key.ExpiresAt.Before(time.Now().Add(719*time.Hour)) || created.Key.Limits.RateLimit.RequestsPerMinute != 60 {
		t.Fatalf("created %+v", created)
	}

	// Readers list and show, and never see a secret.
	for _, role := range []string{config.RoleViewer, config.RoleAuditor, config.RoleOperator, config.RoleAdmin} {
		for _, path := range []string{"/admin/keys", "/admin/keys?workspace=legal&status=active", "/admin/keys/bot"} {
			rec := do(t, h, "GET", path, role, "")
			if rec.Code != 200 || !strings.Contains(rec.Body.String(), `"bot"`) {
				t.Errorf("%s %s: %d %s", role, path, rec.Code, rec.Body)
			}
			if strings.Contains(rec.Body.String(), secret[keys.DisplayPrefixLen:]) || strings.Contains(rec.Body.String(), `"secret"`) {
				t.Errorf("%s %s shows the secret", role, path)
			}
		}
	}
	if rec := do(t, h, "GET", "/admin/keys?workspace=default", config.RoleViewer, ""); strings.Contains(rec.Body.String(), `"bot"`) {
		t.Errorf("workspace filter ignored: %s", rec.Body)
	}

	cases := map[string]struct {
		method, path, role, body string
		status                   int
		code, param              string
	}{
		"no token":             {"POST", "/admin/keys", "", `{"workspace":"legal"}`, 401, "invalid_admin_token", ""},
		"viewer creates":       {"POST", "/admin/keys", config.RoleViewer, `{"workspace":"legal"}`, 403, "insufficient_role", ""},
		"operator revokes":     {"POST", "/admin/keys/bot/revoke", config.RoleOperator, ``, 403, "insufficient_role", ""},
		"auditor rotates":      {"POST", "/admin/keys/bot/rotate", config.RoleAuditor, ``, 403, "insufficient_role", ""},
		"unknown field":        {"POST", "/admin/keys", config.RoleAdmin, `{"workspace":"legal","colour":"red"}`, 400, "invalid_request_body", "colour"},
		"not JSON":             {"POST", "/admin/keys", config.RoleAdmin, `{`, 400, "invalid_request_body", ""},
		"wrong type":           {"POST", "/admin/keys", config.RoleAdmin, `{"workspace":7}`, 400, "invalid_request_body", "workspace"},
		"bad time":             {"POST", "/admin/keys", config.RoleAdmin, `{"workspace":"legal","expires_at":"tomorrow"}`, 400, "invalid_request_body", "expires_at"},
		"unknown workspace":    {"POST", "/admin/keys", config.RoleAdmin, `{"workspace":"nope"}`, 400, "invalid_key_spec", "workspace"},
		"unknown team":         {"POST", "/admin/keys", config.RoleAdmin, `{"workspace":"legal","team":"nope"}`, 400, "invalid_key_spec", "team"},
		"unknown model":        {"POST", "/admin/keys", config.RoleAdmin, `{"workspace":"legal","models":["gpt-9"]}`, 400, "invalid_key_spec", "models[0]"},
		"bad expires_in":       {"POST", "/admin/keys", config.RoleAdmin, `{"workspace":"legal","expires_in":"-1h"}`, 400, "invalid_key_spec", "expires_in"},
		"expires_at past":      {"POST", "/admin/keys", config.RoleAdmin, `{"workspace":"legal","expires_at":"2001-01-01T00:00:00Z"}`, 400, "invalid_key_spec", "expires_at"},
		"workspace twice":      {"POST", "/admin/keys", config.RoleAdmin, `{"workspace":"default","workspace":"legal"}`, 400, "duplicate_field", "workspace"},
		"workspace, two cases": {"POST", "/admin/keys", config.RoleAdmin, `{"workspace":"default","Workspace":"legal"}`, 400, "duplicate_field", "Workspace"},
		// The capitalised one first: it was taken for a casing problem
		// alone, which the admin API lets Go's decoder read (the last
		// value won, a code review's finding).
		"workspace, two cases, capital first": {"POST", "/admin/keys", config.RoleAdmin, `{"Workspace":"legal","workspace":"default"}`, 400, "duplicate_field", "workspace"},
		"two cases after another key":         {"POST", "/admin/keys", config.RoleAdmin, `{"Team":"","workspace":"legal","workspace":"default"}`, 400, "duplicate_field", "workspace"},
		"not an object":                       {"POST", "/admin/keys", config.RoleAdmin, `[]`, 400, "invalid_request_body", ""},
		"duplicate":                           {"POST", "/admin/keys", config.RoleAdmin, `{"id":"bot","workspace":"legal"}`, 409, "key_exists", "id"},
		"show unknown":                        {"GET", "/admin/keys/nope", config.RoleViewer, ``, 404, "key_not_found", "id"},
		"revoke unknown":                      {"POST", "/admin/keys/nope/revoke", config.RoleAdmin, ``, 404, "key_not_found", "id"},
		"bad grace":                           {"POST", "/admin/keys/bot/rotate", config.RoleAdmin, `{"grace":"forever"}`, 400, "invalid_key_spec", "grace"},
		"grace too long":                      {"POST", "/admin/keys/bot/rotate", config.RoleAdmin, `{"grace":"1000h"}`, 400, "invalid_key_spec", "grace"},
		"bad status filter":                   {"GET", "/admin/keys?status=zombie", config.RoleViewer, ``, 400, "invalid_filter", "status"},
		"unknown workspace filter":            {"GET", "/admin/keys?workspace=legl", config.RoleViewer, ``, 400, "invalid_filter", "workspace"},
		// A misspelt filter matched every key (the docs walkthrough).
		"misspelt filter":           {"GET", "/admin/keys?worksapce=legal", config.RoleViewer, ``, 400, "invalid_filter", "worksapce"},
		"filter twice":              {"GET", "/admin/keys?status=active&status=revoked", config.RoleViewer, ``, 400, "invalid_filter", "status"},
		"limit 0":                   {"GET", "/admin/keys?limit=0", config.RoleViewer, ``, 400, "invalid_filter", "limit"},
		"limit over 1000":           {"GET", "/admin/keys?limit=1001", config.RoleViewer, ``, 400, "invalid_filter", "limit"},
		"limit not a number":        {"GET", "/admin/keys?limit=ten", config.RoleViewer, ``, 400, "invalid_filter", "limit"},
		"cursor not ours":           {"GET", "/admin/keys?cursor=bot", config.RoleViewer, ``, 400, "invalid_filter", "cursor"},
		"cursor of no id":           {"GET", "/admin/keys?cursor=" + base64.RawURLEncoding.EncodeToString([]byte("after:Bad Id")), config.RoleViewer, ``, 400, "invalid_filter", "cursor"},
		"provider keys, misspelt":   {"GET", "/admin/provider-keys?ws=legal", config.RoleViewer, ``, 400, "invalid_filter", "ws"},
		"budgets, misspelt":         {"GET", "/admin/budgets?workspce=legal", config.RoleViewer, ``, 400, "invalid_value", "workspce"},
		"too large":                 {"POST", "/admin/keys", config.RoleAdmin, `{"workspace":"` + strings.Repeat("a", 70000) + `"}`, 413, "request_too_large", ""},
		"provider key, viewer":      {"PUT", "/admin/provider-keys/legal/openai", config.RoleViewer, `{"secret":"x"}`, 403, "insufficient_role", ""},
		"provider unknown":          {"PUT", "/admin/provider-keys/legal/nope", config.RoleAdmin, `{"secret":"x"}`, 400, "invalid_key_spec", "provider"},
		"provider empty":            {"PUT", "/admin/provider-keys/legal/openai", config.RoleAdmin, `{"secret":" "}`, 400, "invalid_key_spec", "secret"},
		"delete absent":             {"DELETE", "/admin/provider-keys/default/openai", config.RoleAdmin, ``, 404, "provider_key_not_found", ""},
		"operator sets limits":      {"PUT", "/admin/keys/bot/limits", config.RoleOperator, `{}`, 403, "insufficient_role", ""},
		"limits not JSON":           {"PUT", "/admin/keys/bot/limits", config.RoleAdmin, `{"budgets":[`, 400, "invalid_request_body", ""},
		"limits unknown field":      {"PUT", "/admin/keys/bot/limits", config.RoleAdmin, `{"budget":[]}`, 400, "invalid_request_body", "budget"},
		"limits under a micro-euro": {"PUT", "/admin/keys/bot/limits", config.RoleAdmin, `{"budgets":[{"amount_eur":1e-7,"period":"day"}]}`, 400, "invalid_key_spec", "limits.budgets[0].amount_eur"},
		"limits of an unknown key":  {"PUT", "/admin/keys/nope/limits", config.RoleAdmin, `{}`, 404, "key_not_found", "id"},
		"operator sets models":      {"PUT", "/admin/keys/bot/models", config.RoleOperator, `{"models":[]}`, 403, "insufficient_role", ""},
		"models not JSON":           {"PUT", "/admin/keys/bot/models", config.RoleAdmin, `{"models":[`, 400, "invalid_request_body", ""},
		"models unknown field":      {"PUT", "/admin/keys/bot/models", config.RoleAdmin, `{"model":[]}`, 400, "invalid_request_body", "model"},
		"models unknown model":      {"PUT", "/admin/keys/bot/models", config.RoleAdmin, `{"models":["nope"]}`, 400, "invalid_key_spec", "models[0]"},
		"models of an unknown key":  {"PUT", "/admin/keys/nope/models", config.RoleAdmin, `{"models":[]}`, 404, "key_not_found", "id"},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			rec := do(t, h, tc.method, tc.path, tc.role, tc.body)
			status, code, param := openAIError(t, rec)
			if status != tc.status || code != tc.code || param != tc.param {
				t.Errorf("got %d %s param %q, want %d %s param %q: %s", status, code, param, tc.status, tc.code, tc.param, rec.Body)
			}
		})
	}

	// Two Authorization headers: neither speaks, whichever is valid.
	req := httptest.NewRequest("GET", "/admin/keys", nil)
	req.Header.Add("Authorization", "Bearer "+roleTokens[config.RoleViewer])
	req.Header.Add("Authorization", "Bearer "+roleTokens[config.RoleAdmin])
	rec = httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	if st, code, _ := openAIError(t, rec); st != 401 || code != "invalid_admin_token" || !strings.Contains(rec.Body.String(), "several Authorization headers") {
		t.Errorf("two tokens: %d %s", rec.Code, rec.Body)
	}

	// The refusal says what the role may not do to the path.
	for method, want := range map[string]string{"POST": "role viewer may not change /admin/keys;", "GET": "role viewer may not read /config;"} {
		path := "/admin/keys"
		if method == "GET" {
			path = "/config"
		}
		if rec := do(t, h, method, path, config.RoleViewer, `{"workspace":"legal"}`); !strings.Contains(rec.Body.String(), want) {
			t.Errorf("%s %s as viewer: %d %s, want %q", method, path, rec.Code, rec.Body, want)
		}
	}

	// Rotate: a new secret, shown once; revoke; a revoked key does not rotate.
	rec = do(t, h, "POST", "/admin/keys/bot/rotate", config.RoleAdmin, `{"grace":"10m"}`)
	var rotated KeyWithSecret
	if rec.Code != 200 || json.Unmarshal(rec.Body.Bytes(), &rotated) != nil || rotated.Secret == secret || rotated.Key.RotatedBy != "admin:root" ||
		rotated.Key.GraceUntil.IsZero() {
		t.Fatalf("rotate: %d %s", rec.Code, rec.Body)
	}
	rec = do(t, h, "POST", "/admin/keys/bot/revoke", config.RoleAdmin, "")
	if rec.Code != 200 || !strings.Contains(rec.Body.String(), `"status":"revoked"`) || strings.Contains(rec.Body.String(), "secret") {
		t.Fatalf("revoke: %d %s", rec.Code, rec.Body)
	}
	if st, code, _ := openAIError(t, do(t, h, "POST", "/admin/keys/bot/rotate", config.RoleAdmin, "")); st != 409 || code != "key_revoked" {
		t.Errorf("rotate revoked: %d %s", st, code)
	}

	// Provider keys: stored, listed without the secret, never logged.
	const providerSecret = "sk-openai-byok-0123456789"
	rec = do(t, h, "PUT", "/admin/provider-keys/legal/openai", config.RoleAdmin, `{"secret":"`+providerSecret+`"}`)
	if rec.Code != 200 || !strings.Contains(rec.Body.String(), `"master_key_id":"mk1"`) {
		t.Fatalf("set provider key: %d %s", rec.Code, rec.Body)
	}
	rec = do(t, h, "GET", "/admin/provider-keys", config.RoleAuditor, "")
	if rec.Code != 200 || !strings.Contains(rec.Body.String(), `"provider":"openai"`) {
		t.Fatalf("list provider keys: %d %s", rec.Code, rec.Body)
	}
	rec = do(t, h, "POST", "/admin/provider-keys/rotate-master", config.RoleAdmin, "")
	if rec.Code != 200 || !strings.Contains(rec.Body.String(), `"reencrypted":0`) {
		t.Errorf("rotate-master: %d %s", rec.Code, rec.Body)
	}
	if rec := do(t, h, "DELETE", "/admin/provider-keys/legal/openai", config.RoleAdmin, ""); rec.Code != 204 {
		t.Errorf("delete provider key: %d %s", rec.Code, rec.Body)
	}
	for _, e := range logs.All() {
		line := fmt.Sprint(e.Message, e.ContextMap())
		for _, s := range []string{secret, rotated.Secret, providerSecret, base64.StdEncoding.EncodeToString([]byte(providerSecret))} {
			if strings.Contains(line, s) {
				t.Errorf("a log line shows a secret: %s", line)
			}
		}
	}
	if logs.FilterMessage("virtual key revoked").Len() != 1 {
		t.Errorf("revocation not logged")
	}
}

// TestKeysAPIStoreDown: with PostgreSQL stopped, writes and reads of the
// key store answer 503 key_store_unavailable with Retry-After, without a
// database message.
func TestKeysAPIStoreDown(t *testing.T) {
	pg := testsrv.StartPostgres(t)
	ctx := context.Background()
	db, err := store.OpenPostgres(ctx, pg.NewDatabase(t))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	ks := openKeys(t, db)
	h := Handler(&keyStatus{fakeStatus: fakeStatus{tokens: testTokens()}, ks: ks, cfg: keyTestConfig()}, zap.NewNop())
	if rec := do(t, h, "POST", "/admin/keys", config.RoleAdmin, `{"id":"k","workspace":"legal"}`); rec.Code != 201 {
		t.Fatalf("create: %d %s", rec.Code, rec.Body)
	}
	pg.Stop()
	for _, c := range []struct{ method, path, body string }{
		{"POST", "/admin/keys", `{"workspace":"legal"}`},
		{"POST", "/admin/keys/k/revoke", ""},
		{"POST", "/admin/keys/k/rotate", ""},
		{"PUT", "/admin/keys/k/limits", `{"rate_limit":{"requests_per_minute":5}}`},
		{"GET", "/admin/keys", ""},
		{"PUT", "/admin/provider-keys/legal/openai", `{"secret":"x"}`},
	} {
		rec := do(t, h, c.method, c.path, config.RoleAdmin, c.body)
		status, code, _ := openAIError(t, rec)
		if status != 503 || code != "key_store_unavailable" || rec.Header().Get("Retry-After") == "" {
			t.Errorf("%s %s: %d %s %s", c.method, c.path, status, code, rec.Body)
		}
		if strings.Contains(rec.Body.String(), "127.0.0.1") || strings.Contains(rec.Body.String(), "dial") {
			t.Errorf("%s %s: the answer shows internals: %s", c.method, c.path, rec.Body)
		}
	}
}

func TestKeysWrongMethod(t *testing.T) {
	h, _, _ := keyHandler(t)
	for path, allow := range map[string]string{
		"/admin/keys":              "GET, HEAD, POST",
		"/admin/keys/key_1":        "GET, HEAD",
		"/admin/keys/key_1/revoke": "POST",
	} {
		rec := do(t, h, http.MethodPatch, path, config.RoleAdmin, "")
		if status, code, _ := openAIError(t, rec); status != 405 || code != "method_not_allowed" || rec.Header().Get("Allow") != allow {
			t.Errorf("PATCH %s: %d %s Allow %q, want 405 Allow %q", path, status, code, rec.Header().Get("Allow"), allow)
		}
	}
}

// TestKeysAPIPages: GET /admin/keys answers a page (100 keys unless a
// limit says otherwise, at most 1000) in the order of the ids, with
// has_more and the next page's cursor; the filters hold on every page.
// It answered all 50,000 keys of a store at once, 16 MB in 1.7 s, and
// refused ?limit=10 (the data-volume probe).
func TestKeysAPIPages(t *testing.T) {
	h, _, ks := keyHandler(t)
	ctx := context.Background()
	for i := range 230 {
		ws := "default"
		if i%2 == 1 {
			ws = "legal"
		}
		if _, _, err := ks.Create(ctx, keys.Spec{ID: fmt.Sprintf("k%03d", i), Workspace: ws}, "t"); err != nil {
			t.Fatal(err)
		}
	}
	for _, id := range []string{"k005", "k101", "k201"} {
		if _, err := ks.Revoke(ctx, id, "t"); err != nil {
			t.Fatal(err)
		}
	}
	get := func(path string) KeyPage {
		t.Helper()
		rec := do(t, h, "GET", path, config.RoleViewer, "")
		var p KeyPage
		if rec.Code != 200 || json.Unmarshal(rec.Body.Bytes(), &p) != nil || p.Object != "list" {
			t.Fatalf("%s: %d %s", path, rec.Code, rec.Body)
		}
		return p
	}
	ids := func(p KeyPage) string {
		var s []string
		for _, k := range p.Data {
			s = append(s, k.ID)
		}
		return strings.Join(s, ",")
	}
	first := get("/admin/keys")
	if len(first.Data) != 100 || first.Data[0].ID != "k000" || first.Data[99].ID != "k099" || !first.HasMore || first.NextCursor == "" {
		t.Fatalf("no limit: %d keys %s…, has_more %v, cursor %q", len(first.Data), first.Data[0].ID, first.HasMore, first.NextCursor)
	}
	// Page by page, every key once, in order.
	var all []string
	for path := "/admin/keys?limit=64"; ; {
		p := get(path)
		all = append(all, ids(p))
		if !p.HasMore {
			if p.NextCursor != "" {
				t.Errorf("last page has a cursor %q", p.NextCursor)
			}
			break
		}
		path = "/admin/keys?limit=64&cursor=" + p.NextCursor
	}
	var want []string
	for i := range 230 {
		want = append(want, fmt.Sprintf("k%03d", i))
	}
	if got := strings.Join(all, ","); got != strings.Join(want, ",") {
		t.Errorf("pages of 64 listed %s", got)
	}
	// Filters apply before the page is cut: a page of revoked keys is
	// full, and a workspace's page holds only its keys.
	if p := get("/admin/keys?status=revoked&limit=2"); ids(p) != "k005,k101" || !p.HasMore {
		t.Errorf("revoked, 2: %s has_more %v", ids(p), p.HasMore)
	} else if p := get("/admin/keys?status=revoked&limit=2&cursor=" + p.NextCursor); ids(p) != "k201" || p.HasMore {
		t.Errorf("revoked after the first page: %s has_more %v", ids(p), p.HasMore)
	}
	if p := get("/admin/keys?workspace=legal&status=active&limit=3"); ids(p) != "k001,k003,k007" || !p.HasMore {
		t.Errorf("legal, active, 3: %s", ids(p))
	}
	if p := get("/admin/keys?limit=1000"); len(p.Data) != 230 || p.HasMore || p.NextCursor != "" {
		t.Errorf("limit 1000: %d keys, has_more %v", len(p.Data), p.HasMore)
	}
}
