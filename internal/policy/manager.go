package policy

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"go.uber.org/zap"
)

// Manager owns the live policy: it serves the current Engine and reloads
// the source when its files change. A new set of files replaces the current
// one only when it compiles, every Rego test passes and it yields a
// well-shaped decision; otherwise the last good policy stays and the error
// is kept for the admin API and logged.
type Manager struct {
	src Source
	log *zap.Logger
	cur atomic.Pointer[Engine]
	// reload serialises reloads and the onChange calls. A reload checks a
	// policy without holding mu: an expensive one (a rule that runs for
	// minutes on the sample input) had held up /policy with it.
	reload sync.Mutex
	mu     sync.Mutex // guards the fields below; written under reload too
	seen   string     // version of the files last tried
	data   string     // the data files seen last, which do not change the version
	err    string     // why the last tried version was refused, or the files could not be read
	at     time.Time  // when it was tried
	// unread: the last reload could not read the files (err says why).
	unread bool
	// onChange is told of every policy put in force (OnChange).
	onChange func(e *Engine, refused error)
}

// OnChange calls fn with the policy in force now, and then with every
// version put in force, or refused (e nil, refused set), by a reload, one
// call at a time: the audit log keeps each version and records the change.
func (m *Manager) OnChange(fn func(e *Engine, refused error)) {
	m.reload.Lock()
	defer m.reload.Unlock()
	m.onChange = fn
	fn(m.Current(), nil)
}

// NewManager loads the source once; an error here fails start-up.
func NewManager(ctx context.Context, src Source, log *zap.Logger) (*Manager, error) {
	m := &Manager{src: src, log: log.Named("policy")}
	f, err := src.collect()
	if err != nil {
		return nil, err
	}
	e, err := m.check(ctx, f)
	if err != nil {
		return nil, err
	}
	m.cur.Store(e)
	m.seen, m.data = f.version, strings.Join(f.data, "\x00")
	m.log.Info("policy loaded", zap.String("version", e.Version), zap.Int("modules", len(e.Modules)))
	m.warn(e.Version, e.Warnings)
	return m, nil
}

// Current is the policy in force.
func (m *Manager) Current() *Engine { return m.cur.Load() }

// check compiles f and runs its tests.
func (m *Manager) check(ctx context.Context, f files) (*Engine, error) {
	if err := m.src.requireDir(f); err != nil {
		return nil, err
	}
	e, err := load(ctx, f)
	if err != nil {
		return nil, err
	}
	if len(f.tests) > 0 {
		results, err := runTests(ctx, f)
		if err != nil {
			return nil, fmt.Errorf("policy tests: %w", err)
		}
		var failed []string
		for _, r := range results {
			if !r.Passed {
				// Where the test is, as policy test prints it (a refusal
				// named the test alone: the probe).
				failed = append(failed, fmt.Sprintf("%s (%s:%d): %s", r.Name, r.File, r.Line, r.Error))
			}
		}
		if len(failed) > 0 {
			return nil, fmt.Errorf("%d of %d policy tests failed: %s", len(failed), len(results), strings.Join(failed, "; "))
		}
	}
	return e, nil
}

// Reload checks the source once and swaps in a changed, valid policy. It
// reports whether the policy in force changed.
func (m *Manager) Reload(ctx context.Context) (bool, error) {
	m.reload.Lock()
	defer m.reload.Unlock()
	f, err := m.src.collect()
	if err != nil {
		m.mu.Lock()
		changed := !m.unread || m.err != err.Error()
		m.err, m.at, m.unread = err.Error(), time.Now(), true
		m.mu.Unlock()
		if changed {
			// Said once per cause, not every second: an unmounted
			// ConfigMap had been in /policy only (the policy-author probe).
			m.log.Error("policy files cannot be read; keeping the last good policy", zap.String("version", m.Current().Version), zap.Error(err))
		}
		return false, err
	}
	m.mu.Lock()
	if m.unread {
		m.unread = false
		if f.version == m.seen {
			m.err = "" // the same files as before, readable again
		}
		m.mu.Unlock()
		m.log.Info("policy files readable again", zap.String("version", f.version))
	} else {
		m.mu.Unlock()
	}
	data := strings.Join(f.data, "\x00")
	if f.version == m.seen {
		if data != m.data {
			// A data file added beside an unchanged policy changes no
			// version: said now, not at the next .rego change.
			m.mu.Lock()
			m.data = data
			m.mu.Unlock()
			m.warn(m.Current().Version, f.warnings(nil))
		}
		return false, nil
	}
	e, err := m.check(ctx, f)
	if err != nil && ctx.Err() != nil {
		// Stopping: the evaluation was cut short, which says nothing of
		// the policy (it had been recorded as refused).
		return false, ctx.Err()
	}
	m.mu.Lock()
	m.data, m.seen, m.at = data, f.version, time.Now()
	if err != nil {
		m.err = err.Error()
	} else {
		m.err = ""
	}
	m.mu.Unlock()
	if err != nil {
		m.log.Error("policy change refused; keeping the last good policy", zap.String("refused_version", f.version),
			zap.String("version", m.Current().Version), zap.Error(err))
		if m.onChange != nil {
			m.onChange(nil, fmt.Errorf("version %s: %w", f.version, err))
		}
		return false, err
	}
	before := platformModules(m.Current().Modules)
	m.cur.Store(e)
	if m.onChange != nil {
		m.onChange(e, nil)
	}
	m.log.Info("policy reloaded", zap.String("version", e.Version), zap.Int("modules", len(e.Modules)))
	if after := platformModules(e.Modules); before > 0 && after == 0 {
		// An emptied policy.dir loads (the library alone is a policy),
		// but every rule of the platform team's went with it.
		m.log.Warn("policy reloaded without any of policy.dir's modules: only the shipped library decides now",
			zap.String("version", e.Version), zap.Int("modules_before", before))
	}
	m.warn(e.Version, e.Warnings)
	return true, nil
}

