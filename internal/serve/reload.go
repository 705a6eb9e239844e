package serve

import (
	"bytes"
	"cmp"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"maps"
	"os"
	"os/signal"
	"reflect"
	"slices"
	"strings"
	"sync"
	"syscall"
	"time"

	"go.uber.org/zap"

	"github.com/stellwerk/stellwerk/extproc"
	"github.com/stellwerk/stellwerk/internal/apierr"
	"github.com/stellwerk/stellwerk/internal/audit"
	"github.com/stellwerk/stellwerk/internal/auth"
	"github.com/stellwerk/stellwerk/internal/catalog"
	"github.com/stellwerk/stellwerk/internal/classify"
	"github.com/stellwerk/stellwerk/internal/config"
	"github.com/stellwerk/stellwerk/internal/decision"
	"github.com/stellwerk/stellwerk/internal/flow"
	"github.com/stellwerk/stellwerk/internal/flowstore"
	"github.com/stellwerk/stellwerk/internal/header"
	"github.com/stellwerk/stellwerk/internal/health"
	"github.com/stellwerk/stellwerk/internal/keys"
	"github.com/stellwerk/stellwerk/internal/ledger"
	"github.com/stellwerk/stellwerk/internal/live"
	"github.com/stellwerk/stellwerk/internal/notify"
	"github.com/stellwerk/stellwerk/internal/observe"
	"github.com/stellwerk/stellwerk/internal/policy"
	"github.com/stellwerk/stellwerk/internal/qpredict"
	"github.com/stellwerk/stellwerk/internal/spend"
	"github.com/stellwerk/stellwerk/internal/store"
	"github.com/stellwerk/stellwerk/internal/telemetry"
	"github.com/stellwerk/stellwerk/xds"
)

// generation is everything built from one config: swapped as a whole.
type generation struct {
	cfg    *config.Config
	cat    *catalog.Catalog
	state  *extproc.State
	ir     xds.IR
	limits *ledger.Limits // budgets and rate limits, for the process's ledger
	// versions are the config and catalog as the audit records name them
	// (empty without an audit log).
	versions versionBodies
	// creds fingerprint the provider credentials ir sends, for the health
	// tracker (a changed one ends its refusal's cooldown).
	creds map[health.Credential]string
}

