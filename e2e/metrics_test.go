package e2e

import (
	"context"
	"fmt"
	"io"
	"math"
	"net/http"
	"strings"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/stellwerk/stellwerk/internal/auth"
	"github.com/stellwerk/stellwerk/internal/config"
	"github.com/stellwerk/stellwerk/internal/harness"
	"github.com/stellwerk/stellwerk/internal/mockllm"
	"github.com/tidwall/gjson"
)

// TestMetricsAfterEveryKind (issue 16): after one request of every kind
// through Envoy — a JSON answer, a stream, a failover, a policy denial, a
// budget refusal, a bad key — GET /metrics, read with a viewer token as a
// Prometheus scraper would, has exactly the counts and labels a dashboard
// reads, and no key, user or prompt anywhere.
func TestMetricsAfterEveryKind(t *testing.T) {
	t.Parallel()
	s := harness.Start(t, harness.Options{
		Providers: []harness.ProviderSpec{{Name: "primary", Key: "sk-primary"}, {Name: "backup", Key: "sk-backup"}},
		Models: []config.Model{
			{ID: "primary-mini", Provider: "primary", ProviderModel: "primary-upstream", ContextWindow: 128000,
				Price: config.Price{InputPerMTok: 1, OutputPerMTok: 2}},
			{ID: "backup-mini", Provider: "backup", ProviderModel: "backup-upstream", ContextWindow: 128000,
				Price: config.Price{InputPerMTok: 3, OutputPerMTok: 6}},
		},
		Mutate: func(c *config.Config) {
			c.Currency.USDToEUR = 1
			c.Auth.Mode = "keys"
			c.Workspaces = []config.Workspace{{Name: "default", Objective: "cost"}, {Name: "capped", Objective: "cost"}}
			c.Keys = []config.Key{
				{ID: "app", SHA256: auth.Hash("sk-app-secret"), Workspace: "default", User: "jane@example.com"},
				{ID: "capped", SHA256: auth.Hash("sk-capped-secret"), Workspace: "capped"},
			}
			c.Budgets.Limits = []config.BudgetRule{{Name: "capped-day", Scope: "workspace", Subject: "capped", AmountEUR: 0.000001, Period: "day"}}
			c.Admin.Tokens = append(c.Admin.Tokens, config.AdminToken{ID: "prometheus", Role: config.RoleViewer, SHA256: auth.Hash("prom-viewer-token")})
		},
		ReadyStatus: 401,
	})
	app := map[string]string{"Authorization": "Bearer sk-app-secret"}
	send := func(key, body string, want int) {
		t.Helper()
		resp, b := post(t, s.URL+"/v1/chat/completions", body, map[string]string{"Authorization": "Bearer " + key})
		if resp.StatusCode != want {
			t.Fatalf("status %d, want %d: %s", resp.StatusCode, want, b)
		}
	}
	// The harness's readiness probes (GET /v1/models without a key) were
	// refused at the edge too: the bad key below is counted after them,
	// once their count holds still. A request is recorded when its ext_proc
	// stream ends, just after its answer left.
	badKey := "error_code=invalid_api_key,model=,provider=,status_class=4xx,workspace="
	probes := -1.0
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(200 * time.Millisecond) {
		_, mfs := scrape(t, s)
		n := promSample(mfs, "stellwerk_requests_total", badKey)
		if n >= 1 && n == probes {
			break
		}
		probes = n
	}
	// The refusals the config's limits can make exist at 0 before the
	// first one, so that the first counts in increase() (the dashboards
	// probe).
	if _, mfs := scrape(t, s); promSample(mfs, "stellwerk_limit_rejections_total", "kind=budget,scope=workspace,workspace=capped") != 0 ||
		promSample(mfs, "stellwerk_limit_rejections_total", "kind=requests,scope=key,workspace=default") != 0 {
		t.Errorf("the config's rejection series are not there at 0 before any refusal")
	}
	const hello = `{"model":"auto","max_tokens":20,"messages":[{"role":"user","content":"hello there"}]}`
	send("sk-app-secret", hello, 200)
	resp, b := post(t, s.URL+"/v1/chat/completions",
		`{"model":"primary-mini","stream":true,"max_tokens":20,"messages":[{"role":"user","content":"hello there"}]}`, app)
	if resp.StatusCode != 200 || !strings.Contains(string(b), "[DONE]") {
		t.Fatalf("stream: %d %s", resp.StatusCode, b)
	}
	s.Providers["primary"].SetBehavior(mockllm.Behavior{Status: 500})
	send("sk-app-secret", hello, 200) // primary fails, backup answers
	s.Providers["primary"].SetBehavior(mockllm.Behavior{})
	send("sk-app-secret", `{"model":"auto","messages":[{"role":"user","content":"my key is AKIAIOSFODNN7EXAMPLE, why does S3 refuse it?"}]}`, 403)
	send("sk-capped-secret", hello, 429)
	send("sk-wrong", hello, 401)

	if r, err := s.AdminGetAs("/metrics", ""); err != nil || r.StatusCode != 401 {
		t.Fatalf("/metrics without a token: %v %v", r.StatusCode, err)
	}
	genai := `gen_ai_operation_name=chat,gen_ai_provider_name=primary,gen_ai_request_model=auto,gen_ai_response_model=primary-mini`
	expect := map[string]struct {
		metric, labels string
		want           float64
	}{
		"served by primary": {"stellwerk_requests_total", "error_code=,model=primary-mini,provider=primary,status_class=2xx,workspace=default", 2},
		"failed over":       {"stellwerk_requests_total", "error_code=,model=backup-mini,provider=backup,status_class=2xx,workspace=default", 1},
		"denied":            {"stellwerk_requests_total", "error_code=policy_denied,model=,provider=,status_class=4xx,workspace=default", 1},
		"budget":            {"stellwerk_requests_total", "error_code=budget_exceeded,model=,provider=,status_class=4xx,workspace=capped", 1},
		"bad key":           {"stellwerk_requests_total", badKey, probes + 1},
		"attempt failed":    {"stellwerk_provider_attempts_total", "model=primary-mini,outcome=failed,provider=primary", 1},
		"attempts served":   {"stellwerk_provider_attempts_total", "model=primary-mini,outcome=served,provider=primary", 2},
		"backup served":     {"stellwerk_provider_attempts_total", "model=backup-mini,outcome=served,provider=backup", 1},
		"denial rule":       {"stellwerk_policy_denials_total", "rule=secrets", 1},
		"secret found":      {"stellwerk_classifier_findings_total", "detector=secret,type=aws_access_key_id", 1},
		"rejection":         {"stellwerk_limit_rejections_total", "kind=budget,scope=workspace,workspace=capped", 1},
		"tokens":            {"gen_ai_client_token_usage", genai + ",gen_ai_token_type=output", 1},
		"duration":          {"gen_ai_server_request_duration_seconds", genai, 1},
		"ttft":              {"gen_ai_server_time_to_first_token_seconds", strings.Replace(genai, "request_model=auto", "request_model=primary-mini", 1), 1},
		"overhead":          {"stellwerk_router_overhead_seconds", "stage=decide", 5},
		"policy":            {"stellwerk_policy_info", "version=" + policyVersion(t, s), 1},
		"budget ratio":      {"stellwerk_budget_used_ratio", "budget=capped-day,scope=workspace,subject=capped", 0}, // nothing was sent
	}
	var text string
	var mfs map[string]*dto.MetricFamily
	var wrong []string
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(100 * time.Millisecond) {
		text, mfs = scrape(t, s)
		wrong = wrong[:0]
		for name, tc := range expect {
			if got := promSample(mfs, tc.metric, tc.labels); got != tc.want {
				wrong = append(wrong, fmt.Sprintf("%s: %s{%s} = %v, want %v", name, tc.metric, tc.labels, got, tc.want))
			}
		}
		if len(wrong) == 0 || time.Now().After(deadline) {
			break
		}
	}
	for _, w := range wrong {
		t.Error(w)
	}
	// The policy's decision memo: the first decision is evaluated, and
	// every decision is counted once, evaluated or answered from the memo
	// (the two auto requests, the pinned stream and the denied one at least).
	hits, misses := promSample(mfs, "stellwerk_policy_memo_hits_total", ""), promSample(mfs, "stellwerk_policy_memo_misses_total", "")
	if misses < 1 || hits+misses < 4 {
		t.Errorf("policy memo: %v hits, %v misses", hits, misses)
	}
	for _, secret := range []string{"sk-app-secret", "sk-capped", "sk-primary", "jane@example.com", "AKIA", "hello there", `key="app"`} {
		if strings.Contains(text, secret) {
			t.Errorf("the metrics hold %q", secret)
		}
	}
	// What the provider reported, at the catalog's prices, each request in
	// whole micro-euros as the ledger settles it: the cost counter sums
	// exactly what the spend ledger holds.
	var want float64
	for _, name := range []string{"primary", "backup"} {
		m := s.Config.Models[0]
		if name == "backup" {
			m = s.Config.Models[1]
		}
		for _, rec := range s.Providers[name].Requests() {
			if rec.Usage != nil {
				eur := (float64(rec.Usage.PromptTokens)*m.Price.InputPerMTok + float64(rec.Usage.CompletionTokens)*m.Price.OutputPerMTok) / 1e6
				want += math.Round(eur*1e6) / 1e6
			}
		}
	}
	got := promSample(mfs, "stellwerk_cost_eur_total", "model=primary-mini,provider=primary,workspace=default") +
		promSample(mfs, "stellwerk_cost_eur_total", "model=backup-mini,provider=backup,workspace=default")
	if want == 0 || got < want*0.999999 || got > want*1.000001 {
		t.Errorf("cost counters %v EUR, the providers' usage costs %v EUR", got, want)
	}
	for _, name := range []string{"stellwerk_build_info", "stellwerk_config_info", "stellwerk_audit_queue_depth", "stellwerk_spend_queue_depth", "go_goroutines"} {
		if mfs[name] == nil {
			t.Errorf("no %s", name)
		}
	}
}

