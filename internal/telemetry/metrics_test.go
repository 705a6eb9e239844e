package telemetry

import (
	"fmt"
	"runtime"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/prometheus/client_golang/prometheus/testutil"
	dto "github.com/prometheus/client_model/go"

	"github.com/stellwerk/stellwerk/internal/version"
)

// listSeries lists every series of the registry but the Go runtime's and the
// process's, as name{label=value,…}, sorted; histograms once, by name.
func listSeries(t *testing.T, m *Metrics) []string {
	t.Helper()
	mfs, err := m.Gatherer().Gather()
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, mf := range mfs {
		if strings.HasPrefix(mf.GetName(), "go_") || strings.HasPrefix(mf.GetName(), "process_") {
			continue
		}
		for _, mt := range mf.GetMetric() {
			out = append(out, mf.GetName()+labelString(mt.GetLabel()))
		}
	}
	sort.Strings(out)
	return out
}

func labelString(ls []*dto.LabelPair) string {
	parts := make([]string, len(ls))
	for i, l := range ls {
		parts[i] = l.GetName() + "=" + l.GetValue()
	}
	return "{" + strings.Join(parts, ",") + "}"
}

func TestSeriesAfterRequests(t *testing.T) {
	m := New()
	served := Request{Workspace: "support", RequestModel: "auto", Model: "gpt-mini", Provider: "openai", Status: 200,
		Answered: true, Metered: true, InputTokens: 120, OutputTokens: 30, CostEUR: 0.002, BaselineEUR: 0.01,
		Duration: 300 * time.Millisecond, TTFT: 80 * time.Millisecond}
	served.Overhead = Overhead{Authenticate: 10 * time.Microsecond, Decide: 200 * time.Microsecond, Total: 250 * time.Microsecond,
		Parse: 20 * time.Microsecond, Classify: 100 * time.Microsecond, Policy: 60 * time.Microsecond, Select: 20 * time.Microsecond}
	for range 3 {
		m.Finish(&served)
	}
	m.Finish(&Request{Workspace: "support", RequestModel: "auto", Status: 403, ErrorCode: "policy_denied"})
	m.Finish(&Request{Status: 401, ErrorCode: "invalid_api_key"})
	m.Attempt("mistral", "mistral-small", "failed")
	m.Attempt("openai", "gpt-mini", "served")
	m.Denied("secrets: the prompt contains credentials (aws_access_key); remove them and retry")
	m.Denied("prompt injection suspected (score 0.93)")
	m.Excluded(map[string]string{"gpt-4o": "residency: restricted data requires eu, model is us",
		"gpt-mini": "residency: restricted data requires eu, model is us"})
	m.Found("pii", "email", 2)
	m.InjectionScore(0.1)
	m.BudgetRatio("support-day", "workspace", "support", 0.42)
	m.Rejected("support", "budget", "workspace")

	want := []string{
		`gen_ai_client_token_usage{gen_ai_operation_name=chat,gen_ai_provider_name=openai,gen_ai_request_model=auto,gen_ai_response_model=gpt-mini,gen_ai_token_type=input}`,
		`gen_ai_client_token_usage{gen_ai_operation_name=chat,gen_ai_provider_name=openai,gen_ai_request_model=auto,gen_ai_response_model=gpt-mini,gen_ai_token_type=output}`,
		`gen_ai_server_request_duration_seconds{gen_ai_operation_name=chat,gen_ai_provider_name=openai,gen_ai_request_model=auto,gen_ai_response_model=gpt-mini}`,
		`gen_ai_server_time_to_first_token_seconds{gen_ai_operation_name=chat,gen_ai_provider_name=openai,gen_ai_request_model=auto,gen_ai_response_model=gpt-mini}`,
		`stellwerk_baseline_cost_eur_total{model=gpt-mini,provider=openai,workspace=support}`,
		`stellwerk_budget_used_ratio{budget=support-day,scope=workspace,subject=support}`,
		`stellwerk_build_info{goversion=` + runtime.Version() + `,version=` + version.String() + `}`,
		`stellwerk_classifier_findings_total{detector=pii,type=email}`,
		`stellwerk_classifier_injection_score{}`,
		`stellwerk_cost_eur_total{model=gpt-mini,provider=openai,workspace=support}`,
		`stellwerk_limit_rejections_total{kind=budget,scope=workspace,workspace=support}`,
		`stellwerk_policy_denials_total{rule=other}`,
		`stellwerk_policy_denials_total{rule=secrets}`,
		`stellwerk_policy_exclusions_total{rule=residency}`,
		`stellwerk_provider_attempts_total{model=gpt-mini,outcome=served,provider=openai}`,
		`stellwerk_provider_attempts_total{model=mistral-small,outcome=failed,provider=mistral}`,
		// From the start, at 0: an alert on their increase needs them.
		`stellwerk_refused_keys_total{state=expired}`, `stellwerk_refused_keys_total{state=revoked}`, `stellwerk_refused_keys_total{state=rotated_out}`,
		`stellwerk_requests_total{error_code=,model=gpt-mini,provider=openai,status_class=2xx,workspace=support}`,
		`stellwerk_requests_total{error_code=invalid_api_key,model=,provider=,status_class=4xx,workspace=}`,
		`stellwerk_requests_total{error_code=policy_denied,model=,provider=,status_class=4xx,workspace=support}`,
		`stellwerk_router_overhead_seconds{stage=authenticate}`,
		`stellwerk_router_overhead_seconds{stage=classify}`,
		`stellwerk_router_overhead_seconds{stage=decide}`,
		`stellwerk_router_overhead_seconds{stage=parse}`,
		`stellwerk_router_overhead_seconds{stage=policy}`,
		`stellwerk_router_overhead_seconds{stage=reserve}`,
		`stellwerk_router_overhead_seconds{stage=select}`,
		`stellwerk_router_overhead_seconds{stage=total}`,
	}
	if diff := cmp.Diff(want, listSeries(t, m)); diff != "" {
		t.Fatalf("series (-want +got):\n%s", diff)
	}

	got := testutil.ToFloat64(m.requests.WithLabelValues("support", "gpt-mini", "openai", "2xx", ""))
	if got != 3 {
		t.Fatalf("served requests: %v", got)
	}
	if c := testutil.ToFloat64(m.cost.WithLabelValues("support", "gpt-mini", "openai")); c < 0.00599 || c > 0.00601 {
		t.Fatalf("cost: %v", c)
	}
	h := histogram(t, m, "gen_ai_client_token_usage", "gen_ai_token_type", "input")
	if h.GetSampleCount() != 3 || h.GetSampleSum() != 360 {
		t.Fatalf("input tokens: count %d sum %v", h.GetSampleCount(), h.GetSampleSum())
	}
	if h := histogram(t, m, "stellwerk_router_overhead_seconds", "stage", "classify"); h.GetSampleCount() != 3 || h.GetSampleSum() < 0.000299 || h.GetSampleSum() > 0.000301 {
		t.Fatalf("classify stage: count %d sum %v", h.GetSampleCount(), h.GetSampleSum())
	}
	if h := histogram(t, m, "stellwerk_router_overhead_seconds", "stage", "reserve"); h.GetSampleCount() != 0 {
		t.Fatalf("a stage that did not run is not observed: %d", h.GetSampleCount())
	}
}

