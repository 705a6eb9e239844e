package config

import (
	"fmt"
	"path/filepath"
	"time"
)

// State is where stellwerk keeps what changes while it runs: virtual keys
// and provider keys (an embedded SQLite file in Dir by default, PostgreSQL
// when Postgres names a DSN, for a fleet of replicas: docs/keys.md), the
// ledger's counters (LedgerState, inlined: docs/budgets.md), and later the
// audit log and route versions.
type State struct {
	LedgerState `yaml:",inline"`
	// Dir holds the SQLite file (stellwerk.db) and, unless HashKey says
	// otherwise, the generated hash key. Relative to the config file;
	// default "state" beside it. Created with mode 0700.
	Dir string `yaml:"dir,omitempty"`
	// Postgres, when set, keeps the state in PostgreSQL instead of Dir.
	Postgres *StatePostgres `yaml:"postgres,omitempty"`
	// HashKey is the HMAC-SHA256 key virtual keys are stored under (at
	// least 32 bytes). Unset with SQLite: generated once into Dir/hash.key.
	// Required with PostgreSQL: every replica must hash alike, and the key
	// must not live in the database it protects.
	HashKey SecretSource `yaml:"hash_key,omitempty"`
	// MasterKeys encrypt provider keys at rest (AES-256-GCM). The first
	// encrypts; the others only decrypt what was written under them until
	// `stellwerk keys rotate-master` re-encrypts it. Each is 32 bytes given
	// as base64 or 64 hex digits.
	MasterKeys []MasterKey `yaml:"master_keys,omitempty"`
	// RefreshInterval is how often each replica polls the store for key
	// changes (revocations included); at most 500ms, default 250ms.
	RefreshInterval time.Duration `yaml:"refresh_interval,omitempty"`
}

// StatePostgres names where the PostgreSQL DSN is: never in this file, as it
// carries a password.
type StatePostgres struct {
	// DSNEnv names an environment variable holding the DSN.
	DSNEnv string `yaml:"dsn_env,omitempty"`
	// DSNFile names a file holding the DSN (a mounted secret).
	DSNFile string `yaml:"dsn_file,omitempty"`
}

// SecretSource says where a secret comes from: an environment variable or
// a file. The secret itself is never in the config.
type SecretSource struct {
	Env  string `yaml:"env,omitempty"`
	File string `yaml:"file,omitempty"`
}

// IsSet reports whether the source names anything.
func (s SecretSource) IsSet() bool { return s.Env != "" || s.File != "" }

// MasterKey is one named AES-256 key for provider keys at rest.
type MasterKey struct {
	ID   string `yaml:"id"`
	Env  string `yaml:"env,omitempty"`
	File string `yaml:"file,omitempty"`
}

// Source returns where the key material is.
func (m MasterKey) Source() SecretSource { return SecretSource{Env: m.Env, File: m.File} }

// DefaultStateDir is the state directory beside the config file.
const DefaultStateDir = "state"

// DefaultRefreshInterval is how often replicas poll the key store.
const DefaultRefreshInterval = 250 * time.Millisecond

// MaxRefreshInterval keeps revocation within a second on every replica.
const MaxRefreshInterval = 500 * time.Millisecond

// resolveState makes the state paths absolute against the config file's
// directory.
func (c *Config) resolveState(base string) {
	abs := func(p *string) {
		if *p != "" && !filepath.IsAbs(*p) {
			*p = filepath.Join(base, *p)
		}
	}
	if c.State.Dir == "" {
		c.State.Dir = DefaultStateDir
	}
	abs(&c.State.Dir)
	abs(&c.State.HashKey.File)
	if c.State.Postgres != nil {
		abs(&c.State.Postgres.DSNFile)
	}
	for i := range c.State.MasterKeys {
		abs(&c.State.MasterKeys[i].File)
	}
}

// validateState checks the state section.
func (c *Config) validateState() []error {
	var errs []error
	bad := func(field, format string, args ...any) {
		errs = append(errs, fmt.Errorf("%s: %s", field, fmt.Sprintf(format, args...)))
	}
	s := c.State
	source := func(field string, src SecretSource, required bool) {
		switch {
		case src.Env != "" && src.File != "":
			bad(field, "set env or file, not both")
		case src.Env != "" && !envRE.MatchString(src.Env):
			bad(field+".env", "%q is not an environment variable name", src.Env)
		case required && !src.IsSet():
			bad(field, "required: env (a variable holding it) or file")
		}
	}
	if s.Postgres != nil {
		p := s.Postgres
		switch {
		case (p.DSNEnv == "") == (p.DSNFile == ""):
			bad("state.postgres", "set exactly one of dsn_env (a variable holding the DSN) or dsn_file; the DSN itself never goes in this file")
		case p.DSNEnv != "" && !envRE.MatchString(p.DSNEnv):
			bad("state.postgres.dsn_env", "%q is not an environment variable name", p.DSNEnv)
		}
		source("state.hash_key", s.HashKey, true)
	} else {
		source("state.hash_key", s.HashKey, false)
	}
	ids := map[string]bool{}
	for i, m := range s.MasterKeys {
		f := fmt.Sprintf("state.master_keys[%d]", i)
		if !nameRE.MatchString(m.ID) || ids[m.ID] {
			bad(f+".id", "%q must be a unique lower-case name", m.ID)
		}
		ids[m.ID] = true
		source(f, m.Source(), true)
	}
	if s.RefreshInterval < 0 || s.RefreshInterval > MaxRefreshInterval {
		bad("state.refresh_interval", "must be between 0 (default %s) and %s, so a revocation reaches every replica within a second",
			DefaultRefreshInterval, MaxRefreshInterval)
	}
	return errs
}

// MemoryBudgetsOnSharedStore is a warning for a config that keeps its state
// in PostgreSQL, where any number of replicas may share it, but counts
// budgets and rate limits in memory, each replica its own: two replicas
// each admit a budget's whole amount (the growth probe, 2026-12-07: 122 %
// of a key's budget spent through two). "" otherwise.
func MemoryBudgetsOnSharedStore(c *Config) string {
	if c.State.Postgres == nil || c.State.Redis != nil {
		return ""
	}
	return "state.postgres without state.redis: budgets and rate limits are counted in this replica's memory, " +
		"so each replica on this database enforces them alone; run one replica, or add state.redis (docs/deploy.md)"
}