// scrape reads GET /metrics as a Prometheus scraper with a viewer token.
func scrape(t *testing.T, s *harness.Stack) (string, map[string]*dto.MetricFamily) {
	t.Helper()
	r, err := s.AdminGetAs("/metrics", "prom-viewer-token")
	if err != nil {
		t.Fatal(err)
	}
	defer r.Body.Close()
	text, _ := io.ReadAll(r.Body)
	if r.StatusCode != 200 {
		t.Fatalf("/metrics as a viewer: %d %s", r.StatusCode, text)
	}
	p := expfmt.NewTextParser(model.UTF8Validation)
	mfs, err := p.TextToMetricFamilies(strings.NewReader(string(text)))
	if err != nil {
		t.Fatalf("not Prometheus text: %v", err)
	}
	return string(text), mfs
}

// policyVersion is the version GET /policy reports.
func policyVersion(t *testing.T, s *harness.Stack) string {
	v, _ := adminJSON(t, s, "/policy")["version"].(string)
	if v == "" {
		t.Fatal("no policy version")
	}
	return v
}

// promSample is a counter's or gauge's value, or a histogram's count, of
// the series with exactly these labels ("name=value,…", sorted by name);
// -1 when there is none.
func promSample(mfs map[string]*dto.MetricFamily, name, labels string) float64 {
	mf := mfs[name]
	if mf == nil {
		return -1
	}
	for _, m := range mf.GetMetric() {
		parts := make([]string, len(m.GetLabel()))
		for i, l := range m.GetLabel() {
			parts[i] = l.GetName() + "=" + l.GetValue()
		}
		if strings.Join(parts, ",") != labels {
			continue
		}
		switch {
		case m.Counter != nil:
			return m.GetCounter().GetValue()
		case m.Gauge != nil:
			return m.GetGauge().GetValue()
		case m.Histogram != nil:
			return float64(m.GetHistogram().GetSampleCount())
		case m.Untyped != nil:
			return m.GetUntyped().GetValue()
		}
	}
	return -1
}

