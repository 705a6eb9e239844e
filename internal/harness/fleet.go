package harness

import (
	"fmt"
	"path/filepath"
	"testing"

	"github.com/stellwerk/stellwerk/internal/config"
	"github.com/stellwerk/stellwerk/internal/testsrv"
)

// Fleet is several stellwerk replicas as a platform runs them: each behind
// its own Envoy (a load balancer would spread clients over the Envoys), all
// sharing one Redis (state.redis: budgets and rate limits), one PostgreSQL
// database (state.postgres: virtual keys) and the fake providers. Every
// process is on 127.0.0.1 and stopped in t.Cleanup.
type Fleet struct {
	// Replicas are the stacks, one Envoy and one stellwerk each; their
	// Providers are the fleet's.
	Replicas  []*Stack
	Providers map[string]*Provider
	// Redis is the shared counter store; a test may Stop it.
	Redis *testsrv.RedisServer
}

// Names of the environment variables that give every replica the shared
// PostgreSQL DSN and the hash key virtual keys are stored under.
const (
	PostgresDSNEnv = "STELLWERK_TEST_PG_DSN"
	HashKeyEnv     = "STELLWERK_TEST_HASH_KEY"
)

// StartFleet brings up n replicas with the options Start takes. Their
// state section points at the shared Redis and PostgreSQL before
// o.Mutate runs, so a test can still change it (state.redis.on_unavailable,
// say). The PostgreSQL server is the test binary's shared one
// (testsrv.PostgresDSN: call testsrv.Main from TestMain); the test is
// skipped when STELLWERK_STORE_TESTS=skip.
func StartFleet(t testing.TB, n int, o Options) *Fleet {
	t.Helper()
	if n < 1 {
		t.Fatalf("a fleet of %d replicas", n)
	}
	envoyBin, bin := prerequisites(t)
	redis := testsrv.Redis(t)
	dsn := testsrv.PostgresDSN(t)
	dir := t.TempDir()
	o.applyDefaults()
	ps := startProviders(t, o.Providers, dir)
	f := &Fleet{Providers: ps.providers, Redis: redis}
	shared := func(c *config.Config) {
		c.State.Redis = &config.Redis{Address: redis.Addr}
		c.State.Postgres = &config.StatePostgres{DSNEnv: PostgresDSNEnv}
		c.State.HashKey = config.SecretSource{Env: HashKeyEnv}
	}
	env := []string{PostgresDSNEnv + "=" + dsn, HashKeyEnv + "=" + randomToken(t, "hk-")}
	for i := 0; i < n; i++ {
		label := fmt.Sprintf("replica-%c", 'a'+i)
		f.Replicas = append(f.Replicas, launch(t, o, ps, stackEnv{
			dir: filepath.Join(dir, label), envoy: envoyBin, bin: bin, label: label, state: shared, env: env}))
	}
	return f
}
