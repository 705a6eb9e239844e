package telemetry

import (
	"encoding/json"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"gopkg.in/yaml.v3"

	"github.com/stellwerk/stellwerk/internal/audit"
	"github.com/stellwerk/stellwerk/internal/flow"
	"github.com/stellwerk/stellwerk/internal/health"
	"github.com/stellwerk/stellwerk/internal/spend"
)

// fullRegistry is every series stellwerk exports, each with a sample:
// what serve registers, with fixed figures, and one request of each kind.
func fullRegistry(t *testing.T) *Metrics {
	t.Helper()
	m := New()
	now := time.Now()
	cs := append(Versions(func() string { return "p1" }, func() (string, string, string) { return "c1", "k1", "q1" }, func() bool { return false }),
		Audit(func() audit.Stats { return audit.Stats{Queued: 1, OldestAge: time.Second, Written: 3} }),
		Spend(func() spend.Stats { return spend.Stats{Written: 2} }),
		Providers(func() []health.Status {
			return []health.Status{{Provider: "openai", ConsecutiveFailures: 2, CoolingUntil: now.Add(time.Minute)}}
		}, func() time.Time { return now }),
		PolicyRefused(func() bool { return false }), PolicyUserModules(func() int { return 2 }), EnvoyRejected(func() bool { return false }), EnvoyStreams(func() int64 { return 1 }),
		PolicyErrors(func() uint64 { return 0 }), PolicyMemo(func() (uint64, uint64) { return 1, 1 }), ClassifyMemo(func() (uint64, uint64) { return 1, 1 }))
	cs = append(cs, BudgetStore(func() (bool, uint64) { return true, 0 })...)
	cs = append(cs, Fleet(func() (int, int) { return 2, 0 })...)
	cs = append(cs, Routes(func() []flow.CounterRow { return nil }, func() map[string]int64 { return map[string]int64{"support": 2} },
		func() map[string]int64 { return map[string]int64{"support": 2} }))
	if err := m.Register(cs...); err != nil {
		t.Fatal(err)
	}
	r := Request{Workspace: "w", RequestModel: "auto", Model: "m", Provider: "p", Status: 200, Answered: true, Metered: true,
		InputTokens: 1, OutputTokens: 1, CostEUR: 0.1, BaselineEUR: 0.2, Duration: time.Second, TTFT: time.Millisecond,
		Overhead: Overhead{Authenticate: 1, Decide: 1, Reserve: 1, Total: 3}}
	m.Finish(&r)
	m.Attempt("p", "m", "failed")
	m.Denied("secrets: x")
	m.Excluded(map[string]string{"m": "residency: x"})
	m.Found("pii", "email", 1)
	m.InjectionScore(0.5)
	m.BudgetRatio("b", "workspace", "w", 0.5)
	m.Rejected("w", "budget", "workspace")
	return m
}

// TestDashboardQueriesExist: the Grafana dashboard the compose stack
// provisions is valid JSON, and every metric its queries read is one
// stellwerk exports, under that name; a renamed metric fails here, not as
// an empty panel.
func TestDashboardQueriesExist(t *testing.T) {
	b, err := os.ReadFile(filepath.Join("..", "..", "compose", "grafana", "dashboards", "stellwerk.json"))
	if err != nil {
		t.Fatal(err)
	}
	var d struct {
		UID    string `json:"uid"`
		Panels []struct {
			ID      int    `json:"id"`
			Type    string `json:"type"`
			Title   string `json:"title"`
			Targets []struct {
				Expr string `json:"expr"`
			} `json:"targets"`
		} `json:"panels"`
	}
	if err := json.Unmarshal(b, &d); err != nil {
		t.Fatalf("not JSON: %v", err)
	}
	families, labels := exported(t)
	ids, queried := map[int]bool{}, map[string]bool{}
	for _, p := range d.Panels {
		if ids[p.ID] {
			t.Errorf("panel id %d twice", p.ID)
		}
		ids[p.ID] = true
		if p.Type != "row" && len(p.Targets) == 0 {
			t.Errorf("panel %q has no query", p.Title)
		}
		for _, tg := range p.Targets {
			for _, name := range exportedIn(tg.Expr, families, labels) {
				if !families[name] {
					t.Errorf("panel %q queries %s, which stellwerk does not export", p.Title, name)
				}
				queried[name] = true
			}
		}
	}
	for _, must := range []string{"gen_ai_client_token_usage", "gen_ai_server_request_duration_seconds", "gen_ai_server_time_to_first_token_seconds",
		"stellwerk_requests_total", "stellwerk_cost_eur_total", "stellwerk_router_overhead_seconds", "stellwerk_budget_used_ratio"} {
		if !queried[must] {
			t.Errorf("the dashboard shows no %s", must)
		}
	}
	if d.UID == "" || len(queried) < 15 {
		t.Errorf("uid %q, %d metrics queried", d.UID, len(queried))
	}
}

