package extproc

import (
	"context"
	"strings"
	"testing"

	extprocv3 "github.com/envoyproxy/go-control-plane/envoy/service/ext_proc/v3"
	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"

	"github.com/stellwerk/stellwerk/internal/config"
	"github.com/stellwerk/stellwerk/internal/header"
	"github.com/stellwerk/stellwerk/internal/ledger"
	"github.com/stellwerk/stellwerk/internal/telemetry"
)

// TestMetricsPerRequest: each kind of request leaves the series a
// dashboard reads, with what the client got, and nothing a client sent
// becomes a label.
func TestMetricsPerRequest(t *testing.T) {
	st := pricedProvider(t, "sk-p")
	st.Metrics = telemetry.New()
	run := func(msgs ...*extprocv3.ProcessingRequest) {
		p := &edge{filter: filter{state: st, log: zap.NewNop(), id: NewDecisionID()}, ctx: context.Background()}
		for _, m := range msgs {
			p.handle(m)
		}
		p.finish()
	}
	chat := func(model string, answer ...*extprocv3.ProcessingRequest) []*extprocv3.ProcessingRequest {
		return append([]*extprocv3.ProcessingRequest{headersMsg("POST", "/v1/chat/completions", false),
			bodyMsg(bodyFor(`{"model":"`+model+`","max_tokens":100,"messages":[{"role":"user","content":"mail me at jane@example.com"}]}`, answer))}, answer...)
	}

	run(append(chat("auto"), respHeadersMsg("200", "application/json"),
		respBodyMsg(`{"choices":[],"usage":{"prompt_tokens":1000,"completion_tokens":500}}`, true))...)
	run(chat("m", respHeadersMsg("200", "text/event-stream"), respBodyMsg(oaiChunk, false),
		respBodyMsg(`data: {"choices":[],"usage":{"prompt_tokens":40,"completion_tokens":3}}`+"\n\ndata: [DONE]\n\n", true))...)
	run(append(chat("auto"), respHeadersMsg("500", "application/json"), respBodyMsg(`{"error":{"message":"boom"}}`, true))...)
	run(chat("no-such-model-from-a-client")...)
	run(headersMsg("GET", "/v1/models", true)) // not counted
	b, _ := ledger.NewMemory(context.Background(), ledger.MemoryOptions{})
	lim, _ := ledger.NewLimits(nil, nil, []ledger.RateRule{{Name: "one", Scope: ledger.ScopeWorkspace, RequestsPerMinute: 1}})
	st.Ledger, st.Limited = ledger.New(b, lim, ledger.Options{}), true
	defer st.Ledger.Close(context.Background())
	run(append(chat("auto"), respHeadersMsg("200", "application/json"), respBodyMsg(`{"choices":[]}`, true))...)
	run(chat("auto")...) // the second in the minute: 429

	g := st.Metrics.Gatherer()
	for name, tc := range map[string]struct {
		metric string
		labels string
		want   float64
	}{
		"served":        {"stellwerk_requests_total", "error_code=,model=m,provider=p,status_class=2xx,workspace=default", 3},
		"provider 500":  {"stellwerk_requests_total", "error_code=,model=m,provider=p,status_class=5xx,workspace=default", 1},
		"unknown model": {"stellwerk_requests_total", "error_code=model_not_found,model=,provider=,status_class=4xx,workspace=default", 1},
		"rate limited":  {"stellwerk_requests_total", "error_code=rate_limit_exceeded,model=,provider=,status_class=4xx,workspace=default", 1},
		"rejection":     {"stellwerk_limit_rejections_total", "kind=requests,scope=workspace,workspace=default", 1},
		"attempts ok":   {"stellwerk_provider_attempts_total", "model=m,outcome=served,provider=p", 3},
		"attempt 500":   {"stellwerk_provider_attempts_total", "model=m,outcome=failed,provider=p", 1},
		// The JSON answer's usage, the stream's, and the estimate of the one without.
		"input tokens": {"gen_ai_client_token_usage", "gen_ai_operation_name=chat,gen_ai_provider_name=p,gen_ai_request_model=auto,gen_ai_response_model=m,gen_ai_token_type=input", 2},
		"pinned":       {"gen_ai_client_token_usage", "gen_ai_operation_name=chat,gen_ai_provider_name=p,gen_ai_request_model=m,gen_ai_response_model=m,gen_ai_token_type=output", 1},
		"ttft":         {"gen_ai_server_time_to_first_token_seconds", "gen_ai_operation_name=chat,gen_ai_provider_name=p,gen_ai_request_model=m,gen_ai_response_model=m", 1},
		"durations":    {"gen_ai_server_request_duration_seconds", "gen_ai_operation_name=chat,gen_ai_provider_name=p,gen_ai_request_model=auto,gen_ai_response_model=m", 3},
		"pii":          {"stellwerk_classifier_findings_total", "detector=pii,type=email", 5},
		"decided":      {"stellwerk_router_overhead_seconds", "stage=decide", 6},
		"reserved":     {"stellwerk_router_overhead_seconds", "stage=reserve", 2},
	} {
		if got := sample(t, g, tc.metric, tc.labels); got != tc.want {
			t.Errorf("%s: %s{%s} = %v, want %v", name, tc.metric, tc.labels, got, tc.want)
		}
	}
	if got := sample(t, g, "stellwerk_cost_eur_total", "model=m,provider=p,workspace=default"); got < 0.00713 || got > 0.00714 {
		// 0.007 for the JSON answer, 0.00011 for the stream, the prompt's
		// estimate (14 tokens in, nothing answered) for the one without
		// usage.
		t.Errorf("cost %v, want 0.007138", got)
	}
	// No baseline in this catalog: no saving claimed, and none lost (the
	// baseline counter was 0, so baseline − cost showed the whole cost as
	// a loss: the observability probe's embeddings).
	if b, c := sample(t, g, "stellwerk_baseline_cost_eur_total", "model=m,provider=p,workspace=default"),
		sample(t, g, "stellwerk_cost_eur_total", "model=m,provider=p,workspace=default"); b != c {
		t.Errorf("baseline %v, cost %v: want equal without a baseline", b, c)
	}
	mfs, _ := g.Gather()
	for _, mf := range mfs {
		for _, m := range mf.GetMetric() {
			if strings.Contains(labels(m), "no-such-model") {
				t.Errorf("a client's model name became a label: %s{%s}", mf.GetName(), labels(m))
			}
		}
	}
}

