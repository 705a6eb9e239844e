package config

import (
	"fmt"
	"path/filepath"
	"slices"
	"sort"
	"time"
)

// Audit is the tamper-evident audit log (docs/audit.md): one record per
// request and per change of keys, policy, config and admin state, hash
// chained per writer, with signed checkpoints, kept in the state store.
type Audit struct {
	// Enabled defaults to true: a stellwerk without an audit log is an
	// explicit choice (enabled: false).
	Enabled *bool `yaml:"enabled,omitempty"`
	// Writer names this replica in the writer id (<writer>-<boot id>);
	// default: the host name.
	Writer string `yaml:"writer,omitempty"`
	// BatchInterval is the longest a record waits before its group commit
	// (default 50ms, at most 1s); a crash loses at most about this much.
	BatchInterval time.Duration `yaml:"batch_interval,omitempty"`
	// BatchSize commits a batch early when it holds this many records
	// (default 512, at most 4096).
	BatchSize int `yaml:"batch_size,omitempty"`
	// Buffer is how many records the request path may queue ahead of the
	// writer (default 65536). A full buffer drops the record, counted and
	// logged; Healthy turns false well before.
	Buffer int `yaml:"buffer,omitempty"`
	// OnStoreDown is refuse (Healthy is false while records cannot be
	// written: the edge answers 503) or spool (records go to a local file
	// under SpoolDir and reach the store when it is back). Default spool.
	OnStoreDown string `yaml:"on_store_down,omitempty"`
	// SpoolDir holds the spool files; default <state.dir>/audit-spool
	// (resolved when the log opens, after a --state-dir override).
	SpoolDir string `yaml:"spool_dir,omitempty"`
	// SigningKey is the Ed25519 key checkpoints are signed with: a PEM
	// PKCS#8 private key or a base64 32-byte seed, from env or file.
	// Unset: generated once into <state.dir>/audit-signing.key. A fleet on
	// PostgreSQL should set it, so every replica signs with one key kept out
	// of the database it protects (`config check` warns otherwise).
	SigningKey SecretSource `yaml:"signing_key,omitempty"`
	// CheckpointInterval is how often a signed checkpoint covers the chain
	// (default 1m, between 1s and 1h); one is also written on shutdown.
	CheckpointInterval time.Duration `yaml:"checkpoint_interval,omitempty"`
	// Retention removes records older than this, per workspace.
	Retention AuditRetention `yaml:"retention,omitempty"`
	// Content is opt-in storage of prompt and answer text per workspace.
	Content AuditContent `yaml:"content,omitempty"`
}

// AuditRetention says how long records are kept. Zero keeps them forever.
type AuditRetention struct {
	// Default applies to workspaces not listed (0: forever).
	Default time.Duration `yaml:"default,omitempty"`
	// Workspaces overrides Default per workspace name (0: forever).
	Workspaces map[string]time.Duration `yaml:"workspaces,omitempty"`
	// Interval is how often retention runs (default 1h).
	Interval time.Duration `yaml:"interval,omitempty"`
}

// AuditContent lists the workspaces whose records carry the request's
// messages and the answer, with personal data and secrets replaced by typed
// placeholders ([EMAIL], [SECRET:aws_access_key]) before writing. No
// workspace stores content unless listed.
type AuditContent struct {
	Workspaces []string `yaml:"workspaces,omitempty"`
}

// Audit defaults and bounds.
const (
	DefaultAuditBatchInterval      = 50 * time.Millisecond
	MaxAuditBatchInterval          = time.Second
	DefaultAuditBatchSize          = 512
	MaxAuditBatchSize              = 4096
	DefaultAuditBuffer             = 65536
	DefaultAuditCheckpointInterval = time.Minute
	DefaultAuditRetentionInterval  = time.Hour
	AuditRefuse                    = "refuse"
	AuditSpool                     = "spool"
	// MinAuditRetention keeps a typo (1h meant as 1 year) from wiping the
	// log: retention is at least a day.
	MinAuditRetention = 24 * time.Hour
)

// AuditOnStoreDown are the values of audit.on_store_down.
var AuditOnStoreDown = []string{AuditRefuse, AuditSpool}

// IsEnabled reports whether the audit log is on (the default).
func (a Audit) IsEnabled() bool { return a.Enabled == nil || *a.Enabled }

// RetentionFor is how long a workspace's records are kept (0: forever).
func (a Audit) RetentionFor(workspace string) time.Duration {
	if d, ok := a.Retention.Workspaces[workspace]; ok {
		return d
	}
	return a.Retention.Default
}

