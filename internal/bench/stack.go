package bench

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/stellwerk/stellwerk/internal/config"
	"github.com/stellwerk/stellwerk/internal/mockllm"
	"github.com/stellwerk/stellwerk/internal/testcert"
)

// providerKey is what the fake provider requires. Clients send it to both
// Envoys: the baseline passes it through, stellwerk removes it and injects
// its own copy from the config's credential, so both paths carry the same
// header to the provider.
const providerKey = "sk-bench-provider"

// modelID is the one model of the generated config.
const modelID = "bench-model"

// StackOptions says how to find and start the processes of a stack.
type StackOptions struct {
	Root  string // repository root (envoy/bootstrap.yaml is read from here)
	Envoy string // Envoy binary
	// StellwerkArgv starts stellwerk without its config flags, e.g.
	// ["bin/stellwerk", "serve"]; "--config FILE --log-level warn" is appended.
	StellwerkArgv    []string
	EnvoyConcurrency int
	// Shape of stellwerk's configuration: ShapeProduction (the default) or
	// ShapeOneModel.
	Shape string
	// Baseline also starts Envoy A, the direct route to the provider.
	Baseline bool
	// NoopArgv, when set, also starts the floor: the no-op ext_proc server
	// (NoopArgv + "--socket PATH", e.g. ["stellwerk-bench", "noop-extproc"])
	// and Envoy F, which routes straight to the provider through it.
	NoopArgv []string
	// Transport is how Envoy B reaches stellwerk's gRPC port: "unix" (the
	// default, envoy/bootstrap.yaml) or "mtls" (loopback TCP with mutual
	// TLS, envoy/bootstrap-mtls.yaml and throwaway certificates). Envoy F
	// always reaches the no-op server over a Unix socket.
	Transport string
	// Ledger is where the production shape's budgets and rate limits live:
	// LedgerMemory (the default), LedgerRedis (a redis-server the bench
	// starts on loopback) or LedgerNone (no budgets, no rate limits).
	Ledger string
	// MaxAttempts sets the production shape's failover.max_attempts; 0
	// keeps the config's default.
	MaxAttempts int
	// FirstByteTimeout sets the production shape's
	// failover.stream_first_byte_timeout; 0 keeps the config's default,
	// and the attempt timeout (60s) turns it off, which lets a stream's
	// first attempt go straight to its provider (docs/failover.md).
	FirstByteTimeout time.Duration
	// FloorMode is the processing mode of Envoy F's ext_proc filter:
	// FloorOne (the default: the request body alone, one round trip, the
	// floor issue 12 measures against) or FloorPipelined (every phase
	// stellwerk's client-facing filter has, in its pipelined mode: what
	// those messages cost by themselves, with nothing done for them).
	FloorMode string
	// Tenants, in the production shape, adds its workspaces to the config
	// and makes its keys through the admin API once stellwerk is up
	// (Stack.TenantKeys); the zero value is the one bench key.
	Tenants Tenants
	// AccessLog turns on the access log of Envoy B (envoy.access_log), whose
	// lines say how long Envoy waited for stellwerk in each ext_proc phase
	// (a cost the baselines lack: for `profile --phases`, not `run`).
	AccessLog bool
	Dir       string    // for configs and logs
	Progress  io.Writer // one line per step
}

// Envoy F's processing modes (StackOptions.FloorMode).
const (
	FloorOne       = "one"
	FloorPipelined = "pipelined"
)

// FloorModes lists the floor's modes, the default first.
var FloorModes = []string{FloorOne, FloorPipelined}