// build compiles a config into a generation. It does no I/O beyond reading
// the files the config names, and changes nothing that is serving.
func build(cfg *config.Config, env catalog.Env, ps decision.PolicySource, ln learned, keySrc auth.Source, wks []xds.WorkspaceKey,
	log *zap.Logger) (*generation, error) {
	cat, err := catalog.New(cfg, env)
	if err != nil {
		return nil, err
	}
	cl, err := classify.New(cfg.Classify)
	if err != nil {
		return nil, err
	}
	keys := auth.New(cfg, env.Getenv).WithSource(keySrc)
	limits, err := ledger.LimitsFromConfig(cfg)
	if err != nil {
		return nil, err
	}
	ir, err := xds.FromConfig(cfg, cat, wks...)
	if err != nil {
		return nil, err
	}
	if _, err := xds.Translate(ir); err != nil {
		return nil, fmt.Errorf("xds: %w", err)
	}
	router := decision.New(cfg, cat, cl, ps, log.Named("route"))
	var predictor []byte
	if router.Predictor, predictor, err = loadPredictor(cfg, env); err != nil {
		return nil, err
	}
	// What was learned from traffic survives reloads.
	router.Latency, router.Health = ln.lat, ln.health // the cooldown policy changes when the state swaps
	if ln.routes != nil {
		router.Routes = ln.routes.table
	}
	st := extproc.NewState(router, keys, cfg.Envoy.MaxRequestBytes)
	st.MessageTimeout, st.UploadLimit = cfg.Envoy.ExtProcTimeout, cfg.Envoy.RequestTimeout
	st.Hosts = cfg.AllowedHosts()
	st.RouteLimiter, st.RouteCounters = ln.routeLimiter, ln.routeCounters
	st.Live = ln.live
	if ir.Failover != nil {
		st.Failover = &extproc.Failover{MaxAttempts: cfg.Failover.MaxAttempts, AttemptTimeout: cfg.Failover.AttemptTimeout}
		if fs := ir.Failover.First; len(fs) > 0 {
			st.Failover.First = make(map[string]string, len(fs))
			for _, fa := range fs {
				st.Failover.First[fa.Provider] = fa.Name
			}
		}
	}
	// In an operator's Envoy, an LLM request must have matched stellwerk's
	// own route (envoy/drop-in.yaml), or it would leave for another backend.
	st.CheckRoute = cfg.Envoy.Mode == config.ModeClusters
	st.SpendTag = cfg.Spend.Tag
	for _, wk := range wks {
		for _, p := range cat.Providers() {
			if p.Name != wk.Provider {
				continue
			}
			if st.WorkspaceClusters == nil {
				st.WorkspaceClusters = map[extproc.WorkspaceProvider]string{}
			}
			if st.WorkspaceKeys == nil {
				st.WorkspaceKeys = map[extproc.WorkspaceProvider]string{}
			}
			wp := extproc.WorkspaceProvider{Workspace: wk.Workspace, Provider: p.Name}
			st.WorkspaceClusters[wp], st.WorkspaceKeys[wp] = header.WorkspaceCluster(p.Cluster, wk.Workspace), wk.Key
		}
	}
	if own := st.WorkspaceClusters; len(own) > 0 {
		router.OwnKey = func(workspace, provider string) bool {
			_, ok := own[extproc.WorkspaceProvider{Workspace: workspace, Provider: provider}]
			return ok
		}
	}
	// Requests skip the ledger when neither the config nor their key has
	// a limit for them to meet.
	st.Notify = ln.hook
	st.Ledger, st.Limited = ln.led, len(limits.Budgets()) > 0 || len(limits.RateLimits()) > 0
	if ln.spend != nil {
		st.Spend = ln.spend
	}
	if ln.audit != nil {
		st.Audit, st.AuditRefuse = ln.audit, ln.auditRefuse
		for _, ws := range cfg.Audit.Content.Workspaces {
			if st.AuditContent == nil {
				st.AuditContent = map[string]bool{}
			}
			st.AuditContent[ws] = true
		}
	}
	st.Metrics, st.Traces = ln.metrics, ln.traces
	st.Feedback = ln.feedback
	ln.metrics.PrecreateRejections(rejectionSeries(cfg))
	vb, err := versionsOf(cfg, cat, predictor) // for the records and stellwerk_config_info
	if err != nil {
		return nil, err
	}
	st.Versions = vb.Versions
	return &generation{cfg: cfg, cat: cat, state: st, ir: ir, limits: limits, versions: vb,
		creds: credentialFingerprints(ir, cat, wks)}, nil
}

// credentialFingerprints fingerprint each provider credential ir sends to
// Envoy: the shared keys, and the workspaces' own. A fingerprint changes
// with the credential and tells nothing of it (the replicas share them
// through Redis).
func credentialFingerprints(ir xds.IR, cat *catalog.Catalog, wks []xds.WorkspaceKey) map[health.Credential]string {
	names := map[string]health.Credential{}
	for _, p := range cat.Providers() {
		names[header.CredentialSecret(p.Name)] = health.Credential{Provider: p.Name}
	}
	for _, wk := range wks {
		names[header.WorkspaceCredentialSecret(wk.Provider, wk.Workspace)] = health.Credential{Provider: wk.Provider, Workspace: wk.Workspace}
	}
	fps := map[health.Credential]string{}
	for _, sec := range ir.Secrets {
		if c, ok := names[sec.Name]; ok {
			sum := sha256.Sum256([]byte("stellwerk credential\x00" + sec.Value))
			fps[c] = hex.EncodeToString(sum[:8])
		}
	}
	return fps
}

// setCredentials tells the health tracker the credentials g sends, and
// logs each whose refusal's cooldown that ended.
func setCredentials(t *health.Tracker, g *generation, log *zap.Logger) {
	for _, c := range t.SetCredentials(g.creds) {
		log.Info("provider credential changed: the cooldown of its refusal is cleared",
			zap.String("provider", c.Provider), zap.String("workspace", c.Workspace))
	}
}