// pricedProvider is oneProvider with m priced (2 and 10 USD per million
// tokens, one USD a euro).
func pricedProvider(tb testing.TB, key string) *State {
	tb.Helper()
	c, err := config.Decode(strings.NewReader(`
routing: {default_model: m}
currency: {usd_to_eur: 1}
providers: [{name: p, base_url: "https://p.example.com/v1", residency: eu, credential: {env: P_KEY}}]
models: [{id: m, provider: p, context_window: 8000, price: {input_per_mtok: 2, output_per_mtok: 10}}]
`))
	if err != nil {
		tb.Fatal(err)
	}
	return stateFor(tb, c, func(string) string { return key })
}

// oneProvider is a State with provider p (its key in P_KEY: key) and its
// model m.
func oneProvider(t *testing.T, key string) *State {
	t.Helper()
	c, err := config.Decode(strings.NewReader(`
routing: {default_model: m}
providers: [{name: p, base_url: "https://p.example.com/v1", residency: eu, credential: {env: P_KEY}}]
models: [{id: m, provider: p, context_window: 8000}]
`))
	if err != nil {
		t.Fatal(err)
	}
	return stateFor(t, c, func(string) string { return key })
}

// A provider whose key is not configured gets nothing: its 502 is a setup
// error, not a failed attempt on the provider (found by a helper: the
// dashboard showed an outage).
func TestMetricsCredentialMissing(t *testing.T) {
	st := oneProvider(t, "")
	st.Metrics = telemetry.New()
	p := &edge{filter: filter{state: st, log: zap.NewNop(), id: NewDecisionID()}, ctx: context.Background()}
	p.handle(headersMsg("POST", "/v1/chat/completions", false))
	ir := p.handle(bodyMsg(`{"model":"m","messages":[{"role":"user","content":"hi"}]}`)).GetImmediateResponse()
	p.finish()
	if ir == nil || ir.GetStatus().GetCode() != 502 {
		t.Fatalf("%v", ir)
	}
	if got := sample(t, st.Metrics.Gatherer(), "stellwerk_provider_attempts_total", "model=m,outcome=failed,provider=p"); got != -1 {
		t.Errorf("a request never sent counted as a failed attempt: %v", got)
	}
}