// exported is the names of the metric families stellwerk exports and of
// their labels (with le).
func exported(t *testing.T) (families, labels map[string]bool) {
	t.Helper()
	mfs, err := fullRegistry(t).Gatherer().Gather()
	if err != nil {
		t.Fatal(err)
	}
	families, labels = map[string]bool{}, map[string]bool{"le": true}
	for _, mf := range mfs {
		families[mf.GetName()] = true
		for _, mt := range mf.GetMetric() {
			for _, l := range mt.GetLabel() {
				labels[l.GetName()] = true
			}
		}
	}
	return families, labels
}

// exportedIn lists the stellwerk metric names an expression reads (a
// histogram's _bucket, _sum and _count read as its family), leaving out
// label names and what is not stellwerk's (Envoy's, functions).
func exportedIn(expr string, families, labels map[string]bool) []string {
	var out []string
	for _, name := range regexp.MustCompile(`[a-zA-Z_:][a-zA-Z0-9_:]*`).FindAllString(expr, -1) {
		if labels[name] || !(strings.HasPrefix(name, "stellwerk_") || strings.HasPrefix(name, "gen_ai_") ||
			strings.HasPrefix(name, "go_") || strings.HasPrefix(name, "process_")) {
			continue
		}
		for _, suffix := range []string{"_bucket", "_sum", "_count"} {
			if b, ok := strings.CutSuffix(name, suffix); ok && families[b] {
				name = b
			}
		}
		out = append(out, name)
	}
	return out
}

// TestAlertRulesQueryExports: the alert rules the compose stack's
// Prometheus loads read metrics stellwerk exports, under those names, and
// each alert says what it is (the dashboards probe: no rules shipped
// although the dashboard said to alert).
func TestAlertRulesQueryExports(t *testing.T) {
	b, err := os.ReadFile(filepath.Join("..", "..", "compose", "prometheus", "rules.yml"))
	if err != nil {
		t.Fatal(err)
	}
	var f struct {
		Groups []struct {
			Rules []struct {
				Alert       string            `yaml:"alert"`
				Expr        string            `yaml:"expr"`
				Labels      map[string]string `yaml:"labels"`
				Annotations map[string]string `yaml:"annotations"`
			} `yaml:"rules"`
		} `yaml:"groups"`
	}
	if err := yaml.Unmarshal(b, &f); err != nil {
		t.Fatal(err)
	}
	families, labels := exported(t)
	n := 0
	for _, g := range f.Groups {
		for _, r := range g.Rules {
			n++
			if r.Alert == "" || r.Labels["severity"] == "" || r.Annotations["summary"] == "" {
				t.Errorf("rule %q: an alert needs a name, a severity and a summary", r.Alert)
			}
			for _, name := range exportedIn(r.Expr, families, labels) {
				if !families[name] {
					t.Errorf("alert %s reads %s, which stellwerk does not export", r.Alert, name)
				}
			}
		}
	}
	if n < 10 {
		t.Errorf("%d rules", n)
	}
	p, err := os.ReadFile(filepath.Join("..", "..", "compose", "prometheus", "prometheus.yml"))
	if err != nil || !strings.Contains(string(p), "/etc/prometheus/rules.yml") || !strings.Contains(string(p), "/stats/prometheus") {
		t.Errorf("prometheus.yml loads no rules or scrapes no Envoy (%v)", err)
	}
}

