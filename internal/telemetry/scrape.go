package telemetry

import (
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/stellwerk/stellwerk/internal/audit"
	"github.com/stellwerk/stellwerk/internal/health"
	"github.com/stellwerk/stellwerk/internal/spend"
)

// What is read at scrape time rather than counted per request: the
// figures the writers, the health tracker and the reloader already keep.

// info is a metric of value 1 whose labels say what is in force, read at
// each scrape (nil values: no series).
type info struct {
	desc   *prometheus.Desc
	values func() []string
}

func (i *info) Describe(ch chan<- *prometheus.Desc) { ch <- i.desc }

func (i *info) Collect(ch chan<- prometheus.Metric) {
	if v := i.values(); v != nil {
		ch <- prometheus.MustNewConstMetric(i.desc, prometheus.GaugeValue, 1, v...)
	}
}

// Info is a "what is in force" metric (stellwerk_policy_info{version}),
// its label values read at each scrape.
func Info(name, help string, labels []string, values func() []string) prometheus.Collector {
	return &info{desc: prometheus.NewDesc(name, help, labels, nil), values: values}
}

func constInfo(name, help string, labels, values []string) prometheus.Collector {
	return Info(name, help, labels, func() []string { return values })
}

// funcCollector emits what collect reads, under fixed descriptions.
type funcCollector struct {
	descs   []*prometheus.Desc
	collect func(ch chan<- prometheus.Metric)
}

func (f *funcCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range f.descs {
		ch <- d
	}
}

func (f *funcCollector) Collect(ch chan<- prometheus.Metric) { f.collect(ch) }

// Audit reads the audit log writer's figures: the records waiting, how
// long the oldest has waited (the log's lag behind the traffic), and its
// counters.
func Audit(stats func() audit.Stats) prometheus.Collector {
	queued := prometheus.NewDesc("stellwerk_audit_queue_depth", "Audit records waiting to be written: in the buffer (queued), sealed but not committed (pending), in the spool file (spooled).", []string{"state"}, nil)
	lag := prometheus.NewDesc("stellwerk_audit_lag_seconds", "How long the oldest audit record the writer holds has waited (0 when it holds none).", nil, nil)
	healthy := prometheus.NewDesc("stellwerk_audit_healthy", "1 while the audit log keeps records: its store takes them, or, while the store is down, its spool file does.", nil, nil)
	storeUp := prometheus.NewDesc("stellwerk_audit_store_up", "1 while the audit log's store (SQLite or PostgreSQL) takes records; 0 while they wait in the spool or the buffer.", nil, nil)
	records := prometheus.NewDesc("stellwerk_audit_records_total", "Audit records by what became of them: written, dropped (buffer full), failed.", []string{"result"}, nil)
	return &funcCollector{descs: []*prometheus.Desc{queued, lag, healthy, storeUp, records}, collect: func(ch chan<- prometheus.Metric) {
		s := stats()
		ch <- prometheus.MustNewConstMetric(queued, prometheus.GaugeValue, float64(s.Queued), "queued")
		ch <- prometheus.MustNewConstMetric(queued, prometheus.GaugeValue, float64(s.Pending), "pending")
		ch <- prometheus.MustNewConstMetric(queued, prometheus.GaugeValue, float64(s.Spooled), "spooled")
		ch <- prometheus.MustNewConstMetric(lag, prometheus.GaugeValue, s.OldestAge.Seconds())
		ch <- prometheus.MustNewConstMetric(healthy, prometheus.GaugeValue, b2f(s.Healthy))
		ch <- prometheus.MustNewConstMetric(storeUp, prometheus.GaugeValue, b2f(!s.StoreDown))
		ch <- prometheus.MustNewConstMetric(records, prometheus.CounterValue, float64(s.Written), "written")
		ch <- prometheus.MustNewConstMetric(records, prometheus.CounterValue, float64(s.Dropped), "dropped")
		ch <- prometheus.MustNewConstMetric(records, prometheus.CounterValue, float64(s.Failed), "failed")
	}}
}

