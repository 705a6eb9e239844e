//go:build unix

package store

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
)

// ExposedState reports dir and each of files in it (those that exist) whose
// mode lets group or others in (any of 0o077): stellwerk creates them 0700
// and 0600, but keeps what it finds, and a chmod, a restore or a volume's
// group ownership can open them. A directory that others can list and files
// that others can read give away the audit signing key (forged
// checkpoints), the hash key (offline guessing of virtual keys) and the
// key store. Reported, not refused: see ExposedState's caller in serve.
func ExposedState(dir string, files ...string) ([]Exposed, error) {
	if dir == "" {
		return nil, nil
	}
	var found []Exposed
	var errs []error
	check := func(path, fix string) {
		fi, err := os.Stat(path)
		if errors.Is(err, fs.ErrNotExist) {
			return
		}
		if err != nil {
			errs = append(errs, err)
			return
		}
		if fi.Mode().Perm()&0o077 != 0 {
			found = append(found, Exposed{Path: path, Mode: fi.Mode().Perm(), Fix: fix + " " + path})
		}
	}
	check(dir, "chmod 700")
	for _, name := range files {
		check(filepath.Join(dir, name), "chmod 600")
	}
	return found, errors.Join(errs...)
}
