// Package serve wires one stellwerk process: the ext_proc and ADS services on
// one gRPC listener, and the admin API on its own.
package serve

import (
	"bytes"
	"cmp"
	"context"
	"errors"
	"fmt"
	accesslogv3 "github.com/envoyproxy/go-control-plane/envoy/service/accesslog/v3"
	"net"
	"net/http"
	"os"
	"runtime"
	"slices"
	"strings"
	"sync/atomic"
	"time"

	extprocv3 "github.com/envoyproxy/go-control-plane/envoy/service/ext_proc/v3"
	"github.com/redis/go-redis/v9"
	"go.uber.org/zap"
	"google.golang.org/grpc"
	grpchealth "google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/keepalive"

	"github.com/stellwerk/stellwerk/extproc"
	"github.com/stellwerk/stellwerk/internal/admin"
	"github.com/stellwerk/stellwerk/internal/apierr"
	"github.com/stellwerk/stellwerk/internal/audit"
	"github.com/stellwerk/stellwerk/internal/auth"
	"github.com/stellwerk/stellwerk/internal/catalog"
	"github.com/stellwerk/stellwerk/internal/classify"
	"github.com/stellwerk/stellwerk/internal/config"
	"github.com/stellwerk/stellwerk/internal/feedback"
	"github.com/stellwerk/stellwerk/internal/flow"
	"github.com/stellwerk/stellwerk/internal/flowstore"
	"github.com/stellwerk/stellwerk/internal/health"
	"github.com/stellwerk/stellwerk/internal/keys"
	"github.com/stellwerk/stellwerk/internal/ledger"
	"github.com/stellwerk/stellwerk/internal/live"
	"github.com/stellwerk/stellwerk/internal/notify"
	"github.com/stellwerk/stellwerk/internal/observe"
	"github.com/stellwerk/stellwerk/internal/policy"
	"github.com/stellwerk/stellwerk/internal/protocodec"
	"github.com/stellwerk/stellwerk/internal/spend"
	"github.com/stellwerk/stellwerk/internal/store"
	"github.com/stellwerk/stellwerk/internal/telemetry"
	"github.com/stellwerk/stellwerk/xds"
)

// Options override parts of the config file, mainly addresses for tests and
// for running several stacks side by side.
type Options struct {
	ConfigPath string
	GRPC       string // ext_proc + ADS
	Admin      string
	Listen     string // Envoy's client listener
	StateDir   string // state.dir (the embedded key store)
	Env        catalog.Env
	// Ready, if set, is called once every listener is bound and the first
	// snapshot is published.
	Ready func(grpcAddr, adminAddr net.Addr)
}

// Load reads the config and applies the overrides, validating the result.
func Load(o Options) (*config.Config, error) {
	cfg, err := config.Load(o.ConfigPath)
	if err != nil {
		return nil, err
	}
	if o.GRPC != "" {
		cfg.Server.GRPC = o.GRPC
	}
	if o.Admin != "" {
		cfg.Server.Admin = o.Admin
	}
	if o.Listen != "" {
		cfg.Envoy.Listener = o.Listen
	}
	if o.StateDir != "" {
		cfg.State.Dir = o.StateDir
	}
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	return cfg, nil
}

// afterLoad is a test's hook between reading the config and serving it.
var afterLoad = func() {}