// Spend reads the spend ledger writer's figures.
func Spend(stats func() spend.Stats) prometheus.Collector {
	queued := prometheus.NewDesc("stellwerk_spend_queue_depth", "Spend-ledger rows waiting to be written.", nil, nil)
	rows := prometheus.NewDesc("stellwerk_spend_rows_total", "Spend-ledger rows by what became of them: written, dropped (buffer full), lost (not written at shutdown).", []string{"result"}, nil)
	return &funcCollector{descs: []*prometheus.Desc{queued, rows}, collect: func(ch chan<- prometheus.Metric) {
		s := stats()
		ch <- prometheus.MustNewConstMetric(queued, prometheus.GaugeValue, float64(s.Queued))
		ch <- prometheus.MustNewConstMetric(rows, prometheus.CounterValue, float64(s.Written), "written")
		ch <- prometheus.MustNewConstMetric(rows, prometheus.CounterValue, float64(s.Dropped), "dropped")
		ch <- prometheus.MustNewConstMetric(rows, prometheus.CounterValue, float64(s.Lost), "lost")
	}}
}

// Providers reads this replica's provider health: which providers cool
// down, for how much longer, and their runs of failures. Providers with
// neither have no series.
func Providers(snapshot func() []health.Status, now func() time.Time) prometheus.Collector {
	cooling := prometheus.NewDesc("stellwerk_provider_cooldown_seconds", "Time left in a provider's cooldown on this replica (selection skips it meanwhile).", []string{"provider"}, nil)
	failures := prometheus.NewDesc("stellwerk_provider_consecutive_failures", "A provider's run of failed attempts on this replica (5xx, connection failures, timeouts, a 200 that is no answer); an answer ends it, a client's 4xx neither counts nor ends it.", []string{"provider"}, nil)
	return &funcCollector{descs: []*prometheus.Desc{cooling, failures}, collect: func(ch chan<- prometheus.Metric) {
		t := now()
		for _, s := range snapshot() {
			if s.Scope != "" && s.Scope != health.ScopeProvider {
				continue // rate limits of one credential: /status lists them
			}
			ch <- prometheus.MustNewConstMetric(failures, prometheus.GaugeValue, float64(s.ConsecutiveFailures), s.Provider)
			if !s.CoolingUntil.IsZero() {
				ch <- prometheus.MustNewConstMetric(cooling, prometheus.GaugeValue, max(s.CoolingUntil.Sub(t).Seconds(), 0), s.Provider)
			}
		}
	}}
}

// Fleet reads how many replicas a shared budget store shows, this one
// included (0 without one), and how many of them decide by another config
// or policy than this one (docs/deploy.md).
func Fleet(read func() (replicas, differing int)) []prometheus.Collector {
	return []prometheus.Collector{
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "stellwerk_fleet_replicas",
			Help: "Replicas seen in the shared budget store within the last 35 s, this one included (0 without Redis)."},
			func() float64 { n, _ := read(); return float64(n) }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "stellwerk_fleet_replicas_differing",
			Help: "Replicas whose config or policy differs from this one's in what decides requests (prices, budgets, workspaces, policy): deploy one config to all."},
			func() float64 { _, d := read(); return float64(d) }),
	}
}

// Versions reads what is in force: the policy version, the config,
// catalog and quality predictor content hashes ("" without a predictor),
// and whether the last config change was refused.
func Versions(policy func() string, config func() (cfg, catalog, predictor string), refused func() bool) []prometheus.Collector {
	return []prometheus.Collector{
		Info("stellwerk_policy_info", "The Rego policy version in force.", []string{"version"},
			func() []string { return []string{policy()} }),
		Info("stellwerk_config_info", "The config, catalog and quality predictor in force, by content hash.",
			[]string{"config", "catalog", "predictor"},
			func() []string {
				c, cat, p := config()
				return []string{c, cat, p}
			}),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "stellwerk_config_reload_refused",
			Help: "1 while the last config change was refused (the previous config keeps serving; /status says why)."},
			func() float64 { return b2f(refused()) }),
	}
}

// PolicyRefused reads whether the last change to the policy's files was
// refused (policy.Manager.Status): the last good policy keeps deciding,
// and GET /policy says why (the observability probe found no metric
// saying so).
func PolicyRefused(refused func() bool) prometheus.Collector {
	return prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "stellwerk_policy_reload_refused",
		Help: "1 while the last change to the policy's files was refused (the last good policy keeps deciding; GET /policy says why)."},
		func() float64 { return b2f(refused()) })
}

// PolicyUserModules reads how many of policy.dir's modules the policy in
// force has (policy.Manager.UserModules): an emptied policy.dir (an empty
// ConfigMap mount) loads with the library alone, and had only a warning
// in the log to say so (the probe).
func PolicyUserModules(n func() int) prometheus.Collector {
	return prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "stellwerk_policy_user_modules",
		Help: "Modules of policy.dir (tests not counted) in the policy in force; 0 with the shipped library alone."},
		func() float64 { return float64(n()) })
}