func TestRule(t *testing.T) {
	for reason, want := range map[string]string{
		"residency: restricted data requires eu, model is us":                              "residency",
		"request policy: not in its allow list":                                            "request policy",
		"injection: prompt injection suspected (score 0.93)":                               "injection",
		"risk: request policy max_risk is low but the request is classified high (rule r)": "risk",
		"Ops: Latency":                     "other",
		"":                                 "other",
		strings.Repeat("a", 40) + ": long": "other",
	} {
		if got := Rule(reason); got != want {
			t.Errorf("Rule(%q) = %q, want %q", reason, got, want)
		}
	}
}

// A policy with more reason prefixes than maxRules cannot grow the series
// without bound: the rest count as other.
func TestRulesBounded(t *testing.T) {
	m := New()
	for i := range 3 * maxRules {
		m.Excluded(map[string]string{"m": "rule" + strconv.Itoa(i) + ": reason"})
	}
	n := testutil.CollectAndCount(m.exclusions)
	if n != maxRules+1 {
		t.Fatalf("exclusion series: %d, want %d", n, maxRules+1)
	}
}

func histogram(t *testing.T, m *Metrics, name, label, value string) *dto.Histogram {
	t.Helper()
	mfs, err := m.Gatherer().Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		for _, mt := range mf.GetMetric() {
			for _, l := range mt.GetLabel() {
				if l.GetName() == label && l.GetValue() == value {
					return mt.GetHistogram()
				}
			}
		}
	}
	t.Fatalf("no %s{%s=%s}", name, label, value)
	return nil
}

// BenchmarkFinish is what recording a finished request costs the edge, for
// a label combination already seen (every request after the first few).
func BenchmarkFinish(b *testing.B) {
	m := New()
	r := Request{Workspace: "support", RequestModel: "auto", Model: "gpt-mini", Provider: "openai", Status: 200,
		Answered: true, Metered: true, InputTokens: 120, OutputTokens: 30, CostEUR: 0.002, BaselineEUR: 0.01,
		Duration: 300 * time.Millisecond, TTFT: 80 * time.Millisecond}
	r.Overhead = Overhead{Authenticate: 10 * time.Microsecond, Decide: 200 * time.Microsecond, Total: 250 * time.Microsecond}
	m.Finish(&r)
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		m.Finish(&r)
		m.Attempt("openai", "gpt-mini", "served")
	}
}

