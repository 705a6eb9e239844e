//go:build unix

package store

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestExposedState(t *testing.T) {
	for name, tc := range map[string]struct {
		dirMode os.FileMode
		modes   map[string]os.FileMode // files to create
		want    []string               // Octal and Fix of each finding, relative to the dir
	}{
		"as stellwerk makes them": {0o700, map[string]os.FileMode{"a.key": 0o600, "b.db": 0o600}, nil},
		"stricter is fine":        {0o500, map[string]os.FileMode{"a.key": 0o400}, nil},
		"the probe's chmod": {0o777, map[string]os.FileMode{"a.key": 0o644, "b.db": 0o600},
			[]string{"0777 chmod 700 .", "0644 chmod 600 a.key"}},
		"group only": {0o750, map[string]os.FileMode{"a.key": 0o640, "b.db": 0o660},
			[]string{"0750 chmod 700 .", "0640 chmod 600 a.key", "0660 chmod 600 b.db"}},
		"others may write, not read":   {0o700, map[string]os.FileMode{"b.db": 0o602}, []string{"0602 chmod 600 b.db"}},
		"missing files are no finding": {0o700, nil, nil},
	} {
		t.Run(name, func(t *testing.T) {
			dir := filepath.Join(t.TempDir(), "state")
			if err := os.Mkdir(dir, 0o700); err != nil {
				t.Fatal(err)
			}
			for f, m := range tc.modes {
				p := filepath.Join(dir, f)
				if err := os.WriteFile(p, []byte("x"), 0o600); err != nil {
					t.Fatal(err)
				}
				if err := os.Chmod(p, m); err != nil { // past the umask
					t.Fatal(err)
				}
			}
			if err := os.Chmod(dir, tc.dirMode); err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { os.Chmod(dir, 0o700) })
			found, err := ExposedState(dir, "a.key", "b.db", "c.missing")
			if err != nil {
				t.Fatal(err)
			}
			var got []string
			for _, e := range found {
				rel, _ := filepath.Rel(dir, e.Path)
				fix := e.Fix[:len(e.Fix)-len(e.Path)] + rel
				got = append(got, e.Octal()+" "+fix)
			}
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("ExposedState (-want +got):\n%s", diff)
			}
		})
	}
}
