package policy

import (
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"slices"
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

// ReadBundle reads a kept policy version's sources, modules and tests by
// name, without compiling them (`stellwerk policy show` and `diff`). Like
// LoadBundle it refuses sources that do not hash to the version the
// bundle names: the store was changed.
func ReadBundle(b []byte) (version string, sources map[string]string, err error) {
	var bd bundle
	if err := json.Unmarshal(b, &bd); err != nil {
		return "", nil, fmt.Errorf("policy bundle: %w", err)
	}
	if bd.Tests == nil {
		bd.Tests = map[string]string{}
	}
	if v := digestOf(bd.Modules, bd.Tests)[:12]; v != bd.Version {
		return "", nil, fmt.Errorf("policy bundle: its sources are version %s, not %s", v, bd.Version)
	}
	sources = make(map[string]string, len(bd.Modules)+len(bd.Tests))
	maps.Copy(sources, bd.Modules)
	maps.Copy(sources, bd.Tests)
	return bd.Version, sources, nil
}

// Changes are the modules and tests (by name) one policy version adds,
// removes and changes from another: what a load's audit record names.
type Changes struct {
	Added, Removed, Changed []string
}

// ChangesFrom lists what e changed from before (nil: everything is added),
// each list sorted.
func (e *Engine) ChangesFrom(before *Engine) Changes {
	var c Changes
	old := map[string]string{}
	if before != nil {
		maps.Copy(old, before.files.modules)
		maps.Copy(old, before.files.tests)
	}
	cur := maps.Clone(e.files.modules)
	if cur == nil {
		cur = map[string]string{}
	}
	maps.Copy(cur, e.files.tests)
	for name, src := range cur {
		switch was, ok := old[name]; {
		case !ok:
			c.Added = append(c.Added, name)
		case was != src:
			c.Changed = append(c.Changed, name)
		}
	}
	for name := range old {
		if _, ok := cur[name]; !ok {
			c.Removed = append(c.Removed, name)
		}
	}
	slices.Sort(c.Added)
	slices.Sort(c.Removed)
	slices.Sort(c.Changed)
	return c
}