// Run serves until ctx is cancelled.
func Run(ctx context.Context, o Options, log *zap.Logger) (runErr error) {
	// Said once the deferred closes (the spend writer, the audit log, the
	// stores) have run, after a shutdown: the operator probe's log ended
	// at "stellwerk stopping".
	stopped := false
	defer func() {
		if stopped {
			log.Info("stellwerk stopped")
		}
	}()
	// What a close on the way out lost (audit records, spend rows, budget
	// spend) fails the run: it exited 0 with them gone, and a service
	// manager showed a clean stop (the container probe).
	lost := func(what string, err error) {
		runErr = errors.Join(runErr, fmt.Errorf("%s: %w", what, err))
	}
	// A stop asked for before the start was done ends whatever start-up
	// was doing with "context canceled", which read like its failure (a
	// policy test "failed"): said as the stop it is (ErrStoppedStarting).
	asked, serving := ctx, false
	defer func() {
		if runErr != nil && !serving && asked.Err() != nil {
			runErr = fmt.Errorf("%w; it was interrupted while: %w", ErrStoppedStarting, runErr)
		}
	}()
	// The files as they were before they were read (the config and every
	// file it names, read once more for their names): an edit that lands
	// while stellwerk starts is loaded by the first check, not taken for
	// what was loaded (a helper's edit 50 ms after the start was never
	// applied; the verification helper's catalog edit neither).
	named, _ := config.Load(o.ConfigPath)
	files := (&reloader{o: o}).fingerprint(named)
	cfg, err := Load(o)
	if err != nil {
		return err
	}
	afterLoad()
	env := o.Env
	if env.Getenv == nil {
		env = catalog.OSEnv
	}

	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	pm, err := policy.NewManager(ctx, policy.Source{Library: *cfg.Policy.Library, Dir: cfg.Policy.Dir, RequireDir: cfg.Policy.RequireDirModules}, log)
	if err != nil {
		return fmt.Errorf("policy: %w", err)
	}
	go pm.Watch(ctx, cfg.Policy.ReloadInterval)
	if cfg.State.Postgres == nil {
		// The embedded store is one server's: a second one on the same
		// directory is refused before it opens (or migrates) anything.
		release, err := store.LockDir(cfg.State.Dir)
		if err != nil {
			return err
		}
		defer release()
	}
	ks, db, err := keys.OpenConfigured(ctx, cfg.State, env.Getenv)
	if err != nil {
		return fmt.Errorf("key store: %w", err)
	}
	defer func() {
		cancel() // stop the table's refresh before its database closes
		db.Close()
	}()
	// Said once, as soon as the start gets past opening its stores, or as
	// it fails: an older stellwerk refuses the database from now on (a
	// start that failed later migrated and said nothing: the operator
	// probe).
	migrationSaid := false
	sayMigrated := func() {
		if applied := db.Migrated(); len(applied) > 0 && !migrationSaid {
			migrationSaid = true
			log.Warn("state schema migrated; an older stellwerk now refuses this database (back it up before an upgrade: docs/deploy.md)",
				zap.Strings("migrations", applied))
		}
	}
	defer sayMigrated()
	table := keys.NewTable(ks, log.Named("keys"))
	if err := table.Refresh(ctx); err != nil {
		return fmt.Errorf("key store: %w", err)
	}
	go table.Run(ctx, cfg.State.RefreshInterval)
	log.Info("key store open", zap.String("backend", string(db.Dialect)), zap.Int("keys", table.Len()))
	sp, err := spend.Open(ctx, db)
	if err != nil {
		return fmt.Errorf("spend ledger: %w", err)
	}
	// In-memory budgets keep their spend in the state store unless a spend
	// file is configured; Redis keeps its own.
	var persister ledger.Persister
	if cfg.State.Redis == nil && cfg.State.SpendFile == "" {
		persister = sp.Totals()
	}
	led, err := ledger.Open(ctx, cfg, ledger.Env{Getenv: env.Getenv, ReadFile: os.ReadFile}, persister, log.Named("ledger"))
	if err != nil {
		return err
	}
	if w := config.MemoryBudgetsOnSharedStore(cfg); w != "" {
		log.Warn(w)
	}
	defer func() {
		closeCtx, done := context.WithTimeout(context.Background(), 5*time.Second)
		defer done()
		if err := led.Close(closeCtx); err != nil {
			log.Warn("saving budget spend on shutdown failed", zap.Error(err))
			lost("saving budget spend on shutdown", err)
		}
	}()
	sw := spend.NewWriter(sp, spend.WriterOptions{Logger: log.Named("spend")})
	defer func() { // after the gRPC server stopped: no request records any more
		closeCtx, done := context.WithTimeout(context.Background(), 5*time.Second)
		defer done()
		if err := sw.Close(closeCtx); err != nil {
			log.Warn("writing the spend ledger's last rows on shutdown failed", zap.Error(err))
			lost("writing the spend ledger's last rows on shutdown", err)
		}
	}()
	alog, err := openAudit(ctx, cfg, db, env, log.Named("audit"))
	if err != nil {
		return err
	}
	warnExposedState(log, cfg.State.Dir)
	if alog != nil {
		defer func() { // after the gRPC server stopped: drain, commit, sign the shutdown checkpoint
			closeCtx, done := context.WithTimeout(context.Background(), 10*time.Second)
			defer done()
			if err := alog.Close(closeCtx); err != nil {
				log.Warn("closing the audit log on shutdown failed", zap.Error(err))
				lost("closing the audit log on shutdown", err)
			}
		}()
	}
	// Which budget events were told: in Redis for a fleet, else in the
	// state store, so neither a second replica nor a restart tells one again.
	var told notify.Claims = sp.Notices()
	if cfg.State.Redis != nil {
		told = led
	}
	hook, err := budgetWebhook(cfg, env, told, log.Named("budgets"))
	if err != nil {
		return err
	}
	defer hook.Close()
	var kp *keeper
	if alog != nil {
		kp = newKeeper(alog.Store(), log.Named("audit"))
		// Every policy version in force is kept for replay, and its change
		// recorded, with what it changed from the one before (OnChange's
		// calls come one at a time).
		var inForce *policy.Engine
		pm.OnChange(func(e *policy.Engine, refused error) {
			if refused != nil {
				recordChange(alog, audit.KindPolicy, "", audit.Change{Actor: policyActor, Action: "refuse",
					Detail: map[string]string{"error": apierr.Truncate(refused.Error(), 512)}})
				return
			}
			kp.keepPolicy(ctx, e)
			recordChange(alog, audit.KindPolicy, "", policyLoad(inForce, e))
			inForce = e
		})
	}
	traces, err := telemetry.StartTracing(ctx, env.Getenv)
	if err != nil {
		return fmt.Errorf("traces: %w", err)
	}
	if traces != nil {
		log.Info("OpenTelemetry traces on: a span per request to the OTLP/HTTP endpoint of OTEL_EXPORTER_OTLP_ENDPOINT")
		defer func() { // after the gRPC server stopped: no request records any more
			closeCtx, done := context.WithTimeout(context.Background(), 5*time.Second)
			defer done()
			if err := traces.Shutdown(closeCtx); err != nil {
				log.Warn("sending the last spans on shutdown failed", zap.Error(err))
			}
		}()
	}
	lat := &observe.Latency{}
	lat.SetHalfLife(cfg.Routing.LatencyHalfLife)
	ln := learned{lat: lat, health: health.New(healthPolicy(cfg)), led: led, hook: hook, spend: sw, keeper: kp,
		audit: alog, auditRefuse: cfg.Audit.OnStoreDown == config.AuditRefuse, routeLimiter: &flow.LedgerLimiter{Ledger: led},
		routeCounters: &flow.Counters{}, metrics: telemetry.New(), traces: traces, live: &live.Hub{},
		seed: &seeder{led: led, sp: sp, table: table, log: log.Named("ledger")}}
	if rc := cfg.State.Redis; rc != nil {
		// Cooldowns are shared with the other replicas through Redis, as
		// budgets are (docs/failover.md).
		opts, err := ledger.RedisOptions(rc, ledger.Env{Getenv: env.Getenv, ReadFile: os.ReadFile})
		if err != nil {
			return err
		}
		hc := redis.NewClient(opts)
		shareCtx, stopSharing := context.WithCancel(ctx)
		shared := make(chan struct{})
		go func() {
			defer close(shared)
			health.Share(shareCtx, ln.health, health.NewRedis(hc, rc.Prefix), log.Named("health"))
		}()
		defer func() {
			stopSharing()
			<-shared
			hc.Close()
		}()
	}
	fb, err := feedback.Open(ctx, db)
	if err != nil {
		return fmt.Errorf("feedback: %w", err)
	}
	if alog != nil {
		// Votes are checked against their decision's audit record; without
		// the log none can be (docs/routerbench.md#feedback).
		ln.feedback = &extproc.Feedback{Store: fb, Decisions: feedback.AuditDecisions{Log: alog}}
	}
	wks, err := workspaceKeys(ctx, ks)
	if err != nil {
		return err
	}
	keyGen := table.Loaded()
	g, err := build(cfg, env, pm, ln, table, wks, log)
	if err != nil {
		return err
	}
	kp.keepConfig(ctx, g.versions)
	setCredentials(ln.health, g, log.Named("config"))
	rts, err := openRoutes(ctx, db, o.ConfigPath, flow.EnvFor(g.cfg, g.cat), alog, log.Named("routes"))
	if err != nil {
		return err
	}
	go rts.run(ctx, cfg.State.RefreshInterval, configReloadInterval)
	ln.routes = rts
	g.state.Router.Routes = rts.table // later generations get it from build
	loaded := map[string]string{"catalog": g.state.Versions.Catalog}
	if p := g.state.Versions.Predictor; p != "" {
		loaded["predictor"] = p
	}
	recordChange(alog, audit.KindConfig, "", audit.Change{Actor: configActor, Action: "load", After: g.state.Versions.Config, Detail: loaded})
	for _, m := range g.cat.MissingCredentials() {
		log.Warn("provider credential not found; requests to it will get 502 until it is set", zap.String("provider", m))
	}
	for _, m := range g.state.Keys.Missing() {
		log.Warn("virtual key not loaded: its environment variable is unset; requests with it get 401", zap.String("key", m))
	}
	pub := xds.NewPublisher(ctx, log)
	if _, err := pub.Publish(ctx, g.ir); err != nil {
		return fmt.Errorf("xds: %w", err)
	}
	ep := extproc.New(g.state, log)
	rl := &reloader{o: o, env: env, ps: pm, ln: ln, keys: table, store: ks, keyGen: table.Loaded, gen: keyGen, wks: wks,
		log: log.Named("config"), pub: pub, ep: ep, cur: g, published: g.ir, base: cfg}
	rl.seen = files // a change since then reloads at the first check
	rl.warnAliases(cfg)
	configNow := make(chan struct{}, 1)
	go rl.watch(ctx, configReloadInterval, configNow)
	go watchHUP(ctx, pm, configNow, log.Named("config"))
	fleet := &fleetWatch{replica: fleetReplica(cfg), fp: func() string {
		g, _, _ := rl.current()
		return fleetFingerprint(g.cfg, g.state.Versions.Catalog, pm.Current().Version)
	}}
	if led != nil && cfg.State.Redis != nil {
		go fleet.run(ctx, led, log.Named("fleet"))
	}
	go watchEnvoyModes(ctx, pub, func() string { g, _, _ := rl.current(); return g.cfg.Envoy.Mode }, log.Named("xds"))
	if led != nil && ln.metrics != nil {
		go watchBudgetGauges(ctx, led, ln.metrics, func() *config.Config { g, _, _ := rl.current(); return g.cfg })
	}
	// What was spent before a budget counted it.
	go ln.seed.all(ctx)
	if led != nil {
		led.OnStateLost(func() { ln.seed.all(ctx) })
		table.OnLimits(func(ps []auth.Principal) {
			g, _, _ := rl.current()
			go twice(ctx, g.cfg.Envoy.RequestTimeout+2*time.Second, func(ctx context.Context) { ln.seed.keys(ctx, ps) })
		})
	}
	if err := registerScrape(ln.metrics, rl, pm, sw, alog, fleet); err != nil {
		return fmt.Errorf("metrics: %w", err)
	}
	cat := g.cat

	token, err := readStreamToken(cfg.Server, env.Getenv)
	if err != nil {
		return err
	}
	grpcLis, grpcOpts, err := listenGRPC(cfg.Server, log)
	if err != nil {
		return fmt.Errorf("server.grpc: %w", err)
	}
	grpcOpts = append(grpcOpts, (&streamToken{want: []byte(token), log: log.Named("grpc")}).serverOptions()...)
	adminLis, err := net.Listen("tcp", cfg.Server.Admin)
	if err != nil {
		grpcLis.Close()
		return fmt.Errorf("server.admin: %w", err)
	}

	gs := grpc.NewServer(append(append(grpcOpts,
		// Buffers reused without zeroing them first: gRPC's own clear a
		// 1 MiB buffer for each message over 32 KiB (internal/protocodec).
		protocodec.New().ServerOptions()...),
		grpc.MaxConcurrentStreams(1<<20),
		// Every request is a new ext_proc stream: a few goroutines kept to
		// serve them (their stacks already grown) instead of a new one per
		// stream; when all are busy (long streams, ADS, the access log)
		// gRPC starts one as before. Measured: docs/benchmarks.md, "Less
		// garbage per request". (grpc-go marks the option experimental.)
		grpc.NumStreamWorkers(uint32(4*runtime.GOMAXPROCS(0))),
		grpc.MaxRecvMsgSize(int(cfg.Envoy.MaxRequestBytes)+(1<<20)),
		// Fixed flow-control windows: with the defaults gRPC estimates
		// the link's bandwidth with a PING per burst of data, which on
		// small, frequent ext_proc messages is a frame and a wake-up each
		// way (for Envoy too) that routing does not need.
		grpc.InitialWindowSize(4<<20),
		grpc.InitialConnWindowSize(16<<20),
		grpc.KeepaliveEnforcementPolicy(keepalive.EnforcementPolicy{MinTime: 5 * time.Second, PermitWithoutStream: true}),
	)...)
	extprocv3.RegisterExternalProcessorServer(gs, ep)
	// Envoy's upstream log of first attempts that failed (docs/failover.md):
	// on the same socket, which only Envoy reaches.
	accesslogv3.RegisterAccessLogServiceServer(gs, ep.UpstreamLog())
	pub.Register(gs)
	// grpc.health.v1 for Envoy's active health checks of the ext_proc and
	// xDS clusters (envoy/bootstrap-mtls.yaml): a replica that stops, or
	// is stopping, is taken out before its connections fail.
	hc := grpchealth.NewServer()
	healthpb.RegisterHealthServer(gs, hc)

	st := &status{pub: pub, rl: rl, pm: pm, led: led, log: log.Named("admin"), keys: ks, table: table, spend: sp, spendW: sw, audit: alog,
		routes: rts, routeCounters: ln.routeCounters, metrics: ln.metrics, live: ln.live, feedback: fb, fleet: fleet}
	st.Tokens() // warns now about tokens that cannot be loaded
	// Requests take adminCtx as their base, so the console's open decision
	// streams end when the admin API closes instead of holding its
	// shutdown. Not ctx: a SIGTERM cancels that as the drain begins, and
	// through the drain every admin request that reads a store failed with
	// it (the red team).
	adminCtx, closeAdmin := context.WithCancel(context.WithoutCancel(ctx))
	defer closeAdmin()
	hs := &http.Server{Handler: admin.Handler(st, st.log), ReadHeaderTimeout: 5 * time.Second,
		BaseContext: func(net.Listener) context.Context { return adminCtx }}

	errc := make(chan error, 2)
	go func() { errc <- gs.Serve(grpcLis) }()
	go func() {
		if err := hs.Serve(adminLis); !errors.Is(err, http.ErrServerClosed) {
			errc <- err
			return
		}
		errc <- nil
	}()
	sayMigrated()
	log.Info("stellwerk serving", zap.String("grpc", grpcLis.Addr().String()), zap.String("admin", adminLis.Addr().String()),
		zap.String("envoy_listener", cfg.Envoy.Listener), zap.Int("models", len(cat.Models())), zap.Int("providers", len(cat.Providers())))
	serving = true
	if o.Ready != nil {
		o.Ready(grpcLis.Addr(), adminLis.Addr())
	}

	var served error
	select {
	case <-ctx.Done():
	case served = <-errc:
	}
	log.Info("stellwerk stopping")
	st.stopping.Store(true) // /readyz: 503
	hc.Shutdown()           // NOT_SERVING: Envoy's health checks move traffic to other replicas
	if grpcLis.Addr().Network() == "tcp" {
		// A fleet's Envoy checks every second (envoy/bootstrap-mtls.yaml):
		// until it has seen NOT_SERVING, it still sends requests here, and
		// they are served rather than refused (a helper's finding: each
		// rolling restart failed one request).
		time.Sleep(healthCheckGrace)
	}
	// No new streams from here (GOAWAY); those in flight finish, a stream
	// of many minutes included, for at most envoy.request_timeout, the
	// longest a request may last. xDS streams never end on their own: they
	// are cut once the requests are done.
	go gs.GracefulStop()
	drainCtx, drained := context.WithTimeout(context.Background(), cfg.Envoy.RequestTimeout)
	defer drained()
	if !ep.Drain(drainCtx) {
		log.Warn("requests still in flight at envoy.request_timeout; cutting them")
	} else {
		log.Info("requests in flight finished; writing the last spend rows and the audit log's shutdown checkpoint")
	}
	// The admin API answered until here: /metrics shows the drain, and a
	// liveness probe on /healthz does not kill a drain of many minutes
	// (the capacity probe: the port closed when the drain began).
	closeAdmin()
	shutCtx, done := context.WithTimeout(context.Background(), 5*time.Second)
	defer done()
	_ = hs.Shutdown(shutCtx)
	gs.Stop()
	stopped = true
	return served // and what the deferred closes lost (lost)
}

