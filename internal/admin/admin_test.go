package admin

import (
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"

	"github.com/stellwerk/stellwerk/internal/auth"
	"github.com/stellwerk/stellwerk/internal/config"
	"github.com/stellwerk/stellwerk/internal/telemetry"
)

type fakeStatus struct {
	tokens *Tokens
	cfgErr error
}

func (f *fakeStatus) SnapshotVersion() string  { return "v1" }
func (f *fakeStatus) Stopping() bool           { return false }
func (f *fakeStatus) EnvoyStreams() int64      { return 1 }
func (f *fakeStatus) LastRejection() string    { return "" }
func (f *fakeStatus) Gauges() map[string]int64 { return map[string]int64{"extproc_attempt_entries": 3} }
func (f *fakeStatus) Budgets(*http.Request) (any, error) {
	return map[string]any{"budgets": []any{}}, nil
}
func (f *fakeStatus) ConfigYAML() ([]byte, error)      { return []byte("routing: {}\n"), f.cfgErr }
func (f *fakeStatus) Policy() any                      { return map[string]string{"version": "p1"} }
func (f *fakeStatus) ConfigError() (string, time.Time) { return "", time.Time{} }
func (f *fakeStatus) Providers() any                   { return []string{} }
func (f *fakeStatus) Tokens() *Tokens                  { return f.tokens }
func (f *fakeStatus) Metrics() http.Handler            { return telemetry.New().Handler() }

// One token per role; the operator's comes from the environment.
var roleTokens = map[string]string{
	config.RoleAdmin:    "adm-0123456789",
	config.RoleOperator: "ops-0123456789",
	config.RoleViewer:   "view-0123456789",
	config.RoleAuditor:  "audit-0123456789",
}

func testTokens() *Tokens {
	return NewTokens([]config.AdminToken{
		{ID: "root", Role: config.RoleAdmin, SHA256: auth.Hash(roleTokens[config.RoleAdmin])},
		{ID: "sre", Role: config.RoleOperator, Env: "OPS_TOKEN"},
		{ID: "dash", Role: config.RoleViewer, SHA256: auth.Hash(roleTokens[config.RoleViewer])},
		{ID: "dpo", Role: config.RoleAuditor, SHA256: auth.Hash(roleTokens[config.RoleAuditor])},
		{ID: "later", Role: config.RoleAdmin, Env: "UNSET_TOKEN"},
	}, func(k string) string {
		if k == "OPS_TOKEN" {
			return " " + roleTokens[config.RoleOperator] + "\n"
		}
		return ""
	})
}

func get(t *testing.T, h http.Handler, path, authorization string) *httptest.ResponseRecorder {
	t.Helper()
	req := httptest.NewRequest(http.MethodGet, path, nil)
	if authorization != "" {
		req.Header.Set("Authorization", authorization)
	}
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	return rec
}

