package store

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
)

// LockFile is the file in state.dir a serving stellwerk holds locked.
const LockFile = "serve.lock"

// ErrDirInUse: another process holds state.dir's lock.
var ErrDirInUse = errors.New("in use by another stellwerk")

// LockDir takes state.dir's lock for one process: the embedded store and
// the in-memory budgets' totals are one server's. Two servers on one
// directory each enforced the budgets alone, and the last to save its
// totals erased the other's (the operator probe: 43 % past a budget, half
// of it forgotten after a restart); a copy into PostgreSQL taken while a
// server still wrote left its last rows behind. The lock is flock(2)'s: the
// kernel drops it when the process ends, crashed or not. release unlocks
// and closes it.
func LockDir(dir string) (release func(), err error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("state.dir: %w", err)
	}
	path := filepath.Join(dir, LockFile)
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("state.dir: %w", err)
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		b := make([]byte, 32)
		n, _ := f.ReadAt(b, 0)
		f.Close()
		if errors.Is(err, syscall.EWOULDBLOCK) {
			holder := ""
			if pid, perr := strconv.Atoi(strings.TrimSpace(string(b[:n]))); perr == nil {
				holder = " (pid " + strconv.Itoa(pid) + ")"
			}
			return nil, fmt.Errorf("state.dir %s is %w%s; stop it first, or give this one its own state.dir", dir, ErrDirInUse, holder)
		}
		return nil, fmt.Errorf("state.dir: lock %s: %w", path, err)
	}
	if err := f.Truncate(0); err == nil {
		_, _ = f.WriteAt([]byte(strconv.Itoa(os.Getpid())+"\n"), 0)
	}
	return func() {
		_ = syscall.Flock(int(f.Fd()), syscall.LOCK_UN)
		f.Close()
	}, nil
}