// ErrStoppedStarting is a run stopped by its context (a signal) before it
// served: the stop asked for, not a failure.
var ErrStoppedStarting = errors.New("stopped by a signal during start-up")

// healthCheckGrace is how long a stopping replica on TCP keeps taking
// requests after it reports NOT_SERVING: a little over the interval of the
// health check in envoy/bootstrap-mtls.yaml (1 s).
const healthCheckGrace = 1500 * time.Millisecond

// budgetWebhook starts the poster of budget events, nil when none is
// configured.
func budgetWebhook(cfg *config.Config, env catalog.Env, claims notify.Claims, log *zap.Logger) (*notify.Webhook, error) {
	wh := cfg.Budgets.Webhook
	if wh == nil {
		return nil, nil
	}
	var secret []byte
	switch {
	case wh.SecretEnv != "":
		secret = []byte(strings.TrimSpace(env.Getenv(wh.SecretEnv)))
		if len(secret) == 0 {
			return nil, fmt.Errorf("budgets.webhook.secret_env: %s is not set", wh.SecretEnv)
		}
	case wh.SecretFile != "":
		b, err := os.ReadFile(wh.SecretFile)
		if err != nil {
			return nil, fmt.Errorf("budgets.webhook.secret_file: %w", err)
		}
		secret = bytes.TrimSpace(b)
	}
	replica, _ := os.Hostname()
	return notify.New(wh.URL, secret, replica, claims, log), nil
}

