package flowstore

import (
	"context"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"github.com/stellwerk/stellwerk/internal/flow"
)

// Dir is where route files live: routes/ beside the config file.
func Dir(configPath string) string { return filepath.Join(filepath.Dir(configPath), "routes") }

// File is one route file of a directory, loaded.
type File struct {
	// Path is the file's path; Name its base name (support.yaml).
	Path, Name string
	Flow       *flow.Flow
	// Err is why the file does not load (then Flow is nil).
	Err error
	// Modified is the file's modification time (through links).
	Modified time.Time
}

// ReadDir loads every *.yaml and *.yml file of dir against env. A file's
// route must be named as the file (support.yaml holds route: support), and
// a route may have only one file. A missing directory has no files.
func ReadDir(dir string, env *flow.Env) ([]File, error) {
	entries, err := os.ReadDir(dir)
	if os.IsNotExist(err) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var out []File
	seen := map[string]string{}
	for _, e := range entries {
		ext := filepath.Ext(e.Name())
		if e.IsDir() || (ext != ".yaml" && ext != ".yml") || strings.HasPrefix(e.Name(), ".") {
			continue
		}
		path := filepath.Join(dir, e.Name())
		f := File{Path: path, Name: e.Name()}
		data, err := os.ReadFile(path)
		if err == nil {
			f.Flow, err = flow.Load(path, data, env)
		}
		if info, serr := os.Stat(path); serr == nil {
			f.Modified = info.ModTime()
		}
		stem := strings.TrimSuffix(e.Name(), ext)
		switch {
		case err != nil:
			f.Err = err
		case f.Flow.Name != stem:
			f.Err, f.Flow = &flow.LoadError{Errs: []*flow.Error{{Source: path, Route: f.Flow.Name,
				Msg: "the route in " + e.Name() + " must be named " + stem + " (one route per file, named as the file)"}}}, nil
		case seen[stem] != "":
			f.Err, f.Flow = &flow.LoadError{Errs: []*flow.Error{{Source: path, Route: stem, Msg: "route " + stem + " is also in " + seen[stem]}}}, nil
		default:
			seen[stem] = e.Name()
		}
		out = append(out, f)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out, nil
}

// Synced is what SyncDir did with one file.
type Synced struct {
	File    string `json:"file"`
	Route   string `json:"route,omitempty"`
	Version int64  `json:"version,omitempty"`
	// Changed: the file's content was new and became (or found) a version;
	// Deployed: it was also made live.
	Changed  bool `json:"changed"`
	Deployed bool `json:"deployed"`
	// From is the version live before a deployed file's (0: none was).
	From int64 `json:"from,omitempty"`
	// Stale: the file is an older copy of a version already synced from a
	// newer one (another replica's); nothing changed.
	Stale bool   `json:"stale,omitempty"`
	Error string `json:"error,omitempty"`
	// Warnings are what a file loads with but a new version submitted
	// through the admin API or the CLI may not have (flow.Flow.Warnings):
	// a file loaded before they were checked, so it still syncs.
	Warnings []string `json:"warnings,omitempty"`
}

// Action is what syncing the file did to its route, for the audit record:
// "create" (a version stored), "file" (stored and made live), or "" when
// nothing changed (also when the file's text is the version already live).
func (s Synced) Action() string {
	switch {
	case !s.Changed || s.Error != "":
		return ""
	case s.Deployed && s.From == s.Version:
		return ""
	case s.Deployed:
		return "file"
	}
	return "create"
}

// SyncDir records every route file of dir in the store (Store.SyncFile):
// new content becomes a version, made live when deploy is set (the
// server's default: merging the file is the deploy). A file that does not
// load changes nothing and is reported; the others still sync. The error
// is the store's (unreachable), after which nothing more is tried.
func SyncDir(ctx context.Context, st *Store, dir string, env *flow.Env, deploy bool) ([]Synced, error) {
	files, err := ReadDir(dir, env)
	if err != nil {
		return nil, err
	}
	out := make([]Synced, 0, len(files))
	for _, f := range files {
		s := Synced{File: f.Path}
		if f.Err != nil {
			s.Error = f.Err.Error()
			out = append(out, s)
			continue
		}
		s.Route = f.Flow.Name
		for _, w := range f.Flow.Warnings() {
			s.Warnings = append(s.Warnings, w.Error())
		}
		v, from, changed, stale, err := st.SyncFile(ctx, f.Flow, "routes/"+f.Name, f.Modified, deploy)
		if err != nil {
			return out, err
		}
		s.Version, s.From, s.Changed, s.Deployed, s.Stale = v.Version, from, changed, changed && deploy, stale
		out = append(out, s)
	}
	return out, nil
}