// StoresContent reports whether a workspace opted in to content storage.
func (a Audit) StoresContent(workspace string) bool {
	return slices.Contains(a.Content.Workspaces, workspace)
}

func (c *Config) applyAuditDefaults() {
	a := &c.Audit
	if a.Enabled == nil {
		t := true
		a.Enabled = &t
	}
	if a.BatchInterval == 0 {
		a.BatchInterval = DefaultAuditBatchInterval
	}
	if a.BatchSize == 0 {
		a.BatchSize = DefaultAuditBatchSize
	}
	if a.Buffer == 0 {
		a.Buffer = DefaultAuditBuffer
	}
	if a.OnStoreDown == "" {
		a.OnStoreDown = AuditSpool
	}
	if a.CheckpointInterval == 0 {
		a.CheckpointInterval = DefaultAuditCheckpointInterval
	}
	if a.Retention.Interval == 0 {
		a.Retention.Interval = DefaultAuditRetentionInterval
	}
}

// resolveAudit makes the audit paths absolute against the config file's
// directory.
func (c *Config) resolveAudit(base string) {
	for _, p := range []*string{&c.Audit.SpoolDir, &c.Audit.SigningKey.File} {
		if *p != "" && !filepath.IsAbs(*p) {
			*p = filepath.Join(base, *p)
		}
	}
}

// validateAudit checks the audit section, naming each field at fault.
func (c *Config) validateAudit() []error {
	var errs []error
	bad := func(field, format string, args ...any) {
		errs = append(errs, fmt.Errorf("%s: %s", field, fmt.Sprintf(format, args...)))
	}
	a := c.Audit
	if a.Writer != "" && !nameRE.MatchString(a.Writer) {
		bad("audit.writer", "%q must be a lower-case name (letters, digits, - and _)", a.Writer)
	}
	if a.BatchInterval < 0 || a.BatchInterval > MaxAuditBatchInterval {
		bad("audit.batch_interval", "must be between 0 (default %s) and %s", DefaultAuditBatchInterval, MaxAuditBatchInterval)
	}
	if a.BatchSize < 0 || a.BatchSize > MaxAuditBatchSize {
		bad("audit.batch_size", "must be between 0 (default %d) and %d", DefaultAuditBatchSize, MaxAuditBatchSize)
	}
	if a.Buffer < 0 || (a.Buffer > 0 && a.Buffer < a.BatchSize) {
		bad("audit.buffer", "must be at least audit.batch_size (%d)", a.BatchSize)
	}
	if a.OnStoreDown != "" && !slices.Contains(AuditOnStoreDown, a.OnStoreDown) {
		bad("audit.on_store_down", "%q is not one of refuse, spool", a.OnStoreDown)
	}
	switch {
	case a.SigningKey.Env != "" && a.SigningKey.File != "":
		bad("audit.signing_key", "set env or file, not both")
	case a.SigningKey.Env != "" && !envRE.MatchString(a.SigningKey.Env):
		bad("audit.signing_key.env", "%q is not an environment variable name", a.SigningKey.Env)
	}
	if a.CheckpointInterval != 0 && (a.CheckpointInterval < time.Second || a.CheckpointInterval > time.Hour) {
		bad("audit.checkpoint_interval", "must be between 1s and 1h")
	}
	if a.Retention.Interval < 0 || (a.Retention.Interval > 0 && a.Retention.Interval < time.Minute) {
		bad("audit.retention.interval", "must be at least 1m")
	}
	checkRetention := func(field string, d time.Duration) {
		if d != 0 && d < MinAuditRetention {
			bad(field, "%s is shorter than the minimum %s (0s keeps records forever)", d, MinAuditRetention)
		}
	}
	checkRetention("audit.retention.default", a.Retention.Default)
	names := make([]string, 0, len(a.Retention.Workspaces))
	for ws := range a.Retention.Workspaces {
		names = append(names, ws)
	}
	sort.Strings(names)
	for _, ws := range names {
		f := "audit.retention.workspaces." + ws
		if !c.hasWorkspace(ws) {
			bad(f, "unknown workspace %q", ws)
		}
		checkRetention(f, a.Retention.Workspaces[ws])
	}
	for i, ws := range a.Content.Workspaces {
		if !c.hasWorkspace(ws) {
			bad(fmt.Sprintf("audit.content.workspaces[%d]", i), "unknown workspace %q", ws)
		}
	}
	return errs
}

func (c *Config) hasWorkspace(name string) bool {
	return slices.ContainsFunc(c.Workspaces, func(w Workspace) bool { return w.Name == name })
}