// learned is what stellwerk learns from live traffic and keeps across
// reloads: providers' latency and their failures, the spend and request
// counts its budgets and rate limits hold, and the spend ledger's writer.
type learned struct {
	lat    *observe.Latency
	health *health.Tracker
	led    *ledger.Ledger
	hook   *notify.Webhook // budget events (nil: no webhook)
	spend  spend.Recorder  // nil: no ledger rows
	// seed raises budgets to what the spend ledger has for them.
	seed *seeder
	// audit takes the decision records (nil: audit.enabled is false);
	// auditRefuse is its on_store_down mode as opened (a restart changes it).
	audit       *audit.Log
	auditRefuse bool
	// feedback keeps the votes of POST /v1/feedback (nil: no audit log to
	// check them against).
	feedback *extproc.Feedback
	// routes are the named routes (nil until opened, after the first
	// build); routeLimiter counts their rate_limit nodes in the ledger;
	// routeCounters count their answers per version and arm.
	routes        *routes
	routeLimiter  *flow.LedgerLimiter
	routeCounters *flow.Counters
	// live fans decisions out to the console's watchers.
	live *live.Hub
	// keeper keeps the versions records name, for replay (nil: no audit).
	keeper  *keeper
	metrics *telemetry.Metrics // nil: none are kept
	traces  *telemetry.Tracing // nil: OTEL_EXPORTER_OTLP_ENDPOINT is unset
}

// configActor is who changes the config: whoever can write its file.
const configActor = "config-file"

// recordChange puts a change on the audit record; nothing when the log is
// off. It never blocks.
func recordChange(l *audit.Log, kind, workspace string, c audit.Change) {
	if l == nil {
		return
	}
	l.Record(&audit.Record{Kind: kind, ID: extproc.NewDecisionID(), Workspace: workspace, Change: &c})
}

func healthPolicy(cfg *config.Config) health.Policy {
	p := health.Policy{FailuresBeforeCooldown: cfg.Failover.FailuresBeforeCooldown,
		Cooldown: cfg.Failover.Cooldown, MaxCooldown: cfg.Failover.MaxCooldown, Reopen: cfg.Failover.Reopen}
	for _, pr := range cfg.Providers {
		if f := pr.Failover; f != nil {
			if p.Providers == nil {
				p.Providers = map[string]health.Override{}
			}
			p.Providers[pr.Name] = health.Override{FailuresBeforeCooldown: f.FailuresBeforeCooldown, Cooldown: f.Cooldown, Reopen: f.Reopen}
		}
	}
	return p
}

// reloader watches the config file and the files it names (catalog,
// scorecards) and swaps in a new generation when they change. A config that
// does not load, validate or build is refused; the last good one stays.
type reloader struct {
	o    Options
	env  catalog.Env
	ps   decision.PolicySource
	ln   learned
	keys auth.Source // the key store's table: one for the process, shared by every generation
	// store holds the workspaces' own provider keys, re-read when the
	// table loads another generation (keyGen): a later one, or the same
	// number in a store that went back (keys.Table.Loaded). Only a change
	// of them re-applies the config (wks are those in force): a virtual
	// key's creation, limits or revocation had reloaded the file each time.
	store  *keys.Store
	keyGen func() store.Mark
	gen    store.Mark
	wks    []xds.WorkspaceKey
	// keysErr is why the workspaces' keys last read could not be applied
	// ("" none): said once, not at every key change.
	keysErr string
	log     *zap.Logger
	pub     *xds.Publisher
	ep      *extproc.Server
	mu      sync.Mutex
	cur     *generation
	// published is what Envoy was last sent: the current config's IR, or
	// its union with earlier ones' (stale) until their grace periods end.
	published xds.IR
	stale     []staleIR
	// base is the config in force as its files say; overrides are the
	// provider cluster settings PUT /admin/providers/{name} laid over it
	// (providers.go). They live in memory: every reload keeps them, a
	// restart forgets them.
	base      *config.Config
	overrides map[string]config.ClusterSettings
	seen      string // hash of the files last tried
	err       string
	at        time.Time
}