func TestAccessByRole(t *testing.T) {
	core, logs := observer.New(zapcore.DebugLevel)
	h := Handler(&fakeStatus{tokens: testTokens()}, zap.New(core))
	bearer := func(role string) string { return "Bearer " + roleTokens[role] }
	cases := map[string]struct {
		path, authorization string
		status              int
		code                string // error code, "" on success
	}{
		"healthz without token":         {"/healthz", "", 200, ""},
		"readyz without token":          {"/readyz", "", 200, ""},
		"healthz with a bad token":      {"/healthz", "Bearer nope", 200, ""},
		"version without token":         {"/version", "", 401, "invalid_admin_token"},
		"status without token":          {"/status", "", 401, "invalid_admin_token"},
		"policy without token":          {"/policy", "", 401, "invalid_admin_token"},
		"config without token":          {"/config", "", 401, "invalid_admin_token"},
		"vars without token":            {"/debug/vars", "", 401, "invalid_admin_token"},
		"metrics without token":         {"/metrics", "", 401, "invalid_admin_token"},
		"unknown path without token":    {"/keys", "", 401, "invalid_admin_token"},
		"status with a bad token":       {"/status", "Bearer nope", 401, "invalid_admin_token"},
		"status with a basic header":    {"/status", "Basic " + roleTokens[config.RoleAdmin], 401, "invalid_admin_token"},
		"status with an empty bearer":   {"/status", "Bearer ", 401, "invalid_admin_token"},
		"status with the digest":        {"/status", "Bearer " + auth.Hash(roleTokens[config.RoleAdmin]), 401, "invalid_admin_token"},
		"status with an unset env name": {"/status", "Bearer UNSET_TOKEN", 401, "invalid_admin_token"},
		"viewer: version":               {"/version", bearer(config.RoleViewer), 200, ""},
		"viewer: status":                {"/status", bearer(config.RoleViewer), 200, ""},
		"viewer: policy":                {"/policy", bearer(config.RoleViewer), 200, ""},
		"viewer: config":                {"/config", bearer(config.RoleViewer), 403, "insufficient_role"},
		"viewer: vars":                  {"/debug/vars", bearer(config.RoleViewer), 403, "insufficient_role"},
		"viewer: metrics":               {"/metrics", bearer(config.RoleViewer), 200, ""},
		"auditor: metrics":              {"/metrics", bearer(config.RoleAuditor), 200, ""},
		"viewer: unknown path":          {"/keys", bearer(config.RoleViewer), 404, "unknown_url"},
		"auditor: status":               {"/status", bearer(config.RoleAuditor), 200, ""},
		"auditor: policy":               {"/policy", bearer(config.RoleAuditor), 200, ""},
		"auditor: config":               {"/config", bearer(config.RoleAuditor), 200, ""},
		"auditor: vars":                 {"/debug/vars", bearer(config.RoleAuditor), 403, "insufficient_role"},
		"operator: config":              {"/config", bearer(config.RoleOperator), 200, ""},
		"operator: vars":                {"/debug/vars", bearer(config.RoleOperator), 200, ""},
		"operator: lower-case scheme":   {"/status", "bearer " + roleTokens[config.RoleOperator], 200, ""},
		"admin: status":                 {"/status", bearer(config.RoleAdmin), 200, ""},
		"admin: config":                 {"/config", bearer(config.RoleAdmin), 200, ""},
		"admin: vars":                   {"/debug/vars", bearer(config.RoleAdmin), 200, ""},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			rec := get(t, h, tc.path, tc.authorization)
			if rec.Code != tc.status {
				t.Fatalf("status %d, want %d: %s", rec.Code, tc.status, rec.Body)
			}
			if tc.path == "/metrics" && rec.Code == 200 && !strings.Contains(rec.Body.String(), "stellwerk_build_info{") {
				t.Fatalf("not the metrics: %.300s", rec.Body)
			}
			if tc.code == "" {
				return
			}
			var e struct {
				Error struct {
					Message, Type, Code string
					Param               *string
				}
			}
			if err := json.Unmarshal(rec.Body.Bytes(), &e); err != nil || e.Error.Message == "" || e.Error.Type == "" {
				t.Fatalf("not an OpenAI error body: %s", rec.Body)
			}
			if e.Error.Code != tc.code || rec.Header().Get("Content-Type") != "application/json" {
				t.Errorf("code %q content-type %q, want %q: %s", e.Error.Code, rec.Header().Get("Content-Type"), tc.code, rec.Body)
			}
			if rec.Code == 401 && rec.Header().Get("WWW-Authenticate") == "" {
				t.Errorf("401 without WWW-Authenticate")
			}
		})
	}
	for _, e := range logs.All() {
		line, _ := json.Marshal(e.ContextMap())
		for _, tok := range roleTokens {
			if strings.Contains(e.Message+string(line), tok) {
				t.Errorf("a token was logged: %s %s", e.Message, line)
			}
		}
	}
	if logs.FilterMessage("admin request refused").Len() == 0 {
		t.Errorf("refusals are not logged")
	}
}

func TestNoTokensConfigured(t *testing.T) {
	h := Handler(&fakeStatus{tokens: NewTokens(nil, nil)}, zap.NewNop())
	rec := get(t, h, "/status", "Bearer anything")
	if rec.Code != 401 || !strings.Contains(rec.Body.String(), "no admin token is configured") {
		t.Errorf("%d %s", rec.Code, rec.Body)
	}
	if rec := get(t, Handler(&fakeStatus{}, zap.NewNop()), "/config", "Bearer x"); rec.Code != 401 {
		t.Errorf("nil token table: %d", rec.Code)
	}
	if rec := get(t, h, "/readyz", ""); rec.Code != 200 {
		t.Errorf("readyz %d", rec.Code)
	}
}

func TestDebugVars(t *testing.T) {
	h := Handler(&fakeStatus{tokens: testTokens()}, zap.NewNop())
	rec := get(t, h, "/debug/vars", "Bearer "+roleTokens[config.RoleOperator])
	var vars map[string]json.RawMessage
	if err := json.Unmarshal(rec.Body.Bytes(), &vars); err != nil {
		t.Fatalf("%v: %s", err, rec.Body)
	}
	if _, ok := vars["cmdline"]; ok {
		t.Errorf("/debug/vars shows the command line")
	}
	var n int
	var ms struct{ HeapAlloc uint64 }
	if json.Unmarshal(vars["goroutines"], &n) != nil || n < 1 || json.Unmarshal(vars["memstats"], &ms) != nil || ms.HeapAlloc == 0 {
		t.Errorf("goroutines or memstats missing: %s", rec.Body)
	}
	if string(vars["extproc_attempt_entries"]) != "3" || len(vars) != 3 {
		t.Errorf("want goroutines, memstats and the status's gauges only: %s", rec.Body)
	}
}

