package harness

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stellwerk/stellwerk/internal/config"
	"github.com/stellwerk/stellwerk/internal/testcert"
	"github.com/stellwerk/stellwerk/internal/testsrv"
)

// Replicas are several stellwerk replicas behind one Envoy, as a platform
// runs them for availability: Envoy, booted from envoy/bootstrap-mtls.yaml
// with every replica listed under its ext_proc and xDS clusters (mutual
// TLS, gRPC health checks), sends each request's ext_proc streams to a
// healthy replica and takes its configuration from one of them. The
// replicas share Redis and PostgreSQL, as a fleet does. Everything is on
// 127.0.0.1 and stopped in t.Cleanup.
type Replicas struct {
	// Stellwerks are the replicas (their Envoy fields are the shared
	// Envoy's); Kill, Stop and Restart one by its Stack.
	Stellwerks []*Stack
	// URL and EnvoyAdmin are the one Envoy's listener and admin API.
	URL, EnvoyAdmin string
	Providers       map[string]*Provider
	envoy           *Stack // the Envoy process's logs
}

// StartReplicas brings up n replicas behind one Envoy with the options
// Start takes (MTLS is implied).
func StartReplicas(t testing.TB, n int, o Options) *Replicas {
	t.Helper()
	envoyBin, bin := prerequisites(t)
	redis := testsrv.Redis(t)
	dsn := testsrv.PostgresDSN(t)
	dir := t.TempDir()
	o.applyDefaults()
	o.MTLS = true
	certs, err := testcert.Write(dir)
	if err != nil {
		t.Fatal(err)
	}
	ps := startProviders(t, o.Providers, dir)
	shared := func(c *config.Config) {
		c.State.Redis = &config.Redis{Address: redis.Addr}
		c.State.Postgres = &config.StatePostgres{DSNEnv: PostgresDSNEnv}
		c.State.HashKey = config.SecretSource{Env: HashKeyEnv}
	}
	env := []string{PostgresDSNEnv + "=" + dsn, HashKeyEnv + "=" + randomToken(t, "hk-")}
	listenPort, envoyAdminPort := FreePort(t), FreePort(t)
	r := &Replicas{Providers: ps.providers}
	var endpoints []string
	for i := 0; i < n; i++ {
		label := fmt.Sprintf("replica-%c", 'a'+i)
		s := launch(t, o, ps, stackEnv{dir: filepath.Join(dir, label), envoy: envoyBin, bin: bin, label: label, state: shared, env: env,
			mtls: &certs, listenPort: listenPort, noEnvoy: true})
		r.Stellwerks = append(r.Stellwerks, s)
		endpoints = append(endpoints, s.Config.Server.GRPC)
	}
	r.URL = fmt.Sprintf("http://127.0.0.1:%d", listenPort)
	r.EnvoyAdmin = fmt.Sprintf("http://127.0.0.1:%d", envoyAdminPort)

	// The shipped bootstrap, with every replica under both clusters.
	src, err := os.ReadFile(filepath.Join(Root(), "envoy", "bootstrap-mtls.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	out := string(src)
	const one = "              - endpoint:\n                  address:\n                    socket_address: { address: stellwerk.internal, port_value: 18000 }\n"
	if strings.Count(out, one) != 2 {
		t.Fatalf("envoy/bootstrap-mtls.yaml no longer lists one endpoint per cluster as the harness expects")
	}
	var all strings.Builder
	for _, ep := range endpoints {
		host, port, _ := strings.Cut(ep, ":")
		all.WriteString(strings.ReplaceAll(one, "address: stellwerk.internal, port_value: 18000", "address: "+host+", port_value: "+port))
	}
	out = strings.ReplaceAll(out, one, all.String())
	for old, repl := range map[string]string{
		"/etc/envoy/tls/envoy.crt":        certs.ClientCert,
		"/etc/envoy/tls/envoy.key":        certs.ClientKey,
		"/etc/envoy/tls/stellwerk-ca.crt": certs.CA,
		"port_value: 9901":                fmt.Sprintf("port_value: %d", envoyAdminPort),
	} {
		out = strings.ReplaceAll(out, old, repl)
	}
	bootstrap := filepath.Join(dir, "envoy.yaml")
	if err := os.WriteFile(bootstrap, []byte(out), 0o600); err != nil {
		t.Fatal(err)
	}
	e := &Stack{t: t, Dir: dir, label: "envoy"}
	t.Cleanup(func() {
		if t.Failed() {
			e.DumpLogs()
		}
	})
	e.startProcess("envoy", os.Environ(), envoyBin, "-c", bootstrap, "--disable-hot-restart", "--log-level", "warn", "--concurrency", "2")
	r.envoy = e
	e.waitHTTP(r.URL+"/v1/models", 200, 30*time.Second)
	return r
}

// EnvoyLog is what the Envoy printed.
func (r *Replicas) EnvoyLog() string { return r.envoy.Log("envoy") }