// fingerprint hashes the config file and every file it names, credential
// files included (the hash is never shown).
func (r *reloader) fingerprint(cfg *config.Config) string {
	h := sha256.New()
	files := []string{r.o.ConfigPath}
	if cfg != nil {
		if cfg.Catalog != "" {
			files = append(files, cfg.Catalog)
		}
		files = append(files, cfg.Evals...)
		if cfg.Routing.QualityPredictor != "" {
			files = append(files, cfg.Routing.QualityPredictor)
		}
		// A rotated key file reaches Envoy (SDS) without a restart.
		for _, p := range cfg.Providers {
			if p.Credential.File != "" {
				files = append(files, p.Credential.File)
			}
		}
	}
	for _, f := range files {
		b, _ := os.ReadFile(f) // a missing file hashes as empty; loading reports it
		fmt.Fprintf(h, "%s\x00%d\x00", f, len(b))
		h.Write(b)
	}
	return hex.EncodeToString(h.Sum(nil))[:12]
}

func (r *reloader) reload(ctx context.Context) {
	r.mu.Lock()
	defer r.mu.Unlock()
	fp := r.fingerprint(r.cur.cfg)
	gen := r.gen
	if r.keyGen != nil {
		gen = r.keyGen()
	}
	if fp == r.seen && gen == r.gen {
		return
	}
	r.gen = gen
	if fp == r.seen {
		r.reapplyKeys(ctx)
		return
	}
	r.seen, r.at = fp, time.Now()
	cfg, err := Load(r.o)
	if err == nil {
		r.seen = r.fingerprint(cfg) // include newly named files
		if err = restartOnly(r.cur.cfg, cfg); err != nil {
			// The whole file waits for the restart, its other edits too (the
			// operator probe's price change beside a server one was not
			// applied, and nothing said so).
			err = fmt.Errorf("%w; none of the file's other changes is applied until then", err)
		}
	}
	if err == nil {
		_, err = r.apply(ctx, cfg, keptOverrides(cfg, r.overrides, r.log), configActor)
	}
	if err != nil {
		r.err = err.Error()
		r.log.Error("config change refused; keeping the last good config", zap.Error(err))
		recordChange(r.ln.audit, audit.KindConfig, "", audit.Change{Actor: configActor, Action: "refuse",
			Before: r.cur.state.Versions.Config, Detail: map[string]string{"error": apierr.Truncate(err.Error(), 512)}})
		return
	}
	r.err = ""
}

// reapplyKeys applies the config in force again when the workspaces' own
// provider keys changed in the key store; the file, unchanged, is not read
// again (a refused one stays refused, once). The caller holds r.mu.
func (r *reloader) reapplyKeys(ctx context.Context) {
	wks, err := workspaceKeys(ctx, r.store)
	if err == nil {
		if slices.Equal(wks, r.wks) {
			r.keysErr = ""
			return
		}
		_, err = r.apply(ctx, r.base, r.overrides, "key-store")
	}
	if err == nil {
		r.keysErr = ""
		return
	}
	if err.Error() != r.keysErr {
		r.log.Error("config change refused; keeping the last good config", zap.String("changed", "workspace provider keys"), zap.Error(err))
		recordChange(r.ln.audit, audit.KindConfig, "", audit.Change{Actor: "key-store", Action: "refuse",
			Before: r.cur.state.Versions.Config, Detail: map[string]string{"error": apierr.Truncate(err.Error(), 512)}})
	}
	r.keysErr = err.Error()
}

// staleIR is what an earlier config had Envoy keep, until requests decided
// by it are done.
type staleIR struct {
	ir    xds.IR
	until time.Time
}

// keptIR is next with what the stale IRs still in their grace period at
// now add to it, the newest first.
func keptIR(next xds.IR, stale []staleIR, now time.Time) (xds.IR, []staleIR) {
	stale = slices.DeleteFunc(stale, func(s staleIR) bool { return !s.until.After(now) })
	for i := len(stale) - 1; i >= 0; i-- {
		next = xds.Union(stale[i].ir, next)
	}
	return next, stale
}