// policyActor changes the policy: whoever can write its directory.
const policyActor = "policy-dir"

// configReloadInterval is how often the config and the files it names are
// checked for changes.
const configReloadInterval = 2 * time.Second

type status struct {
	pub     *xds.Publisher
	rl      *reloader
	pm      *policy.Manager
	led     *ledger.Ledger
	log     *zap.Logger
	tokens  atomic.Pointer[adminTokens]
	keys    *keys.Store
	table   *keys.Table
	spend   *spend.Store
	spendW  *spend.Writer
	audit   *audit.Log // nil: audit.enabled is false
	metrics *telemetry.Metrics
	routes  *routes
	// routeCounters are the requests, errors, cost and latency per route
	// version and arm.
	routeCounters *flow.Counters
	live          *live.Hub
	feedback      *feedback.Store
	fleet         *fleetWatch
	stopping      atomic.Bool
}

func (s *status) Stopping() bool { return s.stopping.Load() }

// FleetStatus is /status's "fleet": this replica's config fingerprint and
// the replicas that decide by another.
func (s *status) FleetStatus() any { return s.fleet.Status() }

var (
	_ admin.RouteService    = (*status)(nil)
	_ admin.RouteTraffic    = (*status)(nil)
	_ admin.AuditService    = (*status)(nil)
	_ admin.ChangeRecorder  = (*status)(nil)
	_ admin.MetricsService  = (*status)(nil)
	_ admin.LiveService     = (*status)(nil)
	_ admin.ProviderLister  = (*status)(nil)
	_ admin.FeedbackService = (*status)(nil)
)