func TestConfigRenderError(t *testing.T) {
	h := Handler(&fakeStatus{tokens: testTokens(), cfgErr: errors.New("boom /etc/secret")}, zap.NewNop())
	rec := get(t, h, "/config", "Bearer "+roleTokens[config.RoleAdmin])
	if rec.Code != 500 || strings.Contains(rec.Body.String(), "/etc/secret") || !json.Valid(rec.Body.Bytes()) {
		t.Errorf("%d %s", rec.Code, rec.Body)
	}
}

func TestTokensMissing(t *testing.T) {
	tk := testTokens()
	if m := tk.Missing(); len(m) != 1 || m[0] != "later (environment variable UNSET_TOKEN)" {
		t.Errorf("missing %v", m)
	}
	if tk.Len() != 4 {
		t.Errorf("len %d", tk.Len())
	}
	if c, ok := tk.Authenticate("Bearer  " + roleTokens[config.RoleAuditor] + " "); !ok || c.TokenID != "dpo" || c.Role != config.RoleAuditor {
		t.Errorf("auditor: %+v %v", c, ok)
	}
}

// A path served under other methods answers 405 with Allow naming them; one
// served under none stays a 404; neither tells a caller without a token.
func TestWrongMethod(t *testing.T) {
	h := Handler(&fakeStatus{tokens: testTokens()}, zap.NewNop())
	send := func(method, path, authorization string) *httptest.ResponseRecorder {
		req := httptest.NewRequest(method, path, nil)
		if authorization != "" {
			req.Header.Set("Authorization", authorization)
		}
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		return rec
	}
	admin := "Bearer " + roleTokens[config.RoleAdmin]
	cases := []struct {
		method, path, authorization string
		status                      int
		allow, code                 string
	}{
		{http.MethodPost, "/status", admin, 405, "GET, HEAD", "method_not_allowed"},
		{http.MethodDelete, "/version", admin, 405, "GET, HEAD", "method_not_allowed"},
		{http.MethodPost, "/status", "", 401, "", "invalid_admin_token"},
		{http.MethodPost, "/nothing-here", admin, 404, "", "unknown_url"},
		{http.MethodGet, "/nothing-here", admin, 404, "", "unknown_url"},
	}
	for _, tc := range cases {
		rec := send(tc.method, tc.path, tc.authorization)
		var e struct {
			Error struct{ Message, Code string }
		}
		if rec.Code != tc.status || rec.Header().Get("Allow") != tc.allow ||
			json.Unmarshal(rec.Body.Bytes(), &e) != nil || e.Error.Code != tc.code {
			t.Errorf("%s %s: %d Allow %q %s; want %d Allow %q code %s",
				tc.method, tc.path, rec.Code, rec.Header().Get("Allow"), rec.Body, tc.status, tc.allow, tc.code)
		}
		if tc.status == 405 && !strings.Contains(e.Error.Message, "use GET, HEAD") {
			t.Errorf("%s %s: the message does not name the methods: %s", tc.method, tc.path, e.Error.Message)
		}
	}
}

// A query Go's parser would drop a pair of is refused, not read as narrower
// than it is.
func TestUnreadableQuery(t *testing.T) {
	h := Handler(&fakeStatus{tokens: testTokens()}, zap.NewNop())
	admin := "Bearer " + roleTokens[config.RoleAdmin]
	for _, path := range []string{"/status?group_by=model;team", "/status?to=%zz"} {
		rec := get(t, h, path, admin)
		var e struct {
			Error struct{ Code, Message string }
		}
		if rec.Code != 400 || json.Unmarshal(rec.Body.Bytes(), &e) != nil || e.Error.Code != "invalid_query" {
			t.Errorf("%s: %d %s, want 400 invalid_query", path, rec.Code, rec.Body)
		}
	}
	if rec := get(t, h, "/status?group_by=model;team", ""); rec.Code != 401 {
		t.Errorf("without a token: %d, want 401 before the query is read", rec.Code)
	}
	if rec := get(t, h, "/status?a=1&b=%3B", admin); rec.Code != 200 {
		t.Errorf("an escaped ';': %d %s", rec.Code, rec.Body)
	}
}
