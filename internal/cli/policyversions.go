package cli

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"maps"
	"os"
	"slices"
	"strings"

	"github.com/stellwerk/stellwerk/internal/audit"
	"github.com/stellwerk/stellwerk/internal/policy"
	"github.com/stellwerk/stellwerk/internal/store"
)

const policyUsage = `usage:
  stellwerk policy test [--no-library] [-v] [DIR]       run the Rego policy tests (shipped library + DIR)
  stellwerk policy show [--list] VERSION [MODULE]       a kept policy version's sources, from the audit store
  stellwerk policy diff VERSION_A VERSION_B             a unified diff of two kept policy versions

show and diff read the versions the audit log keeps (every version put in force; a load record
names it in "after", the one it replaced in "before"); they take --config and --state-dir as
audit export does.
`

// runPolicyVersions is `stellwerk policy show|diff`: the sources of the
// policy versions the audit store keeps (audit_versions), which only a
// SQL client could read (the probe).
func runPolicyVersions(ctx context.Context, verb string, args []string, stdout, stderr io.Writer) (err error) {
	fs := flag.NewFlagSet("policy "+verb, flag.ContinueOnError)
	fs.SetOutput(stderr)
	cfgPath := fs.String("config", defaultConfigPath(), "config file (env STELLWERK_CONFIG)")
	stateDir := fs.String("state-dir", "", "directory of the embedded store, overrides state.dir (as for serve)")
	list := false
	if verb == "show" {
		fs.BoolVar(&list, "list", false, "only the names of the version's modules and tests")
	}
	pos, err := parseAnywhere(fs, args)
	if err != nil || (verb == "show" && (len(pos) < 1 || len(pos) > 2 || (list && len(pos) != 1))) || (verb == "diff" && len(pos) != 2) {
		fmt.Fprint(stderr, policyUsage)
		return ErrUsage
	}
	cfg, err := loadConfig(*cfgPath, *stateDir)
	if err != nil {
		return err
	}
	if err := storeExists(cfg.State); err != nil {
		return err
	}
	ctx, cancel := boundStore(ctx)
	defer cancel()
	defer func() { err = storeTimedOut(ctx, err) }()
	db, err := store.Open(ctx, cfg.State, os.Getenv)
	if err != nil {
		return err
	}
	defer db.Close()
	st, err := audit.OpenStore(ctx, db)
	if err != nil {
		return err
	}
	a, err := keptPolicy(ctx, st, pos[0])
	if err != nil {
		return err
	}
	if verb == "diff" {
		b, err := keptPolicy(ctx, st, pos[1])
		if err != nil {
			return err
		}
		return policyDiff(stdout, pos[0], pos[1], a, b)
	}
	names := slices.Sorted(maps.Keys(a))
	switch {
	case list:
		for _, n := range names {
			fmt.Fprintln(stdout, n)
		}
		return nil
	case len(pos) == 2:
		name := pos[1]
		src, ok := a[name]
		if !ok {
			name = "dir/" + name // as the author named it in policy.dir
			src, ok = a[name]
		}
		if !ok {
			return fmt.Errorf("policy version %s has no module %s (stellwerk policy show --list %s names them)", pos[0], pos[1], pos[0])
		}
		_, err := io.WriteString(stdout, withNewline(src))
		return err
	}
	for i, n := range names {
		if i > 0 {
			fmt.Fprintln(stdout)
		}
		fmt.Fprintf(stdout, "==> %s <==\n%s", n, withNewline(a[n]))
	}
	return nil
}

// keptPolicy is a kept policy version's sources by name.
func keptPolicy(ctx context.Context, st *audit.Store, version string) (map[string]string, error) {
	kind, b, err := st.Version(ctx, version)
	if errors.Is(err, audit.ErrNoVersion) {
		return nil, fmt.Errorf("the audit store keeps no policy version %s (a load record's \"after\" names one)", version)
	}
	if err != nil {
		return nil, err
	}
	if kind != audit.VersionPolicy {
		return nil, fmt.Errorf("%s is a %s version, not a policy version", version, kind)
	}
	_, srcs, err := policy.ReadBundle(b)
	if err != nil {
		return nil, fmt.Errorf("kept policy version %s: %w (the store was changed)", version, err)
	}
	return srcs, nil
}

// policyDiff writes a unified diff, module by module, of two policy
// versions: a module only one has is diffed against /dev/null, as git
// does. Nothing is written when they are the same.
func policyDiff(w io.Writer, va, vb string, a, b map[string]string) error {
	names := slices.Sorted(maps.Keys(a))
	for n := range b {
		if _, ok := a[n]; !ok {
			names = append(names, n)
		}
	}
	slices.Sort(names)
	for _, n := range names {
		sa, inA := a[n]
		sb, inB := b[n]
		la, lb := va+"/"+n, vb+"/"+n
		if !inA {
			la = "/dev/null"
		}
		if !inB {
			lb = "/dev/null"
		}
		if _, err := io.WriteString(w, unifiedDiff(la, lb, withNewline(sa), withNewline(sb))); err != nil {
			return err
		}
	}
	return nil
}

// withNewline is s ending in a newline (an empty s stays empty).
func withNewline(s string) string {
	if s == "" || strings.HasSuffix(s, "\n") {
		return s
	}
	return s + "\n"
}