// Feedback is the store of votes on routed answers.
func (s *status) Feedback() *feedback.Store { return s.feedback }

// FeedbackDecisions are the decisions votes are checked against: the audit log's.
func (s *status) FeedbackDecisions() feedback.Decisions {
	if s.audit == nil {
		return nil
	}
	return feedback.AuditDecisions{Log: s.audit}
}

// Routes is the route store.
func (s *status) Routes() *flowstore.Store { return s.routes.st }

func (s *status) RoutesChanged(ctx context.Context) error { return s.routes.table.Refresh(ctx) }

// RouteEnv is what route documents compile against: the config in force.
func (s *status) RouteEnv() *flow.Env {
	s.routes.mu.Lock()
	defer s.routes.mu.Unlock()
	return s.routes.env
}

// RouteCounters are the answers per route version and arm.
func (s *status) RouteCounters() *flow.Counters { return s.routeCounters }

// Metrics serves GET /metrics.
func (s *status) Metrics() http.Handler { return s.metrics.Handler() }

// registerScrape adds what a scrape reads of the running server: the
// writers' queues, provider health, and the versions in force.
func registerScrape(m *telemetry.Metrics, rl *reloader, pm *policy.Manager, sw *spend.Writer, alog *audit.Log, fleet *fleetWatch) error {
	cs := append(telemetry.Versions(
		func() string { return pm.Current().Version },
		func() (string, string, string) {
			g, _, _ := rl.current()
			v := g.state.Versions
			return v.Config, v.Catalog, v.Predictor
		},
		func() bool {
			_, err, _ := rl.current()
			return err != ""
		}),
		telemetry.Spend(sw.Stats), telemetry.Providers(rl.ln.health.Snapshot, time.Now),
		telemetry.Routes(rl.ln.routeCounters.Snapshot, rl.ln.routes.table.Live, rl.ln.routes.table.BrokenVersions),
		telemetry.ClassifyMemo(classify.MemoStats),
		telemetry.PolicyMemo(func() (uint64, uint64) { return pm.Current().MemoStats() }),
		telemetry.PolicyErrors(func() uint64 { n, _ := pm.Current().Failures(); return n }),
		telemetry.PolicyRefused(func() bool { return pm.Status().LastError != "" }),
		telemetry.PolicyUserModules(pm.UserModules),
		telemetry.EnvoyRejected(func() bool { return rl.pub.LastRejection() != "" }),
		telemetry.EnvoyStreams(rl.pub.Streams))
	if alog != nil {
		cs = append(cs, telemetry.Audit(alog.Stats))
	}
	cs = append(cs, telemetry.Fleet(func() (int, int) {
		s := fleet.Status()
		return s.Replicas, len(s.Differ)
	})...)
	if led := rl.ln.led; led != nil {
		cs = append(cs, telemetry.BudgetStore(func() (bool, uint64) {
			h := led.Health()
			return h.Reachable, h.AdmittedUnchecked
		})...)
	}
	return m.Register(cs...)
}