// Stack is the fake provider, Envoy B with stellwerk and, optionally, Envoy A
// and the floor (Envoy F with the no-op ext_proc server).
type Stack struct {
	Provider       *mockllm.Provider
	ProviderURL    string // base URL, http://127.0.0.1:N/v1
	BaselineURL    string // Envoy A listener ("" without a baseline)
	FloorURL       string // Envoy F listener ("" without a floor)
	StellwerkURL   string // Envoy B listener
	BaselineAdmin  string
	FloorAdmin     string
	EnvoyAdmin     string // Envoy B admin
	StellwerkAdmin string
	// AdminToken opens StellwerkAdmin with role operator (/version,
	// /debug/vars); random per stack.
	AdminToken string
	// StellwerkHeaders are what a client sends to Envoy B: the virtual key
	// in the production shape. DirectHeaders are what it sends to Envoy A
	// and F, which pass them to the provider.
	StellwerkHeaders, DirectHeaders map[string]string
	// TenantKeys are the secrets of StackOptions.Tenants' keys, workspace
	// by workspace; a client spreads its requests over them (Target.Keys).
	TenantKeys []string
	// Shape is the shape stellwerk runs; Models the catalog's model count.
	Shape  string
	Models int
	// Notes say what the stack saw while starting (e.g. pinned models the
	// policy refused while priming).
	Notes []string

	envoyA, envoyB, envoyF, stellwerk, noop *process
	redis                                   *process // with --ledger redis
	redisAddr                               string
	providerSrv                             *http.Server
	stopReset                               context.CancelFunc
	sockDir                                 string
}

// StartStack brings the stack up; on error everything started is stopped.
func StartStack(ctx context.Context, o StackOptions) (*Stack, error) {
	for try := 1; ; try++ {
		s, err := startStack(ctx, o)
		// Every port was free when it was picked, but another process
		// (another test binary, a CI job) may bind one first, and Envoy
		// then exits at start-up: start again on other ports (the
		// stellwerk admin port is retried on its own below).
		if err == nil || try == 3 || !strings.Contains(strings.ToLower(err.Error()), "address already in use") {
			return s, err
		}
		progress(o.Progress, "a port was taken meanwhile; starting again on others")
	}
}