// TestFinishConcurrent: requests finishing at once on new and known label
// combinations are each counted once (the copy-on-write map loses none).
func TestFinishConcurrent(t *testing.T) {
	m := New()
	models := []string{"a", "b", "c", "d"}
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 500 {
				r := Request{Workspace: "w", RequestModel: "auto", Model: models[(g+i)%len(models)], Provider: "p", Status: 200}
				m.Finish(&r)
			}
		}()
	}
	wg.Wait()
	total := 0.0
	for _, model := range models {
		total += testutil.ToFloat64(m.requests.WithLabelValues("w", model, "p", "2xx", ""))
	}
	if total != 8*500 {
		t.Fatalf("%v requests counted, want %d", total, 8*500)
	}
}

// TestKeepBudgets: a reload that removes a budget removes its gauge (its
// last ratio kept an alert firing); the others stay.
func TestKeepBudgets(t *testing.T) {
	m := New()
	m.BudgetRatio("gone", "team", "fin/a", 1.008)
	m.BudgetRatio("kept", "workspace", "fin", 0.4)
	m.KeepBudgets(map[string]bool{"kept": true})
	mfs, err := m.Gatherer().Gather()
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, mf := range mfs {
		if mf.GetName() == "stellwerk_budget_used_ratio" {
			for _, s := range mf.Metric {
				for _, l := range s.Label {
					if l.GetName() == "budget" {
						names = append(names, l.GetValue())
					}
				}
			}
		}
	}
	if len(names) != 1 || names[0] != "kept" {
		t.Errorf("budget gauges after the reload: %v", names)
	}
	m.BudgetRatio("gone", "team", "fin/a", 0.1) // back in a later config
	if mfs, _ := m.Gatherer().Gather(); len(mfs) == 0 {
		t.Error("nothing gathered")
	}
}

// TestEmbeddingsWriteNoOutputTokens: an embedding's 0 output tokens is not
// an observation (it skewed the output distribution toward 0: the
// observability probe); its input tokens are.
func TestEmbeddingsWriteNoOutputTokens(t *testing.T) {
	m := New()
	m.Finish(&Request{Workspace: "w", Operation: "embeddings", RequestModel: "emb", Model: "emb", Provider: "openai", Status: 200,
		Answered: true, Metered: true, InputTokens: 12, CostEUR: 0.000001})
	mfs, err := m.Gatherer().Gather()
	if err != nil {
		t.Fatal(err)
	}
	counts := map[string]uint64{}
	for _, mf := range mfs {
		if mf.GetName() != "gen_ai_client_token_usage" {
			continue
		}
		for _, s := range mf.GetMetric() {
			for _, l := range s.GetLabel() {
				if l.GetName() == "gen_ai_token_type" {
					counts[l.GetValue()] += s.GetHistogram().GetSampleCount()
				}
			}
		}
	}
	if counts["input"] != 1 || counts["output"] != 0 {
		t.Errorf("token observations %v, want one input, no output", counts)
	}
}

// TestPrecreatedRejections: the limit-rejection series a config can
// produce exist at 0 before the first refusal, so the first one counts in
// rate() and increase() (the dashboards probe: a workspace's first budget
// refusal was invisible to an alert on increase), and a refusal adds to
// the same series.
func TestPrecreatedRejections(t *testing.T) {
	m := New()
	m.PrecreateRejections([]string{"legal", "default"}, [][2]string{{"budget", "workspace"}, {"requests", "key"}})
	want := `
# HELP stellwerk_limit_rejections_total Requests refused with 429 by a budget or rate limit, by kind (budget, requests, tokens) and the limit's scope.
# TYPE stellwerk_limit_rejections_total counter
stellwerk_limit_rejections_total{kind="budget",scope="workspace",workspace="default"} 0
stellwerk_limit_rejections_total{kind="budget",scope="workspace",workspace="legal"} 1
stellwerk_limit_rejections_total{kind="requests",scope="key",workspace="default"} 0
stellwerk_limit_rejections_total{kind="requests",scope="key",workspace="legal"} 0
`
	m.Rejected("legal", "budget", "workspace")
	if err := testutil.GatherAndCompare(m.Gatherer(), strings.NewReader(want), "stellwerk_limit_rejections_total"); err != nil {
		t.Error(err)
	}
}

// BenchmarkPrecreateRejections is a start's series for a thousand
// workspaces, 8 kind and scope pairs each (the tenancy probe: 5.7 s when
// each series copied the cache).
func BenchmarkPrecreateRejections(b *testing.B) {
	ws := make([]string, 1000)
	for i := range ws {
		ws[i] = fmt.Sprintf("ws%04d", i)
	}
	pairs := [][2]string{{"budget", "key"}, {"budget", "team"}, {"budget", "workspace"}, {"budget", "global"},
		{"requests", "key"}, {"tokens", "key"}, {"requests", "workspace"}, {"tokens", "workspace"}}
	for b.Loop() {
		New().PrecreateRejections(ws, pairs)
	}
}