// Live is the hub of the console's decision stream.
func (s *status) Live() *live.Hub { return s.live }

// EnvoyListener is the address of Envoy's listener in the config in force,
// where POST /admin/try sends its request.
func (s *status) EnvoyListener() string {
	g, _, _ := s.rl.current()
	return g.cfg.Envoy.Listener
}

// RecordChange puts an admin API change on the audit record.
func (s *status) RecordChange(kind, workspace string, c audit.Change) {
	recordChange(s.audit, kind, workspace, c)
}

// AuditStore is the audit log's store, nil when the log is off.
func (s *status) AuditStore() *audit.Store {
	if s.audit == nil {
		return nil
	}
	return s.audit.Store()
}

// AuditKey is the key the log's checkpoints are signed with.
func (s *status) AuditKey() audit.PublicKey {
	if s.audit == nil {
		return audit.PublicKey{}
	}
	return s.audit.Public()
}

// AuditStatus is the audit log's part of /status: its writer's figures.
func (s *status) AuditStatus() any {
	if s.audit == nil {
		return map[string]any{"enabled": false}
	}
	return map[string]any{"enabled": true, "backend": s.audit.Store().DB().Dialect, "key_id": s.audit.Public().ID, "writer": s.audit.Stats()}
}

func (s *status) Spend() *spend.Store { return s.spend }

// SpendStatus is the spend ledger's part of /status: its writer's counters.
func (s *status) SpendStatus() any {
	return map[string]any{"backend": s.spend.DB().Dialect, "writer": s.spendW.Stats()}
}

// BudgetStoreStatus is the budget store's part of /status; nil without
// budgets or rate limits.
func (s *status) BudgetStoreStatus() any {
	if s.led == nil {
		return nil
	}
	return s.led.Health()
}

func (s *status) Keys() *keys.Store { return s.keys }

// KeysChanged refreshes the key table after a change this replica made.
func (s *status) KeysChanged(ctx context.Context) error { return s.table.Refresh(ctx) }

// KeyStoreStatus is the key store's part of /status: whether the last
// refresh reached it, and what the table holds.
func (s *status) KeyStoreStatus() any {
	ok, last := s.table.Healthy()
	return map[string]any{"backend": s.keys.DB().Dialect, "reachable": ok, "last_refresh": last.UTC(),
		"keys": s.table.Len(), "generation": s.table.Generation()}
}

// Config is the config in force.
func (s *status) Config() *config.Config {
	g, _, _ := s.rl.current()
	return g.cfg
}

func (s *status) Policy() any { return s.pm.Status() }

func (s *status) Gauges() map[string]int64 {
	sw := s.spendW.Stats()
	g := map[string]int64{"extproc_attempt_entries": extproc.AttemptEntriesInProcess(),
		"spend_rows_written": sw.Written, "spend_rows_queued": sw.Queued, "spend_rows_dropped": sw.Dropped, "spend_rows_lost": sw.Lost}
	if s.audit != nil {
		as := s.audit.Stats()
		g["audit_records_written"], g["audit_records_queued"], g["audit_records_pending"] = as.Written, int64(as.Queued), as.Pending
		g["audit_records_spooled"], g["audit_records_dropped"], g["audit_records_failed"] = as.Spooled, as.Dropped, as.Failed
		g["audit_checkpoints"], g["audit_lag_ns"] = as.Checkpoints, int64(as.OldestAge)
		g["audit_healthy"], g["audit_store_down"] = b2i(as.Healthy), b2i(as.StoreDown)
	}
	return g
}

func b2i(b bool) int64 {
	if b {
		return 1
	}
	return 0
}

