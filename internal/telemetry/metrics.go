// Package telemetry is stellwerk's Prometheus metrics and its optional
// OpenTelemetry traces (trace.go). The metrics live on one registry the
// process owns (never client_golang's global one, so a library cannot add
// series behind stellwerk's back), served on the admin port as GET /metrics
// (docs/observability.md). Names follow the OpenTelemetry GenAI semantic
// conventions where they have one (gen_ai_*), as an OTel collector would
// export them to Prometheus; the rest are stellwerk_*.
//
// Every label value is bounded by the config or by a fixed set of codes:
// workspaces, catalog model ids, provider names, status classes, error
// codes, scopes. No key, user or free text is a label.
// A request is recorded once, when its stream ends, through label children
// resolved the first time a combination is seen: the hot path makes no map
// lookup in client_golang and allocates nothing.
package telemetry

import (
	"net/http"
	"runtime"
	"strings"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/stellwerk/stellwerk/internal/version"
)

// Buckets: the OTel GenAI conventions' advice for each metric (tokens up
// to 4M, beyond any context window offered today), durations with two
// more doublings: the advice ends at 81.92 s, and a request may run for
// envoy.request_timeout (5 min by default), so a long generation's
// quantiles stopped at 81.92 (the observability probe).
var (
	tokenBuckets    = []float64{1, 4, 16, 64, 256, 1024, 4096, 16384, 65536, 262144, 1048576, 4194304}
	durationBuckets = []float64{0.01, 0.02, 0.04, 0.08, 0.16, 0.32, 0.64, 1.28, 2.56, 5.12, 10.24, 20.48, 40.96, 81.92, 163.84, 327.68}
	ttftBuckets     = []float64{0.001, 0.005, 0.01, 0.02, 0.04, 0.06, 0.08, 0.1, 0.25, 0.5, 0.75, 1, 2.5, 5, 7.5, 10}
	// overheadBuckets: the router's own time, from microseconds (a cached
	// decision) to the tens of milliseconds a remote budget store can take,
	// and on to the second past which a policy evaluation is an error (the
	// dashboards probe: it ended at 0.1 s, so a slow policy read as +Inf).
	overheadBuckets = []float64{0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1}
)

// Metrics is safe for concurrent use. A nil *Metrics records nothing.
type Metrics struct {
	reg *prometheus.Registry

	tokens     *prometheus.HistogramVec
	duration   *prometheus.HistogramVec
	ttft       *prometheus.HistogramVec
	requests   *prometheus.CounterVec
	cost       *prometheus.CounterVec
	baseline   *prometheus.CounterVec
	overhead   [len(stageNames)]prometheus.Observer
	attempts   *prometheus.CounterVec
	denials    *prometheus.CounterVec
	exclusions *prometheus.CounterVec
	findings   *prometheus.CounterVec
	injection  prometheus.Observer
	budget     *prometheus.GaugeVec
	rejections *prometheus.CounterVec
	// refusedKeys counts requests with a store key refused for its state,
	// one counter per state (RefusedKeyStates).
	refusedKeys [len(RefusedKeyStates)]prometheus.Counter

	series     cache[seriesKey, *series]
	attemptC   cache[attemptKey, prometheus.Counter]
	denialC    cache[string, prometheus.Counter]
	exclusionC cache[string, prometheus.Counter]
	findingC   cache[findingKey, prometheus.Counter]
	budgetC    cache[budgetKey, prometheus.Gauge]
	rejectionC cache[rejectionKey, prometheus.Counter]
}

var stageNames = [...]string{"authenticate", "decide", "reserve", "total", "parse", "classify", "policy", "select"}