// UserModules is the number of policy.dir's modules (tests not counted)
// in the policy in force: 0 with the library alone, which an emptied
// policy.dir leaves (the gauge stellwerk_policy_user_modules).
func (m *Manager) UserModules() int { return platformModules(m.Current().Modules) }

// platformModules counts the modules of policy.dir among a policy's
// (those not the shipped library's).
func platformModules(names []string) int {
	n := 0
	for _, name := range names {
		if !strings.HasPrefix(name, "library/") {
			n++
		}
	}
	return n
}

func (m *Manager) warn(version string, warnings []string) {
	for _, w := range warnings {
		m.log.Warn("policy module has no effect", zap.String("version", version), zap.String("warning", w))
	}
}

// Watch reloads every interval until ctx ends.
func (m *Manager) Watch(ctx context.Context, interval time.Duration) {
	if m.src.Dir == "" {
		return // the embedded library never changes while running
	}
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			_, _ = m.Reload(ctx)
		}
	}
}

// Status is what the admin API shows.
type Status struct {
	Version      string    `json:"version"`
	Modules      []string  `json:"modules"`
	LoadedAt     time.Time `json:"loaded_at"`
	Dir          string    `json:"dir,omitempty"`
	Library      bool      `json:"library"`
	LastError    string    `json:"last_error,omitempty"`
	LastCheckAt  time.Time `json:"last_check_at,omitzero"` // no check yet: absent, not year 1
	RefusedFiles string    `json:"refused_version,omitempty"`
	// EvaluationErrors counts the requests the policy in force failed to
	// decide (500 policy_error) since it was loaded; LastEvaluationError
	// is the latest.
	EvaluationErrors    uint64   `json:"evaluation_errors"`
	LastEvaluationError *Failure `json:"last_evaluation_error,omitempty"`
}

// Status reports the policy in force and the last refused change.
func (m *Manager) Status() Status {
	m.mu.Lock()
	defer m.mu.Unlock()
	e := m.Current()
	s := Status{Version: e.Version, Modules: e.Modules, LoadedAt: e.LoadedAt, Dir: m.src.Dir, Library: m.src.Library,
		LastError: m.err, LastCheckAt: m.at}
	if m.err != "" {
		s.RefusedFiles = m.seen
	}
	s.EvaluationErrors, s.LastEvaluationError = e.Failures()
	return s
}

// Check runs what NewManager runs at start-up (compile, shape check, every
// Rego test) and returns every problem rather than the first, and the
// load's warnings, so `stellwerk config check` refuses exactly what
// `serve` refuses.
func Check(ctx context.Context, src Source) (warnings []string, errs []error) {
	f, err := src.collect()
	if err != nil {
		return nil, []error{err}
	}
	if err := src.requireDir(f); err != nil {
		return nil, []error{err}
	}
	e, err := load(ctx, f)
	if err != nil {
		return nil, []error{err} // tests of a policy that does not compile say nothing more
	}
	warnings = e.Warnings
	if len(f.tests) == 0 {
		return warnings, nil
	}
	results, err := runTests(ctx, f)
	if err != nil {
		return warnings, []error{fmt.Errorf("policy tests: %w", err)}
	}
	for _, r := range results {
		if !r.Passed {
			errs = append(errs, fmt.Errorf("policy test %s (%s:%d) failed: %s", r.Name, r.File, r.Line, r.Error))
		}
	}
	return warnings, errs
}