// keptOverrides are the admin API's cluster overrides of the providers cfg
// still has: a provider removed from the file takes its override with it,
// so a provider added later under the same name does not inherit an old
// tuning (and the override can no longer be cleared: PUT answers 404 for a
// provider the file lacks).
func keptOverrides(cfg *config.Config, overrides map[string]config.ClusterSettings, log *zap.Logger) map[string]config.ClusterSettings {
	var dropped []string
	for name := range overrides {
		if !slices.ContainsFunc(cfg.Providers, func(p config.Provider) bool { return p.Name == name }) {
			dropped = append(dropped, name)
		}
	}
	if len(dropped) == 0 {
		return overrides
	}
	kept := maps.Clone(overrides)
	for _, name := range dropped {
		delete(kept, name)
	}
	slices.Sort(dropped)
	log.Info("cluster overrides of providers removed from the config dropped", zap.Strings("providers", dropped))
	return kept
}

// apply makes base, with the admin API's cluster overrides laid over it,
// the config in force: it builds the generation, publishes it to Envoy and
// swaps the decision state. On error nothing that is serving changed.
// actor is who changed it, for the audit record. applied reports whether
// every connected Envoy accepted the result in time (a rejection shows per
// node in /status). The caller holds r.mu.
func (r *reloader) apply(ctx context.Context, base *config.Config, overrides map[string]config.ClusterSettings, actor string) (applied bool, err error) {
	cfg := withOverrides(base, overrides)
	if len(overrides) > 0 {
		if err := cfg.Validate(); err != nil {
			return false, err
		}
	}
	wks, err := workspaceKeys(ctx, r.store)
	if err != nil {
		return false, err
	}
	g, err := build(cfg, r.env, r.ps, r.ln, r.keys, wks, r.log)
	if err != nil {
		return false, err
	}
	if r.ln.routes != nil {
		if err := routesStillLoad(r.ln.routes.table, flow.EnvFor(cfg, g.cat)); err != nil {
			return false, err
		}
	}
	// Make before break: Envoy first gets everything the old and the new
	// config need (requests decided under the old one are still in
	// flight), then the decision state swaps, then, after a grace period,
	// what only the old one needed goes.
	// What the outgoing config needs and the new one does not stays for
	// the grace period from this reload; a later reload does not extend
	// it (key changes had kept a removed provider in Envoy for good).
	now := time.Now()
	stale := slices.Clone(r.stale)
	removes := xds.Removes(r.cur.ir, g.ir)
	if removes {
		stale = append(stale, staleIR{ir: r.cur.ir, until: now.Add(removalGrace(cfg))})
	}
	published, stale := keptIR(g.ir, stale, now)
	version, err := r.pub.Publish(ctx, published)
	if err != nil {
		return false, err
	}
	// Route by the new config only once Envoy has what it needs for it
	// (a new provider's cluster, egress listener and key).
	waitStart := time.Now()
	if applied = r.pub.WaitApplied(ctx, version, envoyApplyTimeout); !applied {
		r.log.Warn("Envoy has not applied the new configuration (refused, not connected, or not yet); routing by it anyway",
			zap.String("snapshot_version", version), zap.Duration("waited", time.Since(waitStart)),
			zap.Int64("envoys_connected", r.pub.Streams()), zap.String("refusal", r.pub.LastRejection()))
	}
	if r.ln.led != nil {
		r.ln.led.SetLimits(g.limits) // with the state that uses them (a request reserves in one or the other)
		// budgets.lease, or envoy.request_timeout it follows by default:
		// a change to the timeout was refused as a lease change the
		// operator never made (the config probe).
		r.ln.led.SetLease(cfg.Budgets.Lease)
		if !reflect.DeepEqual(r.cur.cfg.Budgets, cfg.Budgets) {
			go twice(ctx, cfg.Envoy.RequestTimeout+2*time.Second, r.ln.seed.all)
		}
	}
	r.ln.health.SetPolicy(healthPolicy(cfg))
	r.ln.health.Forget(func(name string) bool {
		return slices.ContainsFunc(g.cat.Providers(), func(p *catalog.Provider) bool { return p.Name == name })
	})
	setCredentials(r.ln.health, g, r.log) // Envoy has the new ones (or is not taking them)
	r.ln.lat.SetHalfLife(cfg.Routing.LatencyHalfLife)
	r.ln.keeper.keepConfig(ctx, g.versions) // before a record can name it
	r.ep.SetState(g.state)
	if r.ln.routes != nil {
		r.ln.routes.setEnv(ctx, flow.EnvFor(cfg, g.cat))
	}
	if was, now := r.cur.state.Versions, g.state.Versions; was != now {
		ch := audit.Change{Actor: actor, Action: "reload", Before: was.Config, After: now.Config}
		if was.Catalog != now.Catalog {
			ch.Detail = map[string]string{"catalog_before": was.Catalog, "catalog_after": now.Catalog}
		}
		if was.Predictor != now.Predictor {
			if ch.Detail == nil {
				ch.Detail = map[string]string{}
			}
			ch.Detail["predictor_before"], ch.Detail["predictor_after"] = was.Predictor, now.Predictor
		}
		recordChange(r.ln.audit, audit.KindConfig, "", ch)
	}
	r.cur, r.published, r.stale = g, published, stale
	r.base, r.overrides, r.wks = base, overrides, wks
	if m := r.ln.metrics; m != nil {
		// A budget the config no longer has exports no gauge: its last
		// ratio kept an "exceeded" alert firing (a helper's finding).
		budgets := map[string]bool{}
		for _, b := range cfg.Budgets.Limits {
			budgets[b.Name] = true
		}
		m.KeepBudgets(budgets)
	}
	if removes {
		grace := removalGrace(cfg)
		r.log.Info("removed providers stay in Envoy until requests decided before this reload are done",
			zap.String("grace", grace.String()))
		time.AfterFunc(grace, func() { r.removeStale(ctx) })
	}
	r.warnStaleKeys(g.cat)
	r.warnAliases(cfg)
	for _, s := range g.cat.IgnoredScores {
		r.log.Warn("scorecard rows of a model not in the catalog are ignored", zap.String("rows", s))
	}
	r.log.Info("config reloaded", zap.Int("models", len(g.cat.Models())), zap.Int("providers", len(g.cat.Providers())),
		zap.Int("cluster_overrides", len(overrides)), zap.String("snapshot_version", r.pub.Version()))
	return applied, nil
}