// openAudit opens the audit log on the state store (audit.enabled,
// default true): its tables, the signing key (configured, or generated
// into state.dir), and the writer. nil when the log is disabled.
func openAudit(ctx context.Context, cfg *config.Config, db *store.DB, env catalog.Env, log *zap.Logger) (*audit.Log, error) {
	if !cfg.Audit.IsEnabled() {
		log.Warn("audit log disabled (audit.enabled: false): decisions and changes are not recorded")
		return nil, nil
	}
	ast, err := audit.OpenStore(ctx, db)
	if err != nil {
		return nil, fmt.Errorf("audit store: %w", err)
	}
	if !cfg.Audit.SigningKey.IsSet() && cfg.State.Postgres == nil {
		if _, err := audit.LoadPublic(cfg.Audit, cfg.State.Dir, env.Getenv); errors.Is(err, audit.ErrNoKey) {
			// A key would be generated into the directory the store is in.
			// Where this replica signed before, its key went missing (a
			// restore without it): a new one would make every old
			// checkpoint fail verify as bad_signature, and was made with
			// only the usual warning (the operator probe). (On PostgreSQL
			// a new replica's empty state.dir is no restore.)
			prev, ok, err := ast.LastCheckpoint(ctx, audit.ReplicaName(cfg.Audit))
			if err != nil {
				return nil, fmt.Errorf("audit store: %w", err)
			}
			if ok {
				return nil, fmt.Errorf("audit signing key: the audit log holds checkpoints this replica (%s) signed with key %s, and state.dir has no %s; "+
					"restore it from the backup, or set audit.signing_key to sign with a new key from now on (docs/audit.md#rotating-the-signing-key)",
					audit.ReplicaName(cfg.Audit), prev.KeyID, audit.KeyFile)
			}
		}
	}
	signer, generated, err := audit.LoadSigner(cfg.Audit, cfg.State.Dir, env.Getenv)
	if err != nil {
		return nil, fmt.Errorf("audit signing key: %w", err)
	}
	if generated {
		log.Warn("audit signing key generated into state.dir; keep a copy of its public key (stellwerk audit pubkey) where the database's administrators cannot write",
			zap.String("key_id", signer.Public().ID))
	}
	l, err := audit.Open(ctx, ast, signer, audit.OptionsFrom(cfg.Audit, cfg.State.Dir), log)
	if err != nil {
		return nil, err
	}
	return l, nil
}

func (s *status) Providers() any {
	if p := s.rl.ln.health.Snapshot(); p != nil {
		return p
	}
	return []health.Status{}
}

func (s *status) SnapshotVersion() string { return s.pub.Version() }