// TestClientLeavingIsNoProviderFailure: a client that gives up before a
// slow provider answers is not the provider's failure: the attempt is
// "abandoned" in the metrics and the audit record, not "failed", which the
// error-ratio alert counts (the capacity probe of 2026-12-07: 300 clients
// timing out on a slow provider were 300 of its failures).
func TestClientLeavingIsNoProviderFailure(t *testing.T) {
	t.Parallel()
	s := failoverStackWith(t, func(c *config.Config) {
		c.Admin.Tokens = append(c.Admin.Tokens, config.AdminToken{ID: "prometheus", Role: config.RoleViewer, SHA256: auth.Hash("prom-viewer-token")})
	})
	s.Providers["primary"].SetBehavior(mockllm.Behavior{FirstByteDelay: 3 * time.Second})
	for _, stream := range []string{"false", "true"} {
		ctx, cancel := context.WithTimeout(context.Background(), 400*time.Millisecond)
		req, _ := http.NewRequestWithContext(ctx, http.MethodPost, s.URL+"/v1/chat/completions",
			strings.NewReader(`{"model":"primary-mini","stream":`+stream+`,"messages":[{"role":"user","content":"x"}]}`))
		req.Header.Set("Content-Type", "application/json")
		if resp, err := http.DefaultClient.Do(req); err == nil {
			resp.Body.Close()
			t.Fatalf("stream %s: answered %d before the provider's first byte", stream, resp.StatusCode)
		}
		cancel()
	}
	var mfs map[string]*dto.MetricFamily
	waitFor(t, "two abandoned attempts", func() bool {
		_, mfs = scrape(t, s)
		return promSample(mfs, "stellwerk_provider_attempts_total", "model=primary-mini,outcome=abandoned,provider=primary") == 2
	})
	if n := promSample(mfs, "stellwerk_provider_attempts_total", "model=primary-mini,outcome=failed,provider=primary"); n > 0 {
		t.Errorf("%v failed attempts on primary", n)
	}
	var recs [][]byte
	waitFor(t, "the records", func() bool {
		recs = recs[:0]
		for _, r := range auditPage(t, s, "kind=decision").Records {
			if gjson.GetBytes(r.Record, "attempts.0.provider").Str == "primary" {
				recs = append(recs, r.Record)
			}
		}
		return len(recs) == 2
	})
	for _, rec := range recs {
		if a := gjson.GetBytes(rec, "attempts.0"); a.Get("outcome").Str != "abandoned" || gjson.GetBytes(rec, "error_code").Str != "client_closed" {
			t.Errorf("the record: %s", rec)
		}
	}

	// With failover: the first provider's 500 stays its failure, and the
	// second, under way when the client left, is abandoned (the red team:
	// the 500 read as abandoned, the second attempt went unrecorded).
	s.Providers["primary"].SetBehavior(mockllm.Behavior{Status: 500})
	s.Providers["claude"].SetBehavior(mockllm.Behavior{FirstByteDelay: 3 * time.Second})
	ctx, cancel := context.WithTimeout(context.Background(), 600*time.Millisecond)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, http.MethodPost, s.URL+"/v1/chat/completions",
		strings.NewReader(`{"model":"auto","messages":[{"role":"user","content":"x"}]}`))
	req.Header.Set("Content-Type", "application/json")
	if resp, err := http.DefaultClient.Do(req); err == nil {
		resp.Body.Close()
		t.Fatalf("answered %d before the second provider's first byte", resp.StatusCode)
	}
	var rec []byte
	waitFor(t, "the failover record", func() bool {
		for _, r := range auditPage(t, s, "kind=decision").Records {
			if gjson.GetBytes(r.Record, "attempts.#").Int() == 2 {
				rec = r.Record
			}
		}
		return rec != nil
	})
	if a := gjson.GetBytes(rec, "attempts"); a.Get("0.provider").Str != "primary" || a.Get("0.outcome").Str != "failed" || a.Get("0.status").Int() != 500 ||
		a.Get("1.provider").Str != "claude" || a.Get("1.outcome").Str != "abandoned" || gjson.GetBytes(rec, "served").Str != "claude-haiku" {
		t.Errorf("the failover record's attempts (and the provider with the prompt, charged): %s served %s", a.Raw, gjson.GetBytes(rec, "served").Raw)
	}
	waitFor(t, "the failover attempts counted", func() bool {
		_, mfs = scrape(t, s)
		return promSample(mfs, "stellwerk_provider_attempts_total", "model=claude-haiku,outcome=abandoned,provider=claude") == 1
	})
	if n := promSample(mfs, "stellwerk_provider_attempts_total", "model=primary-mini,outcome=failed,provider=primary"); n != 1 {
		t.Errorf("primary's failed attempts: %v, want 1", n)
	}
}