// warnAliases logs each string of the policy that is a model's alias: a
// rule comparing with it never applies (policy.AliasWarnings).
func (r *reloader) warnAliases(cfg *config.Config) {
	if r.ps == nil || r.ps.Current() == nil {
		return
	}
	for _, w := range r.ps.Current().AliasWarnings(cfg.ModelAliases()) {
		r.log.Warn("the policy names a model by an alias, which it never sees", zap.String("where", w))
	}
}

// warnStaleKeys logs each store key whose model list names a model the
// catalog no longer has: such a key silently lost those models (503
// no_eligible_model, a 404 for the pinned one), and nothing said so (the
// catalog probe). `stellwerk keys models` repairs it.
func (r *reloader) warnStaleKeys(cat *catalog.Catalog) {
	t, ok := r.keys.(*keys.Table)
	if !ok || t == nil {
		return
	}
	for id, models := range t.StaleModels(func(m string) bool { _, ok := cat.Lookup(m); return ok }) {
		r.log.Warn("virtual key may use models the catalog no longer has: it cannot use them; set its models (stellwerk keys models ID --models …, PUT /admin/keys/{id}/models)",
			zap.String("key_id", id), zap.Strings("models", models))
	}
}

// removeStale publishes the current config with only what the earlier
// configs still in their grace period need: what a reload removed leaves
// Envoy when the grace period from that reload ends, whatever reloads came
// after it.
func (r *reloader) removeStale(ctx context.Context) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if ctx.Err() != nil {
		return
	}
	next, stale := keptIR(r.cur.ir, r.stale, time.Now())
	if !xds.Removes(r.published, next) {
		r.stale = stale
		return // a reload since has published it
	}
	if _, err := r.pub.Publish(ctx, next); err != nil {
		r.log.Error("removing providers from Envoy failed; they stay until the next reload", zap.Error(err))
		return
	}
	r.published, r.stale = next, stale
	r.log.Info("removed providers are gone from Envoy", zap.String("snapshot_version", r.pub.Version()),
		zap.Int("reloads_in_grace", len(stale)))
}