// New returns the metrics on a registry of their own, with Go runtime and
// process figures beside them.
func New() *Metrics {
	reg := prometheus.NewRegistry()
	m := &Metrics{reg: reg}
	genai := []string{"gen_ai_operation_name", "gen_ai_provider_name", "gen_ai_request_model", "gen_ai_response_model"}
	m.tokens = prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name:    "gen_ai_client_token_usage",
		Help:    "Tokens used per request (OTel gen_ai.client.token.usage): input (prompt) and output (completion), as the provider reported them or stellwerk estimated.",
		Buckets: tokenBuckets,
	}, append(genai, "gen_ai_token_type"))
	m.duration = prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name:    "gen_ai_server_request_duration_seconds",
		Help:    "Time from the request's arrival to the end of its answer, for requests a provider answered (OTel gen_ai.server.request.duration).",
		Buckets: durationBuckets,
	}, genai)
	m.ttft = prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name:    "gen_ai_server_time_to_first_token_seconds",
		Help:    "Time from a streamed request's arrival to its answer's first chunk (OTel gen_ai.server.time_to_first_token).",
		Buckets: ttftBuckets,
	}, genai)
	m.requests = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "stellwerk_requests_total",
		Help: "Requests (chat, Responses, Messages, embeddings, completions), and every request stellwerk refused at the edge, by what the client got: status class and stellwerk's error code (\"\" when the provider's answer went through).",
	}, []string{"workspace", "model", "provider", "status_class", "error_code"})
	m.cost = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "stellwerk_cost_eur_total",
		Help: "What requests cost in EUR, as settled against budgets (estimates included).",
	}, []string{"workspace", "model", "provider"})
	m.baseline = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "stellwerk_baseline_cost_eur_total",
		Help: "What the same usage would have cost in EUR on the catalog's baseline model; the saving is this minus stellwerk_cost_eur_total.",
	}, []string{"workspace", "model", "provider"})
	overhead := prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name:    "stellwerk_router_overhead_seconds",
		Help:    "stellwerk's own time on a chat request before it leaves for a provider, by stage (authenticate, decide, reserve; total is all of it).",
		Buckets: overheadBuckets,
	}, []string{"stage"})
	for s, name := range stageNames {
		m.overhead[s] = overhead.WithLabelValues(name)
	}
	m.attempts = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "stellwerk_provider_attempts_total",
		Help: "Attempts on providers, by outcome (served, failed, rejected: a 4xx about the request, not_sent, abandoned: the client went away first); a failed attempt followed by another is failover.",
	}, []string{"provider", "model", "outcome"})
	m.denials = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "stellwerk_policy_denials_total",
		Help: "Deny reasons of the policy, by rule (a reason's text before its first colon; other when it has none).",
	}, []string{"rule"})
	m.exclusions = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "stellwerk_policy_exclusions_total",
		Help: "Requests from which the policy excluded candidate models, by rule (a reason's text before its first colon; other when it has none); a request counts once per rule.",
	}, []string{"rule"})
	m.findings = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "stellwerk_classifier_findings_total",
		Help: "What the on-path classifiers found in chat requests: personal data and secrets by type, and scans a cap cut short by limit.",
	}, []string{"detector", "type"})
	m.injection = prometheus.NewHistogram(prometheus.HistogramOpts{
		Name:    "stellwerk_classifier_injection_score",
		Help:    "The prompt-injection classifier's score per chat request (the policy's threshold decides what is done about it).",
		Buckets: []float64{0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9},
	})
	m.budget = prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Name: "stellwerk_budget_used_ratio",
		Help: "Settled spend over the limit of a budget (not what requests in flight hold), as the last request that met it saw it (global, workspace and team budgets; per-key and per-user budgets are in /admin/budgets).",
	}, []string{"budget", "scope", "subject"})
	m.rejections = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "stellwerk_limit_rejections_total",
		Help: "Requests refused with 429 by a budget or rate limit, by kind (budget, requests, tokens) and the limit's scope.",
	}, []string{"workspace", "kind", "scope"})

	refused := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "stellwerk_refused_keys_total",
		Help: "Requests with a store key refused for its state (revoked; rotated_out: its secret replaced, the grace over; expired), answered 401 like an unknown key: a leaked key still being tried. The log names the key (docs/security.md).",
	}, []string{"state"})
	for i, st := range RefusedKeyStates {
		m.refusedKeys[i] = refused.WithLabelValues(st)
	}
	reg.MustRegister(m.tokens, m.duration, m.ttft, m.requests, m.cost, m.baseline, overhead, m.attempts, refused,
		m.denials, m.exclusions, m.findings, m.injection.(prometheus.Histogram), m.budget, m.rejections,
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
		constInfo("stellwerk_build_info", "The running build: version and Go release.",
			[]string{"version", "goversion"}, []string{version.String(), runtime.Version()}))

	m.series.make = m.newSeries
	m.attemptC.make = func(k attemptKey) (attemptKey, prometheus.Counter) {
		k = attemptKey{strings.Clone(k.provider), strings.Clone(k.model), k.outcome}
		return k, m.attempts.WithLabelValues(k.provider, k.model, k.outcome)
	}
	m.denialC = cache[string, prometheus.Counter]{limit: maxRules, other: "other", make: func(rule string) (string, prometheus.Counter) {
		rule = strings.Clone(rule)
		return rule, m.denials.WithLabelValues(rule)
	}}
	m.exclusionC = cache[string, prometheus.Counter]{limit: maxRules, other: "other", make: func(rule string) (string, prometheus.Counter) {
		rule = strings.Clone(rule)
		return rule, m.exclusions.WithLabelValues(rule)
	}}
	m.findingC = cache[findingKey, prometheus.Counter]{limit: maxRules, other: findingKey{"other", "other"},
		make: func(k findingKey) (findingKey, prometheus.Counter) {
			k = findingKey{strings.Clone(k.detector), strings.Clone(k.typ)}
			return k, m.findings.WithLabelValues(k.detector, k.typ)
		}}
	m.budgetC.make = func(k budgetKey) (budgetKey, prometheus.Gauge) {
		k = budgetKey{strings.Clone(k.name), k.scope, strings.Clone(k.subject)}
		return k, m.budget.WithLabelValues(k.name, k.scope, k.subject)
	}
	m.rejectionC.make = func(k rejectionKey) (rejectionKey, prometheus.Counter) {
		k = rejectionKey{strings.Clone(k.workspace), k.kind, k.scope}
		return k, m.rejections.WithLabelValues(k.workspace, k.kind, k.scope)
	}
	return m
}

// Register adds collectors the server reads at scrape time (audit writer,
// provider cooldowns, versions in force).
func (m *Metrics) Register(cs ...prometheus.Collector) error {
	for _, c := range cs {
		if err := m.reg.Register(c); err != nil {
			return err
		}
	}
	return nil
}

// Handler serves the registry in Prometheus' text or OpenMetrics format.
func (m *Metrics) Handler() http.Handler {
	return promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{Registry: m.reg, EnableOpenMetrics: true})
}

// Gatherer is the registry, for tests and tools that read it directly.
func (m *Metrics) Gatherer() prometheus.Gatherer { return m.reg }
