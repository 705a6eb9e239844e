// Package policy embeds OPA: it loads the shipped Rego library and the
// platform's own modules, prepares the query data.stellwerk.decision once,
// evaluates it per request on an input built as an ast.Value, checks the
// decision's shape, runs the Rego tests, and hot-reloads changed policies.
package policy

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"

	regolib "github.com/stellwerk/stellwerk/rego"
)

// Source says where modules come from.
type Source struct {
	Library bool   // the shipped library (rego/, embedded)
	Dir     string // the platform's bundle directory, "" for none
	// RequireDir refuses a policy without any module of Dir
	// (policy.require_dir_modules): an emptied mount is refused at a
	// reload and at start-up instead of leaving the library alone.
	RequireDir bool
}

// ErrNoDirModules: Source.RequireDir and Dir has no module.
var ErrNoDirModules = errors.New("policy.dir has no modules (*.rego other than *_test.rego) and policy.require_dir_modules is on")

// requireDir refuses f when s requires Dir's modules and f has none.
func (s Source) requireDir(f files) error {
	if !s.RequireDir {
		return nil
	}
	for name := range f.modules {
		if strings.HasPrefix(name, "dir/") {
			return nil
		}
	}
	return fmt.Errorf("%w (%s)", ErrNoDirModules, s.Dir)
}

// files is one set of Rego sources: modules and their tests, by name.
type files struct {
	modules map[string]string
	tests   map[string]string
	version string
	// digest is the sources' whole SHA-256 (hex); version is its first 12
	// digits.
	digest string
	// data are OPA bundle data files found in the dir (data.json,
	// data.yaml), which stellwerk does not read: warned about.
	data []string
}

// maxModuleBytes bounds one file read from the bundle directory.
const maxModuleBytes = 4 << 20

// collect reads every module of a source and computes its version: the
// SHA-256 over the sorted names and contents, first 12 hex digits.
func (s Source) collect() (files, error) {
	f := files{modules: map[string]string{}, tests: map[string]string{}}
	if s.Library {
		mods, err := regolib.Modules()
		if err != nil {
			return f, err
		}
		tests, err := regolib.TestModules()
		if err != nil {
			return f, err
		}
		for name, src := range mods {
			f.modules["library/"+name] = src
		}
		for name, src := range tests {
			f.tests["library/"+name] = src
		}
	}
	if s.Dir != "" {
		if err := readDir(s.Dir, "dir", &f, map[string]bool{}); err != nil {
			return f, fmt.Errorf("policy dir: %w", err)
		}
	}
	if len(f.modules) == 0 {
		return f, fmt.Errorf("no policy modules (library disabled and %q has no *.rego files)", s.Dir)
	}
	f.digest = digestOf(f.modules, f.tests)
	f.version = f.digest[:12]
	return f, nil
}

// readDir reads the *.rego files under root into f, named prefix/ and
// their path below root. It follows symbolic links, the root's and its
// directories' (git-sync's `current -> rev`, a link swapped to deploy), each
// real directory once (seen), so a link cannot loop; a directory whose name
// starts with a dot is skipped, as are a Kubernetes ConfigMap's ..data
// staging directories (its files are linked at the top).
func readDir(root, prefix string, f *files, seen map[string]bool) error {
	real, err := filepath.EvalSymlinks(root)
	if err != nil {
		return err
	}
	if seen[real] {
		return nil
	}
	seen[real] = true
	return filepath.WalkDir(real, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(real, path)
		name := prefix + "/" + filepath.ToSlash(rel)
		if d.IsDir() {
			if path != real && (strings.HasPrefix(d.Name(), ".") || seen[path]) {
				return fs.SkipDir // read through a link already
			}
			seen[path] = true
			return nil
		}
		if d.Type()&fs.ModeSymlink != 0 && !strings.HasPrefix(d.Name(), ".") {
			if info, err := os.Stat(path); err == nil && info.IsDir() {
				return readDir(path, name, f, seen)
			}
		}
		if !strings.HasSuffix(path, ".rego") {
			switch d.Name() {
			case "data.json", "data.yaml", "data.yml":
				f.data = append(f.data, name)
			}
			return nil
		}
		info, err := os.Stat(path)
		if err != nil {
			return err
		}
		if info.Size() > maxModuleBytes {
			return fmt.Errorf("%s: larger than %d bytes", filepath.Join(root, rel), maxModuleBytes)
		}
		b, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		if strings.HasSuffix(path, "_test.rego") {
			f.tests[name] = string(b)
		} else {
			f.modules[name] = string(b)
		}
		return nil
	})
}

func digestOf(sets ...map[string]string) string {
	h := sha256.New()
	for _, set := range sets {
		names := make([]string, 0, len(set))
		for n := range set {
			names = append(names, n)
		}
		sort.Strings(names)
		for _, n := range names {
			fmt.Fprintf(h, "%s\x00%d\x00%s\x00", n, len(set[n]), set[n])
		}
	}
	return hex.EncodeToString(h.Sum(nil))
}