// removalGrace is how long a removed provider's cluster outlives a reload:
// the longest a request decided before it can still be starting attempts
// (every attempt's timeout, and a margin), between 5 s and 5 min. In
// clusters mode a request makes one attempt, which starts at once: the
// margin alone (it had kept a removed cluster, and Envoy's refusal of it,
// for 185 s).
func removalGrace(cfg *config.Config) time.Duration {
	g := 5 * time.Second
	if n := cfg.Failover.MaxAttempts; n > 1 && cfg.Envoy.Mode != config.ModeClusters {
		g += time.Duration(n) * cfg.Failover.AttemptTimeout
	}
	return min(g, 5*time.Minute)
}

// restartOnly refuses changes that need a restart rather than a reload.
func restartOnly(old, cfg *config.Config) error {
	switch {
	case !reflect.DeepEqual(old.Server, cfg.Server): // grpc_tls is a pointer: compare what it holds
		return fmt.Errorf("server addresses, grpc_tls or grpc_stream_token changed: restart stellwerk to apply them")
	case old.Policy.Dir != cfg.Policy.Dir || *old.Policy.Library != *cfg.Policy.Library || old.Policy.ReloadInterval != cfg.Policy.ReloadInterval ||
		old.Policy.RequireDirModules != cfg.Policy.RequireDirModules:
		return fmt.Errorf("policy source, reload_interval or require_dir_modules changed: restart stellwerk to apply it")
	case cfg.Envoy.MaxRequestBytes > old.Envoy.MaxRequestBytes:
		// stellwerk's gRPC receive limit is set from it at start.
		return fmt.Errorf("envoy.max_request_bytes grew: restart stellwerk to apply it")
	case !reflect.DeepEqual(old.Budgets.Webhook, cfg.Budgets.Webhook):
		return fmt.Errorf("budgets.webhook changed: restart stellwerk to apply it")
	case !reflect.DeepEqual(old.Audit, cfg.Audit):
		// The log, its signing key, spool and modes are opened at start.
		return fmt.Errorf("audit changed: restart stellwerk to apply it")
	case old.Envoy.Mode != cfg.Envoy.Mode:
		// The listeners Envoy gets differ by mode, and Envoy's bootstrap
		// with them: a reload from standalone to clusters took the
		// listener away and every request failed (the config probe).
		return fmt.Errorf("envoy.mode changed: restart stellwerk, and Envoy with the bootstrap of the new mode (docs/envoy.md)")
	case !reflect.DeepEqual(old.State, cfg.State):
		return fmt.Errorf("state (key store, Redis, spend file, hash or master keys) changed: restart stellwerk to apply it")
	}
	return nil
}

// watch reloads the config every interval, and at once when now says so
// (SIGHUP: watchHUP).
func (r *reloader) watch(ctx context.Context, interval time.Duration, now <-chan struct{}) {
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-now:
		case <-t.C:
		}
		r.reload(ctx)
		r.ln.keeper.retry(ctx)
	}
}

// watchHUP checks the policy's files, then the config, for changes at once
// on SIGHUP, as `systemctl reload` and `kill -HUP` expect: SIGHUP killed
// the server without draining its requests or writing its records (the
// config probe).
func watchHUP(ctx context.Context, pm *policy.Manager, configNow chan<- struct{}, log *zap.Logger) {
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)
	for {
		select {
		case <-ctx.Done():
			return
		case <-hup:
			log.Info("SIGHUP: checking the config and the policy for changes now")
			if pm.Status().Dir != "" {
				_, _ = pm.Reload(ctx) // a refused change is logged, and kept in /policy
			}
			select {
			case configNow <- struct{}{}:
			default: // a check is on its way
			}
		}
	}
}