func startStack(ctx context.Context, o StackOptions) (_ *Stack, err error) {
	s := &Stack{Shape: cmpOr(o.Shape, ShapeProduction)}
	o.Shape = s.Shape
	defer func() {
		if err != nil {
			s.Close()
		}
	}()
	if o.EnvoyConcurrency <= 0 {
		o.EnvoyConcurrency = 2
	}
	if o.FloorMode = cmpOr(o.FloorMode, FloorOne); !slices.Contains(FloorModes, o.FloorMode) {
		return nil, fmt.Errorf("bench: floor mode %q, want one of %s", o.FloorMode, strings.Join(FloorModes, ", "))
	}

	// The fake provider runs in this process. It records every request, so a
	// loop forgets them once a second; a bench sends gigabytes of bodies.
	s.Provider = mockllm.New("bench", providerKey)
	pl, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	providerPort := pl.Addr().(*net.TCPAddr).Port
	s.ProviderURL = fmt.Sprintf("http://127.0.0.1:%d/v1", providerPort)

	ports, err := freePorts(8)
	if err != nil {
		pl.Close()
		return nil, err
	}
	grpcPort, adminPort, listenB, adminB, listenA, adminA, listenF, adminF := ports[0], ports[1], ports[2], ports[3], ports[4], ports[5], ports[6], ports[7]

	// stellwerk's config, then the fake provider (which must know the
	// catalog's credentials), then stellwerk and Envoy B booted from the
	// project's bootstrap.
	grpc, err := s.grpcTransport(o, grpcPort)
	if err != nil {
		pl.Close()
		return nil, err
	}
	if o.Ledger == LedgerRedis {
		if err := s.startRedis(o); err != nil {
			pl.Close()
			return nil, err
		}
	}
	cfgPath, cat, env, err := writeShape(o, grpc.config, adminPort, listenB, providerPort, s.redisAddr)
	if err != nil {
		pl.Close()
		return nil, err
	}
	var handler http.Handler = s.Provider
	s.DirectHeaders = map[string]string{"Authorization": "Bearer " + providerKey}
	s.StellwerkHeaders = s.DirectHeaders
	s.Models = 1
	if cat != nil {
		handler = providerKeys(s.Provider, cat.providers)
		s.StellwerkHeaders = map[string]string{"Authorization": "Bearer " + virtualKey}
		s.Models = len(cat.models)
	}
	s.providerSrv = &http.Server{Handler: handler, ReadHeaderTimeout: 10 * time.Second}
	go func() { _ = s.providerSrv.Serve(pl) }()
	resetCtx, stopReset := context.WithCancel(context.Background())
	s.stopReset = stopReset
	go func() {
		t := time.NewTicker(time.Second)
		defer t.Stop()
		for {
			select {
			case <-resetCtx.Done():
				return
			case <-t.C:
				s.Provider.Reset()
			}
		}
	}()

	if _, err := config.Load(cfgPath); err != nil {
		return nil, fmt.Errorf("generated stellwerk config (%s shape) no longer loads (update internal/bench): %w", o.Shape, err)
	}
	s.StellwerkAdmin = fmt.Sprintf("http://127.0.0.1:%d", adminPort)
	if s.AdminToken, err = randomToken(); err != nil {
		return nil, err
	}
	s.StellwerkURL = fmt.Sprintf("http://127.0.0.1:%d", listenB)
	s.EnvoyAdmin = fmt.Sprintf("http://127.0.0.1:%d", adminB)
	argv := append(append([]string(nil), o.StellwerkArgv[1:]...), "--config", cfgPath, "--log-level", "warn")
	env = append(append(os.Environ(), env...), "STELLWERK_BENCH_ADMIN_TOKEN="+s.AdminToken)
	var adminToken string // role admin, to make the tenants' keys
	if cat != nil && o.Tenants.Keys() > 0 {
		if adminToken, err = randomToken(); err != nil {
			return nil, err
		}
		env = append(env, "STELLWERK_BENCH_ADMIN_TOKEN_ADMIN="+adminToken)
	}
	progress(o.Progress, "starting stellwerk (%s, %s shape)", o.StellwerkArgv[0], o.Shape)
	for try := 1; ; try++ {
		if s.stellwerk, err = startProcess("stellwerk", filepath.Join(o.Dir, "stellwerk.log"), env, o.StellwerkArgv[0], argv...); err != nil {
			return nil, err
		}
		err = waitHTTP(ctx, s.StellwerkAdmin+"/readyz", 200, 30*time.Second, s.stellwerk)
		if err == nil {
			break
		}
		// The admin port was free when it was picked, but another process
		// (another test binary) may bind it first: take another one.
		if try == 3 || !s.stellwerk.exited() || !strings.Contains(s.stellwerk.logTail(4000), "address already in use") {
			return nil, err
		}
		ports, perr := freePorts(1)
		if perr != nil {
			return nil, perr
		}
		s.StellwerkAdmin = fmt.Sprintf("http://127.0.0.1:%d", ports[0])
		argv = append(argv, "--admin", fmt.Sprintf("127.0.0.1:%d", ports[0])) // the last flag wins
	}
	bootB, err := rewriteBootstrap(filepath.Join(o.Root, "envoy", grpc.bootstrap), grpc.replace, adminB, listenB)
	if err != nil {
		return nil, err
	}
	bootBPath := filepath.Join(o.Dir, "envoy-stellwerk.yaml")
	if err := os.WriteFile(bootBPath, []byte(bootB), 0o600); err != nil {
		return nil, err
	}
	progress(o.Progress, "starting Envoy B (with stellwerk)")
	if s.envoyB, err = startEnvoy(o, "envoy-stellwerk", bootBPath); err != nil {
		return nil, err
	}
	if err := waitHTTPWith(ctx, s.StellwerkURL+"/v1/models", s.StellwerkHeaders, 200, 30*time.Second, s.envoyB); err != nil {
		return nil, err
	}
	if cat != nil {
		progress(o.Progress, "priming stellwerk: one request per catalog model, then model auto")
		refused, err := prime(ctx, s, cat)
		if err != nil {
			return nil, fmt.Errorf("%w\n%s", err, s.Logs())
		}
		if len(refused) > 0 {
			s.Notes = append(s.Notes, fmt.Sprintf("priming: %d of %d pinned models were not answered (so keep their seed latency): %s",
				len(refused), len(cat.models), strings.Join(refused, ", ")))
		}
		if err := s.startTenants(ctx, o, adminToken); err != nil {
			return nil, fmt.Errorf("%w\n%s", err, s.Logs())
		}
	}

	if o.Baseline {
		s.BaselineURL = fmt.Sprintf("http://127.0.0.1:%d", listenA)
		s.BaselineAdmin = fmt.Sprintf("http://127.0.0.1:%d", adminA)
		bootAPath := filepath.Join(o.Dir, "envoy-direct.yaml")
		if err := os.WriteFile(bootAPath, []byte(directBootstrap(adminA, listenA, providerPort, "", "")), 0o600); err != nil {
			return nil, err
		}
		progress(o.Progress, "starting Envoy A (baseline, direct route)")
		if s.envoyA, err = startEnvoy(o, "envoy-direct", bootAPath); err != nil {
			return nil, err
		}
		if err := waitHTTP(ctx, s.BaselineAdmin+"/ready", 200, 30*time.Second, s.envoyA); err != nil {
			return nil, err
		}
	}

	if len(o.NoopArgv) > 0 {
		dir, err := s.socketDir()
		if err != nil {
			return nil, err
		}
		sock := filepath.Join(dir, "noop.sock")
		progress(o.Progress, "starting the no-op ext_proc server (%s)", o.NoopArgv[0])
		argv := append(append([]string(nil), o.NoopArgv[1:]...), "--socket", sock)
		if s.noop, err = startProcess("noop-extproc", filepath.Join(o.Dir, "noop-extproc.log"), os.Environ(), o.NoopArgv[0], argv...); err != nil {
			return nil, err
		}
		if err := waitSocket(ctx, sock, 10*time.Second, s.noop); err != nil {
			return nil, err
		}
		s.FloorURL = fmt.Sprintf("http://127.0.0.1:%d", listenF)
		s.FloorAdmin = fmt.Sprintf("http://127.0.0.1:%d", adminF)
		bootFPath := filepath.Join(o.Dir, "envoy-floor.yaml")
		if err := os.WriteFile(bootFPath, []byte(directBootstrap(adminF, listenF, providerPort, sock, o.FloorMode)), 0o600); err != nil {
			return nil, err
		}
		progress(o.Progress, "starting Envoy F (the floor: direct route through the no-op ext_proc server)")
		if s.envoyF, err = startEnvoy(o, "envoy-floor", bootFPath); err != nil {
			return nil, err
		}
		if err := waitHTTP(ctx, s.FloorAdmin+"/ready", 200, 30*time.Second, s.envoyF); err != nil {
			return nil, err
		}
	}
	return s, nil
}

