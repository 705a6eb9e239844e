package policy

import (
	"context"
	"encoding/json"
	"fmt"
)

// bundle is a policy version as the audit log keeps it: every module and
// test by name. Its version is computed from them, so a bundle cannot
// claim another version than its content.
type bundle struct {
	Version string            `json:"version"`
	Modules map[string]string `json:"modules"`
	Tests   map[string]string `json:"tests,omitempty"`
}

// Bundle is the engine's sources, for the audit log to keep under the
// engine's version (replay loads it with LoadBundle).
func (e *Engine) Bundle() ([]byte, error) {
	return json.Marshal(bundle{Version: e.Version, Modules: e.files.modules, Tests: e.files.tests})
}

// LoadBundle compiles a kept policy version. The version is recomputed
// from the sources and must match the one the bundle names; the tests are
// not run again (they passed when the version was in force).
func LoadBundle(ctx context.Context, b []byte) (*Engine, error) {
	var bd bundle
	if err := json.Unmarshal(b, &bd); err != nil {
		return nil, fmt.Errorf("policy bundle: %w", err)
	}
	f := files{modules: bd.Modules, tests: bd.Tests}
	if f.tests == nil {
		f.tests = map[string]string{}
	}
	f.digest = digestOf(f.modules, f.tests)
	if f.version = f.digest[:12]; f.version != bd.Version {
		return nil, fmt.Errorf("policy bundle: its sources are version %s, not %s", f.version, bd.Version)
	}
	return load(ctx, f)
}