// TestScrapeFigures: what a scrape reads of the writers and the health
// tracker comes out as the figures they keep, in the units the names say.
func TestScrapeFigures(t *testing.T) {
	now := time.Now()
	cs := []prometheus.Collector{
		Audit(func() audit.Stats {
			// The store down, the spool keeping the records.
			return audit.Stats{Queued: 4, Pending: 2, Spooled: 3, OldestAge: 1500 * time.Millisecond, Written: 10, Dropped: 1, Healthy: true, StoreDown: true}
		}),
		Providers(func() []health.Status {
			return []health.Status{{Provider: "a", ConsecutiveFailures: 3, CoolingUntil: now.Add(30 * time.Second)}, {Provider: "b", ConsecutiveFailures: 1}}
		}, func() time.Time { return now }),
		PolicyMemo(func() (uint64, uint64) { return 695, 33 }),
	}
	want := `
# HELP stellwerk_audit_healthy 1 while the audit log keeps records: its store takes them, or, while the store is down, its spool file does.
# TYPE stellwerk_audit_healthy gauge
stellwerk_audit_healthy 1
# HELP stellwerk_audit_store_up 1 while the audit log's store (SQLite or PostgreSQL) takes records; 0 while they wait in the spool or the buffer.
# TYPE stellwerk_audit_store_up gauge
stellwerk_audit_store_up 0
# HELP stellwerk_audit_lag_seconds How long the oldest audit record the writer holds has waited (0 when it holds none).
# TYPE stellwerk_audit_lag_seconds gauge
stellwerk_audit_lag_seconds 1.5
# HELP stellwerk_audit_queue_depth Audit records waiting to be written: in the buffer (queued), sealed but not committed (pending), in the spool file (spooled).
# TYPE stellwerk_audit_queue_depth gauge
stellwerk_audit_queue_depth{state="pending"} 2
stellwerk_audit_queue_depth{state="queued"} 4
stellwerk_audit_queue_depth{state="spooled"} 3
# HELP stellwerk_audit_records_total Audit records by what became of them: written, dropped (buffer full), failed.
# TYPE stellwerk_audit_records_total counter
stellwerk_audit_records_total{result="dropped"} 1
stellwerk_audit_records_total{result="failed"} 0
stellwerk_audit_records_total{result="written"} 10
# HELP stellwerk_provider_consecutive_failures A provider's run of failed attempts on this replica (5xx, connection failures, timeouts, a 200 that is no answer); an answer ends it, a client's 4xx neither counts nor ends it.
# TYPE stellwerk_provider_consecutive_failures gauge
stellwerk_provider_consecutive_failures{provider="a"} 3
stellwerk_provider_consecutive_failures{provider="b"} 1
# HELP stellwerk_provider_cooldown_seconds Time left in a provider's cooldown on this replica (selection skips it meanwhile).
# TYPE stellwerk_provider_cooldown_seconds gauge
stellwerk_provider_cooldown_seconds{provider="a"} 30
# HELP stellwerk_policy_memo_hits_total Requests the policy in force decided from its memo: the same values at every input path its modules read as a request decided before. Counts from the policy's load.
# TYPE stellwerk_policy_memo_hits_total counter
stellwerk_policy_memo_hits_total 695
# HELP stellwerk_policy_memo_misses_total Requests the policy in force had to evaluate: new values at a path its modules read. Counts from the policy's load; both stay 0 for a policy the memo cannot serve.
# TYPE stellwerk_policy_memo_misses_total counter
stellwerk_policy_memo_misses_total 33
`
	reg := prometheus.NewPedanticRegistry()
	reg.MustRegister(cs...)
	if err := testutil.GatherAndCompare(reg, strings.NewReader(want), "stellwerk_audit_healthy", "stellwerk_audit_store_up", "stellwerk_audit_lag_seconds", "stellwerk_audit_queue_depth",
		"stellwerk_audit_records_total", "stellwerk_provider_consecutive_failures", "stellwerk_provider_cooldown_seconds",
		"stellwerk_policy_memo_hits_total", "stellwerk_policy_memo_misses_total"); err != nil {
		t.Error(err)
	}
}

// TestConfigInfo: the versions in force come out as labels of one series,
// the quality predictor's among them, and an empty label without one.
func TestConfigInfo(t *testing.T) {
	for _, c := range []struct{ predictor, labels string }{
		{"sha256:5b8c", `catalog="sha256:k1",config="sha256:c1",predictor="sha256:5b8c"`},
		{"", `catalog="sha256:k1",config="sha256:c1",predictor=""`},
	} {
		reg := prometheus.NewPedanticRegistry()
		reg.MustRegister(Versions(func() string { return "p1" }, func() (string, string, string) { return "sha256:c1", "sha256:k1", c.predictor },
			func() bool { return false })...)
		want := `
# HELP stellwerk_config_info The config, catalog and quality predictor in force, by content hash.
# TYPE stellwerk_config_info gauge
stellwerk_config_info{` + c.labels + `} 1
`
		if err := testutil.GatherAndCompare(reg, strings.NewReader(want), "stellwerk_config_info"); err != nil {
			t.Errorf("predictor %q: %v", c.predictor, err)
		}
	}
}