// socketDir is a short directory for Unix sockets (their paths are limited
// to about 100 bytes), made once per stack.
func (s *Stack) socketDir() (string, error) {
	if s.sockDir == "" {
		dir, err := os.MkdirTemp("", "sw-bench-")
		if err != nil {
			return "", err
		}
		s.sockDir = dir
	}
	return s.sockDir, nil
}

// waitSocket waits until something accepts connections on the Unix socket.
func waitSocket(ctx context.Context, path string, within time.Duration, p *process) error {
	deadline := time.Now().Add(within)
	for time.Now().Before(deadline) {
		if p.exited() {
			return fmt.Errorf("%s exited during start-up:\n%s", p.name, p.logTail(4000))
		}
		if c, err := net.Dial("unix", path); err == nil {
			c.Close()
			return nil
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(20 * time.Millisecond):
		}
	}
	return fmt.Errorf("%s did not listen on %s within %s:\n%s", p.name, path, within, p.logTail(4000))
}

func startEnvoy(o StackOptions, name, bootstrap string) (*process, error) {
	return startProcess(name, filepath.Join(o.Dir, name+".log"), os.Environ(), o.Envoy,
		"-c", bootstrap, "--disable-hot-restart", "--log-level", "warn",
		"--concurrency", fmt.Sprint(o.EnvoyConcurrency), "--file-flush-interval-msec", "500")
}

