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
	"context"
	"crypto/rand"
	"crypto/tls"
	"encoding/hex"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
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
	// EnvoyVia is a script Envoy is started through, relative to the
	// repository root (compose/envoy/drain.sh): it gets Envoy's arguments,
	// and ENVOY and ENVOY_ADMIN_PORT in its environment.
	EnvoyVia string
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
		env, bin := os.Environ(), se.envoy
		if o.EnvoyVia != "" {
			env = append(env, "ENVOY="+se.envoy, fmt.Sprintf("ENVOY_ADMIN_PORT=%d", envoyAdminPort))
			bin = filepath.Join(Root(), o.EnvoyVia)
		}
		s.startProcess("envoy", env, bin, "-c", bootstrap, "--disable-hot-restart",
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

// stackStartTimeout bounds how long a stack may take to answer: 30 s was
// once not enough for Envoy and stellwerk starting beside a dozen other
// end-to-end stacks on two busy cores.
const stackStartTimeout = 60 * time.Second