// Budgets reports the budgets and rate limits one subject meets, as they
// stand; GET /admin/budgets?workspace=…&team=…&user=…&key=….
func (s *status) Budgets(r *http.Request) (any, error) {
	q := r.URL.Query()
	sub := ledger.Subject{Key: q.Get("key"), User: q.Get("user"), Team: q.Get("team"), Workspace: q.Get("workspace")}
	if ws, team, ok := strings.Cut(sub.Team, "/"); ok { // team=acme/ml, as budgets and /admin/spend name it
		if sub.Workspace != "" && sub.Workspace != ws {
			return nil, apierr.Invalid("invalid_value", "team", "team %q is in workspace %q, not %q", sub.Team, ws, sub.Workspace)
		}
		sub.Workspace, sub.Team = ws, team
	}
	if ws, user, ok := strings.Cut(sub.User, "/"); ok { // user=acme/ana, as budgets name it
		if sub.Workspace != "" && sub.Workspace != ws {
			return nil, apierr.Invalid("invalid_value", "user", "user %q is in workspace %q, not %q", sub.User, ws, sub.Workspace)
		}
		sub.Workspace, sub.User = ws, user
	}
	if sub.Team != "" && sub.Workspace == "" && sub.Key == "" {
		// Teams are a workspace's own: with no workspace no team budget
		// applies, and the answer had been an empty list.
		return nil, apierr.Invalid("invalid_value", "team", "a team is a workspace's own: name the workspace too (workspace=…&team=…, or team=workspace/team)")
	}
	if sub.User != "" && sub.Workspace == "" && sub.Key == "" {
		// So are users (the console probe: "no budget applies").
		return nil, apierr.Invalid("invalid_value", "user", "a user is a workspace's own: name the workspace too (workspace=…&user=…, or user=workspace/user)")
	}
	g, _, _ := s.rl.current()
	if sub.Workspace != "" && !slices.ContainsFunc(g.cfg.Workspaces, func(w config.Workspace) bool { return w.Name == sub.Workspace }) {
		return nil, apierr.NotFound("workspace_not_found", "workspace", "no workspace %q in the config", apierr.Truncate(sub.Workspace, 64))
	}
	// The budgets a key meets: its workspace's, team's and user's (a
	// helper's ?key=… had listed only the key's own, not the team budget
	// that refused it), unless the query names another workspace, and its
	// own limits. A store key or one of the config's.
	fill := func(ws, team, user string) {
		if sub.Workspace != "" && sub.Workspace != ws {
			return // another workspace: its team and user are not the key's
		}
		sub.Workspace, sub.Team, sub.User = ws, cmp.Or(sub.Team, team), cmp.Or(sub.User, user)
	}
	req := &ledger.Request{Subject: sub, Model: q.Get("model")}
	if sub.Key != "" {
		i := slices.IndexFunc(g.cfg.Keys, func(k config.Key) bool { return k.ID == sub.Key })
		var k keys.Key
		var err error = keys.ErrNotFound
		if s.keys != nil {
			k, err = s.keys.Get(r.Context(), sub.Key)
		}
		switch {
		case err == nil:
			fill(k.Workspace, k.Team, k.User)
		case i >= 0:
			ck := g.cfg.Keys[i]
			fill(ck.Workspace, ck.Team, ck.User)
		case errors.Is(err, keys.ErrNotFound):
			return nil, apierr.NotFound("key_not_found", "key", "no key with this id")
		default:
			return nil, err
		}
		req.Subject = sub
		if err == nil && !k.Limits.IsZero() { // a store key's own limits
			kl, err := ledger.KeyLimitsFromConfig(k.ID, &k.Limits, s.led.Limits().Location())
			if err != nil {
				e := apierr.Internal()
				e.Code, e.Message = "key_limits_invalid", "this key's own limits cannot be enforced (its requests are refused); replace the key"
				return nil, e
			}
			req.Extra = kl
		}
	}
	st, err := s.led.Peek(r.Context(), req)
	if err != nil {
		return nil, err
	}
	type budget struct {
		Name        string     `json:"name"`
		Scope       string     `json:"scope"`
		Subject     string     `json:"subject,omitempty"`
		Period      string     `json:"period"`
		LimitEUR    float64    `json:"limit_eur"`
		UsedEUR     float64    `json:"used_eur"`
		ReservedEUR float64    `json:"reserved_eur"`
		Ratio       float64    `json:"ratio"`
		WarnAt      float64    `json:"warn_at,omitempty"` // the ratio from which warn is set
		Action      string     `json:"action"`            // block or downgrade
		Warn        bool       `json:"warn"`
		Exceeded    bool       `json:"exceeded"`
		Resets      *time.Time `json:"resets_at,omitempty"`
	}
	type rate struct {
		Name      string    `json:"name"`
		Limit     int64     `json:"limit"`
		Remaining int64     `json:"remaining"`
		Resets    time.Time `json:"resets_at"`
	}
	type subject struct { // the query's, with a store key's workspace, team and user filled in
		Key       string `json:"key,omitempty"`
		User      string `json:"user,omitempty"`
		Team      string `json:"team,omitempty"`
		Workspace string `json:"workspace,omitempty"`
	}
	out := struct {
		Subject  subject  `json:"subject"`
		Budgets  []budget `json:"budgets"`
		Requests *rate    `json:"requests,omitempty"`
		Tokens   *rate    `json:"tokens,omitempty"`
	}{Subject: subject(sub), Budgets: []budget{}}
	warnAt := map[string]float64{} // by rule name: the configured rules and the key's own
	for _, ls := range []*ledger.Limits{s.led.Limits(), req.Extra} {
		if ls != nil {
			for _, r := range ls.Budgets() {
				warnAt[r.Name] = r.WarnAt
			}
		}
	}
	for _, b := range st.Budgets {
		e := budget{Name: b.Name, Scope: b.Scope.String(), Subject: b.Subject, Period: b.Period.String(), LimitEUR: b.Limit.EUR(),
			UsedEUR: b.Used.EUR(), ReservedEUR: b.Reserved.EUR(), Ratio: b.Ratio, WarnAt: warnAt[b.Name], Action: "block",
			Warn: b.Warn, Exceeded: b.Exceeded}
		if b.Downgrade {
			e.Action = "downgrade"
		}
		if !b.Reset.IsZero() {
			t := b.Reset.UTC()
			e.Resets = &t
		}
		out.Budgets = append(out.Budgets, e)
	}
	if rs := st.Requests; rs.Limit > 0 {
		out.Requests = &rate{Name: rs.Name, Limit: rs.Limit, Remaining: rs.Remaining, Resets: rs.Reset.UTC()}
	}
	if rs := st.Tokens; rs.Limit > 0 {
		out.Tokens = &rate{Name: rs.Name, Limit: rs.Limit, Remaining: rs.Remaining, Resets: rs.Reset.UTC()}
	}
	return out, nil
}
func (s *status) EnvoyStreams() int64   { return s.pub.Streams() }
func (s *status) EnvoyNodes() any       { return s.pub.Nodes() }
func (s *status) XDSDump() (any, error) { return s.pub.Dump() }
func (s *status) LastRejection() string { return s.pub.LastRejection() }
func (s *status) ConfigYAML() ([]byte, error) {
	g, _, _ := s.rl.current()
	return g.cfg.YAML()
}

func (s *status) ConfigError() (string, time.Time) {
	_, err, at := s.rl.current()
	return err, at
}

// exposedStateFiles are the files in state.dir whose modes stellwerk checks at
// start: the keys and the embedded key store (with SQLite's journal files,
// which hold recent pages of it).
var exposedStateFiles = []string{audit.KeyFile, keys.HashKeyFile, store.SQLiteFile, store.SQLiteFile + "-wal", store.SQLiteFile + "-shm"}

// warnExposedState says at start which of state.dir and its key files group
// or others can reach; stellwerk made them 0700 and 0600, but took a
// chmod 0777 or a 0644 key without a word (the supply-chain probe). A
// warning, not a refusal as ssh's for a private key: a volume's group
// ownership (Kubernetes fsGroup makes files group-readable, and re-applies it
// on every mount) or a restore would otherwise keep a running service from
// starting after an upgrade, where a warning leaves the operator to decide.
func warnExposedState(log *zap.Logger, dir string) {
	found, err := store.ExposedState(dir, exposedStateFiles...)
	if err != nil {
		log.Warn("checking state.dir's permissions failed", zap.Error(err))
	}
	for _, e := range found {
		log.Warn("state.dir holds the audit signing key, the hash key and the key store, and group or others can reach this path; close it",
			zap.String("path", e.Path), zap.String("mode", e.Octal()), zap.String("run", e.Fix))
	}
}