// sample is a counter's value or a histogram's count; -1 when the series
// does not exist.
func sample(t *testing.T, g prometheus.Gatherer, name, want string) float64 {
	t.Helper()
	mfs, err := g.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		for _, m := range mf.GetMetric() {
			if labels(m) != want {
				continue
			}
			switch {
			case m.Counter != nil:
				return m.GetCounter().GetValue()
			case m.Histogram != nil:
				return float64(m.GetHistogram().GetSampleCount())
			case m.Gauge != nil:
				return m.GetGauge().GetValue()
			}
		}
	}
	return -1
}

func labels(m *dto.Metric) string {
	parts := make([]string, len(m.GetLabel()))
	for i, l := range m.GetLabel() {
		parts[i] = l.GetName() + "=" + l.GetValue()
	}
	return strings.Join(parts, ",")
}

// An attempt stellwerk did not send (its provider's key is not configured)
// is not_sent, not failed: a setup error, not an outage (found by a helper:
// the dashboard showed one).
func TestAttemptNotSent(t *testing.T) {
	st := oneProvider(t, "")
	seen := &attemptLog{}
	seen.open("d1", 1)
	g := &egress{filter: filter{state: st, log: zap.NewNop(), id: "id", seen: seen}, provider: "p"}
	plan := encodePlan("d1", st.Router.Catalog.Models()[:1])
	g.handle(headersMsg("POST", "/v1/chat/completions", false, header.Plan, plan))
	ir := g.handle(bodyMsg(`{"model":"m","messages":[{"role":"user","content":"hi"}]}`)).GetImmediateResponse()
	if ir == nil || ir.GetStatus().GetCode() != 502 {
		t.Fatalf("%v", ir)
	}
	if as := seen.take("d1"); len(as) != 1 || as[0].Outcome != "not_sent" || as[0].Reason != "provider_credential_missing" {
		t.Errorf("attempts %+v", as)
	}
}

// A budget's warning is logged once per period by this process, whatever
// config reloads come between (each reload makes a new State; found by a
// helper: the line came again after a reload).
func TestBudgetWarningLoggedOncePerPeriod(t *testing.T) {
	c, err := config.Decode(strings.NewReader(`
routing: {default_model: m}
providers: [{name: p, base_url: "https://p.example.com/v1", residency: eu}]
models: [{id: m, provider: p, context_window: 8000, price: {input_per_mtok: 1000, output_per_mtok: 1000}}]
`))
	if err != nil {
		t.Fatal(err)
	}
	b, _ := ledger.NewMemory(context.Background(), ledger.MemoryOptions{})
	lim, err := ledger.NewLimits(nil, []ledger.BudgetRule{{Name: "day", Scope: ledger.ScopeWorkspace, Limit: ledger.FromEUR(100),
		Period: ledger.PeriodDay, WarnAt: 0.000001}}, nil)
	if err != nil {
		t.Fatal(err)
	}
	led := ledger.New(b, lim, ledger.Options{})
	defer led.Close(context.Background())
	core, logs := observer.New(zapcore.WarnLevel)
	told := &toldOnce{}
	for range 3 {
		st := stateFor(t, c, func(string) string { return "" }) // a new State, as a reload makes
		st.Ledger, st.Limited = led, true
		p := &edge{filter: filter{state: st, log: zap.New(core), id: NewDecisionID(), told: told}, ctx: context.Background()}
		p.handle(headersMsg("POST", "/v1/chat/completions", false))
		p.handle(bodyMsg(`{"model":"m","max_tokens":10,"messages":[{"role":"user","content":"hi"}]}`))
		p.handle(respHeadersMsg("200", "application/json"))
		p.handle(respBodyMsg(`{"choices":[],"usage":{"prompt_tokens":10,"completion_tokens":10}}`, true))
		p.finish()
	}
	if n := logs.FilterMessage("budget_warning").Len(); n != 1 {
		t.Errorf("budget_warning logged %d times over three requests and two reloads, want once", n)
	}
}