// EnvoyRejected reads whether a connected Envoy refused the latest
// configuration pushed to it (xds.Publisher.LastRejection): it then runs
// an older one, and /status says why.
func EnvoyRejected(rejected func() bool) prometheus.Collector {
	return prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "stellwerk_envoy_config_rejected",
		Help: "1 while a connected Envoy has refused the configuration stellwerk pushed it and accepted none since (it runs an older one; /status says why)."},
		func() float64 { return b2f(rejected()) })
}

// EnvoyStreams counts the Envoys connected to stellwerk's xDS server: 0
// while an Envoy that started first waits for its clusters (the SRE probe
// could not alert on it).
func EnvoyStreams(streams func() int64) prometheus.Collector {
	return prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "stellwerk_envoy_streams",
		Help: "Envoys connected to stellwerk's xDS server (open ADS streams); Envoy answers 503 for providers it has no cluster for until it is connected."},
		func() float64 { return float64(streams()) })
}

// BudgetStore reads the budget store's health as requests found it
// (ledger.Ledger.Health): whether it answered the last request that used
// it, and how many were admitted without a check while it did not.
func BudgetStore(health func() (reachable bool, unchecked uint64)) []prometheus.Collector {
	return []prometheus.Collector{
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "stellwerk_budget_store_up",
			Help: "1 while the budget store (memory or Redis) answered the last request that used it."},
			func() float64 { ok, _ := health(); return b2f(ok) }),
		prometheus.NewCounterFunc(prometheus.CounterOpts{Name: "stellwerk_budget_admitted_unchecked_total",
			Help: "Requests admitted without a budget or rate-limit check because the budget store was unreachable (state.redis.on_unavailable: open)."},
			func() float64 { _, n := health(); return float64(n) }),
	}
}

func b2f(b bool) float64 {
	if b {
		return 1
	}
	return 0
}

// PolicyMemo reads the decision memo's counters of the policy in force
// (policy.Engine.MemoStats): requests it answered without an evaluation,
// and those it had to evaluate. They count from the policy's load, so a
// reload starts them again (a counter reset to Prometheus).
func PolicyMemo(stats func() (hits, misses uint64)) prometheus.Collector {
	hits := prometheus.NewDesc("stellwerk_policy_memo_hits_total",
		"Requests the policy in force decided from its memo: the same values at every input path its modules read as a request decided before. Counts from the policy's load.", nil, nil)
	misses := prometheus.NewDesc("stellwerk_policy_memo_misses_total",
		"Requests the policy in force had to evaluate: new values at a path its modules read. Counts from the policy's load; both stay 0 for a policy the memo cannot serve.", nil, nil)
	return counterPair(hits, misses, stats)
}

// PolicyErrors reads how many requests the policy in force failed to
// decide (policy.Engine.Failures), from its load.
func PolicyErrors(failures func() uint64) prometheus.Collector {
	d := prometheus.NewDesc("stellwerk_policy_errors_total",
		"Requests the policy in force failed to decide (500 policy_error: an evaluation error, a decision of the wrong shape, or too slow). Counts from the policy's load.", nil, nil)
	return &funcCollector{descs: []*prometheus.Desc{d}, collect: func(ch chan<- prometheus.Metric) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.CounterValue, float64(failures()))
	}}
}

// ClassifyMemo reads the classifier's memo counters (classify.MemoStats):
// texts of earlier turns and tool definitions looked up instead of
// scanned, and how many were found.
func ClassifyMemo(stats func() (looked, found uint64)) prometheus.Collector {
	looked := prometheus.NewDesc("stellwerk_classify_memo_lookups_total",
		"Texts a request resent (earlier turns, tool definitions, system prompts of 256 bytes or more) that the classifier looked up in its memo of what the same key sent before.", nil, nil)
	found := prometheus.NewDesc("stellwerk_classify_memo_found_total",
		"Looked-up texts the memo held: their findings were reused instead of scanning them again.", nil, nil)
	return counterPair(looked, found, stats)
}

// counterPair is two counters read together at scrape time.
func counterPair(a, b *prometheus.Desc, stats func() (uint64, uint64)) prometheus.Collector {
	return &funcCollector{descs: []*prometheus.Desc{a, b}, collect: func(ch chan<- prometheus.Metric) {
		x, y := stats()
		ch <- prometheus.MustNewConstMetric(a, prometheus.CounterValue, float64(x))
		ch <- prometheus.MustNewConstMetric(b, prometheus.CounterValue, float64(y))
	}}
}
