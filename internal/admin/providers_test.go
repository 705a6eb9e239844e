package admin

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"go.uber.org/zap"

	"github.com/stellwerk/stellwerk/internal/config"
)

// providerStatus keeps one provider's override the way the server does,
// and refuses an outlier interval over an hour as its validation would.
type providerStatus struct {
	fakeStatus
	override *config.ClusterSettings
	actor    string
}

func (p *providerStatus) ProviderCluster(name string) (ProviderCluster, error) {
	if name != "vllm" {
		return ProviderCluster{}, fmt.Errorf("%w: %q", ErrUnknownProvider, name)
	}
	return ProviderCluster{Provider: name, Override: p.override, SnapshotVersion: "v1"}, nil
}

func (p *providerStatus) SetProviderCluster(_ context.Context, name string, ov config.ClusterSettings, actor string) (ProviderCluster, error) {
	if name != "vllm" {
		return ProviderCluster{}, fmt.Errorf("%w: %q", ErrUnknownProvider, name)
	}
	if o := ov.OutlierDetection; o != nil && o.Interval > time.Hour {
		return ProviderCluster{}, fmt.Errorf("%w: providers[0].cluster.outlier_detection.interval: too long", ErrInvalidCluster)
	}
	p.override, p.actor = &ov, actor
	return p.ProviderCluster(name)
}

func (p *providerStatus) ProviderClusters() []ProviderCluster {
	v, _ := p.ProviderCluster("vllm")
	return []ProviderCluster{v}
}

// TestProviderList: every reader gets the providers' clusters as a list.
func TestProviderList(t *testing.T) {
	h := Handler(&providerStatus{fakeStatus: fakeStatus{tokens: testTokens()}}, zap.NewNop())
	if rec := get(t, h, "/admin/providers", ""); rec.Code != http.StatusUnauthorized {
		t.Fatalf("without a token: %d", rec.Code)
	}
	rec := get(t, h, "/admin/providers", "Bearer "+roleTokens[config.RoleViewer])
	if rec.Code != 200 || !strings.Contains(rec.Body.String(), `"data":[{"provider":"vllm"`) {
		t.Fatalf("%d %s", rec.Code, rec.Body)
	}
}

func TestProviderClusterAPI(t *testing.T) {
	ps := &providerStatus{fakeStatus: fakeStatus{tokens: testTokens()}}
	h := Handler(ps, zap.NewNop())
	body := `{"circuit_breakers": {"max_requests": 7}, "outlier_detection": {"consecutive_5xx": 2, "interval": "1s"}}`

	// Viewers and auditors read; only operators and admins change.
	for _, role := range []string{config.RoleViewer, config.RoleAuditor} {
		if rec := do(t, h, http.MethodPut, "/admin/providers/vllm", role, body); rec.Code != http.StatusForbidden {
			t.Errorf("%s PUT: %d %s", role, rec.Code, rec.Body)
		}
	}
	if rec := do(t, h, http.MethodPut, "/admin/providers/vllm", "", body); rec.Code != http.StatusUnauthorized {
		t.Errorf("PUT without a token: %d", rec.Code)
	}
	if ps.override != nil {
		t.Fatal("a refused caller changed the cluster")
	}
	rec := do(t, h, http.MethodPut, "/admin/providers/vllm", config.RoleOperator, body)
	if rec.Code != http.StatusOK {
		t.Fatalf("operator PUT: %d %s", rec.Code, rec.Body)
	}
	if ps.override.CircuitBreakers.MaxRequests != 7 || ps.override.OutlierDetection.Interval != time.Second || ps.actor != "sre" {
		t.Errorf("override %+v by %q", ps.override, ps.actor)
	}
	var v ProviderCluster
	if err := json.Unmarshal(rec.Body.Bytes(), &v); err != nil || v.Override == nil || v.Override.CircuitBreakers.MaxRequests != 7 {
		t.Errorf("answer %s (%v)", rec.Body, err)
	}
	if rec := do(t, h, http.MethodGet, "/admin/providers/vllm", config.RoleViewer, ""); rec.Code != http.StatusOK ||
		!strings.Contains(rec.Body.String(), `"max_requests":7`) {
		t.Errorf("viewer GET: %d %s", rec.Code, rec.Body)
	}

	bad := map[string]struct {
		path, body string
		status     int
		code, msg  string
	}{
		"unknown field":    {"/admin/providers/vllm", `{"circuit_breaker": {}}`, 400, "invalid_cluster", `unknown field \"circuit_breaker\" in ClusterSettings`},
		"not a duration":   {"/admin/providers/vllm", `{"idle_timeout": "soon"}`, 400, "invalid_cluster", "a string (`soon`) where a duration (5s, 250ms) belongs"},
		"not a block":      {"/admin/providers/vllm", `garbage`, 400, "invalid_cluster", "a string (`garbage`) where a mapping of ClusterSettings belongs"},
		"refused":          {"/admin/providers/vllm", `{"outlier_detection": {"interval": "2h"}}`, 400, "invalid_cluster", "providers[0].cluster.outlier_detection.interval"},
		"unknown provider": {"/admin/providers/nope", `{}`, 404, "unknown_provider", `nope`},
	}
	for name, tc := range bad {
		t.Run(name, func(t *testing.T) {
			rec := do(t, h, http.MethodPut, tc.path, config.RoleOperator, tc.body)
			status, code, _ := openAIError(t, rec)
			if status != tc.status || code != tc.code || !strings.Contains(rec.Body.String(), tc.msg) ||
				strings.Contains(rec.Body.String(), "config.") || strings.Contains(rec.Body.String(), "unmarshal") {
				t.Errorf("%d %s: %s", status, code, rec.Body)
			}
		})
	}
	if ps.override.CircuitBreakers.MaxRequests != 7 {
		t.Errorf("a refused change replaced the override: %+v", ps.override)
	}

	// Whom the provider's key is sent to is the admin's: an operator may
	// not name another CA, server name or client certificate (the security
	// probe), but may set the minimum TLS version.
	for _, tls := range []string{`{"sni":"evil.example"}`, `{"ca_bundle":"/tmp/ca.pem"}`, `{"client_certificate":"/a","client_key":"/b"}`} {
		rec := do(t, h, http.MethodPut, "/admin/providers/vllm", config.RoleOperator, `{"tls":`+tls+`}`)
		if status, code, _ := openAIError(t, rec); status != 403 || code != "insufficient_role" {
			t.Errorf("operator tls %s: %d %s", tls, status, rec.Body)
		}
	}
	if ps.override.TLS != nil {
		t.Fatalf("a refused TLS change landed: %+v", ps.override.TLS)
	}
	if rec := do(t, h, http.MethodPut, "/admin/providers/vllm", config.RoleOperator, `{"tls":{"min_version":"1.3"}}`); rec.Code != 200 {
		t.Errorf("operator tls min_version: %d %s", rec.Code, rec.Body)
	}
	if rec := do(t, h, http.MethodPut, "/admin/providers/vllm", config.RoleAdmin, `{"tls":{"sni":"llm.internal"}}`); rec.Code != 200 {
		t.Errorf("admin tls sni: %d %s", rec.Code, rec.Body)
	}
}