func (r *reloader) current() (*generation, string, time.Time) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.cur, cmp.Or(r.err, r.keysErr), r.at
}

// envoyApplyTimeout bounds how long a reload waits for Envoy to accept the
// new snapshot before routing by it.
const envoyApplyTimeout = 5 * time.Second

// workspaceKeys reads the workspaces' own provider keys (bring your own
// key) for the control plane, the one place they are decrypted. One that
// cannot be read fails them all (keys.ErrMasterKeyMissing): a start fails,
// a reload is refused and the keys in force stay.
func workspaceKeys(ctx context.Context, st *keys.Store) ([]xds.WorkspaceKey, error) {
	if st == nil {
		return nil, nil
	}
	var out []xds.WorkspaceKey
	err := st.EachProviderSecret(ctx, func(ps keys.ProviderSecret) error {
		out = append(out, xds.WorkspaceKey{Workspace: ps.Workspace, Provider: ps.Provider, Key: string(ps.Secret)})
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("workspace provider keys: %w", err)
	}
	return out, nil
}

// loadPredictor reads routing.quality_predictor, and returns the file's
// bytes for its version; nil when none is configured.
func loadPredictor(cfg *config.Config, env catalog.Env) (*qpredict.Model, []byte, error) {
	path := cfg.Routing.QualityPredictor
	if path == "" {
		return nil, nil, nil
	}
	b, err := env.ReadFile(path)
	if err != nil {
		return nil, nil, fmt.Errorf("routing.quality_predictor: %w", err)
	}
	qp, err := qpredict.Read(bytes.NewReader(b))
	if err != nil {
		return nil, nil, fmt.Errorf("routing.quality_predictor %s: %w", path, err)
	}
	return qp, b, nil
}

// rejectionSeries is the workspaces and the limit kind and scope pairs a
// config's limits can refuse requests with (telemetry's
// stellwerk_limit_rejections_total): its budgets' and rate limits', and a
// store key's own (any kind).
func rejectionSeries(cfg *config.Config) (workspaces []string, pairs [][2]string) {
	for _, w := range cfg.Workspaces {
		workspaces = append(workspaces, w.Name)
	}
	if len(workspaces) == 0 {
		workspaces = []string{auth.DefaultWorkspace}
	}
	add := func(kind, scope string) {
		if p := [2]string{kind, scope}; !slices.Contains(pairs, p) {
			pairs = append(pairs, p)
		}
	}
	budget, reqs, tokens := ledger.RefusedBudget.String(), ledger.RefusedRequests.String(), ledger.RefusedTokens.String()
	for _, k := range []string{budget, reqs, tokens} {
		add(k, ledger.ScopeKey.String())
	}
	for _, b := range cfg.Budgets.Limits {
		add(budget, b.Scope)
	}
	for _, r := range cfg.RateLimits {
		if r.RequestsPerMinute > 0 || r.RequestsPerDay > 0 {
			add(reqs, r.Scope)
		}
		if r.TokensPerMinute > 0 || r.TokensPerDay > 0 {
			add(tokens, r.Scope)
		}
	}
	return workspaces, pairs
}

// routesStillLoad refuses a config under which a route's serving version
// would no longer load: its flow would keep sending requests to a model
// the catalog no longer has, and they would be answered 503 (the policy
// rollout probe). The way out is named: deploy a version without the
// model first, or keep its id as an alias of another model.
func routesStillLoad(t *flowstore.Table, env *flow.Env) error {
	errs := t.Check(env)
	if len(errs) == 0 {
		return nil
	}
	msgs := make([]string, len(errs))
	for i, err := range errs {
		msgs[i] = err.Error()
	}
	return fmt.Errorf("a deployed route would no longer load: %s; deploy route versions that load under the new config first (stellwerk routes deploy), or keep a removed model's id as an alias (routing.aliases)", strings.Join(msgs, "; "))
}