// startRedis starts a redis-server on a loopback port, without persistence,
// for the production shape's budgets and rate limits (--ledger redis).
func (s *Stack) startRedis(o StackOptions) error {
	bin, err := exec.LookPath("redis-server")
	if err != nil {
		return fmt.Errorf("--ledger redis needs redis-server (Debian: apt-get install redis-server): %w", err)
	}
	ports, err := freePorts(1)
	if err != nil {
		return err
	}
	s.redisAddr = fmt.Sprintf("127.0.0.1:%d", ports[0])
	progress(o.Progress, "starting redis-server on %s", s.redisAddr)
	s.redis, err = startProcess("redis", filepath.Join(o.Dir, "redis.log"), os.Environ(), bin,
		"--bind", "127.0.0.1", "--port", fmt.Sprint(ports[0]), "--save", "", "--appendonly", "no", "--dir", o.Dir)
	if err != nil {
		return err
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		c, err := net.DialTimeout("tcp", s.redisAddr, time.Second)
		if err == nil {
			c.Close()
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("redis-server did not listen on %s: %w", s.redisAddr, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// Close stops every process and the provider; it is safe on a partial stack.
func (s *Stack) Close() {
	for _, p := range []*process{s.envoyA, s.envoyF, s.envoyB, s.stellwerk, s.noop, s.redis} {
		p.stop(10 * time.Second)
	}
	if s.providerSrv != nil {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		_ = s.providerSrv.Shutdown(ctx)
		cancel()
	}
	if s.stopReset != nil {
		s.stopReset()
	}
	if s.sockDir != "" {
		os.RemoveAll(s.sockDir)
	}
}

// Logs is the tail of every process's log, for a failure report.
func (s *Stack) Logs() string {
	var b strings.Builder
	for _, p := range []*process{s.stellwerk, s.envoyB, s.envoyA, s.noop, s.envoyF} {
		if p != nil {
			fmt.Fprintf(&b, "==== %s ====\n%s\n", p.name, p.logTail(4000))
		}
	}
	return b.String()
}

// transport is how Envoy B reaches stellwerk: the server block of its
// config, the bootstrap, and what changes in the bootstrap.
type transport struct {
	config    string // YAML lines under server:
	bootstrap string // in envoy/
	replace   map[string]string
}

func (s *Stack) grpcTransport(o StackOptions, grpcPort int) (transport, error) {
	var srv config.Server
	var files testcert.Files
	switch o.Transport {
	case "", "unix":
		dir, err := s.socketDir()
		if err != nil {
			return transport{}, err
		}
		srv.GRPC = config.UnixSocketPrefix + filepath.Join(dir, "grpc.sock")
	case "mtls":
		var err error
		if files, err = testcert.Write(o.Dir); err != nil {
			return transport{}, err
		}
		srv.GRPC, srv.GRPCTLS = fmt.Sprintf("127.0.0.1:%d", grpcPort), files.ServerTLS()
	default:
		return transport{}, fmt.Errorf("transport %q: want unix or mtls", o.Transport)
	}
	yml, err := yaml.Marshal(struct {
		GRPC    string          `yaml:"grpc"`
		GRPCTLS *config.GRPCTLS `yaml:"grpc_tls,omitempty"`
	}{srv.GRPC, srv.GRPCTLS})
	if err != nil {
		return transport{}, err
	}
	bootstrap, replace := testcert.Bootstrap(srv, files)
	return transport{config: indent(string(yml)), bootstrap: bootstrap, replace: replace}, nil
}

// freePorts returns n loopback ports that were free a moment ago, all
// distinct (they are held open together).
func freePorts(n int) ([]int, error) {
	var ls []net.Listener
	defer func() {
		for _, l := range ls {
			l.Close()
		}
	}()
	var ports []int
	for range n {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, err
		}
		ls = append(ls, l)
		ports = append(ports, l.Addr().(*net.TCPAddr).Port)
	}
	return ports, nil
}

// waitHTTP polls url until it answers want, the process dies, or time runs out.
func waitHTTP(ctx context.Context, url string, want int, within time.Duration, p *process) error {
	return waitHTTPWith(ctx, url, nil, want, within, p)
}

// waitHTTPWith is waitHTTP sending headers.
func waitHTTPWith(ctx context.Context, url string, headers map[string]string, want int, within time.Duration, p *process) error {
	deadline := time.Now().Add(within)
	last := "no answer"
	for time.Now().Before(deadline) {
		if p != nil && p.exited() {
			return fmt.Errorf("%s exited during start-up:\n%s", p.name, p.logTail(4000))
		}
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
		for k, v := range headers {
			req.Header.Set(k, v)
		}
		resp, err := http.DefaultClient.Do(req)
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == want {
				return nil
			}
			last = resp.Status
		} else {
			last = err.Error()
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(50 * time.Millisecond):
		}
	}
	msg := fmt.Sprintf("%s did not answer %d within %s (last: %s)", url, want, within, last)
	if p != nil {
		msg += "\n" + p.name + " log:\n" + p.logTail(4000)
	}
	return errors.New(msg)
}

func progress(w io.Writer, format string, args ...any) {
	if w != nil {
		fmt.Fprintf(w, "bench: "+format+"\n", args...)
	}
}

// mockBehavior makes the fake provider wait delay before its first byte.
func mockBehavior(delay time.Duration) mockllm.Behavior {
	return mockllm.Behavior{FirstByteDelay: delay}
}
