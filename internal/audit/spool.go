package audit

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
)

// spool is a writer's local file of sealed entries and checkpoints that
// could not reach the store, in the export's line format, fsynced per
// batch. The writer holds an exclusive flock on it, so another process
// starting on the same directory replays only spools whose writer is gone.
type spool struct {
	path     string
	f        *os.File
	lines    int
	count    int // entries
	oldestUS int64
}

func newSpool(path string) *spool { return &spool{path: path} }

func spoolName(writer string) string {
	return "audit-" + strings.ReplaceAll(writer, "/", "_") + ".spool"
}

func (s *spool) active() bool { return s != nil && s.lines > 0 }

func (s *spool) open() error {
	if s.f != nil {
		return nil
	}
	f, err := os.OpenFile(s.path, os.O_RDWR|os.O_CREATE|os.O_APPEND, 0o600)
	if err != nil {
		return err
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		f.Close()
		return fmt.Errorf("spool %s is locked by another process: %w", s.path, err)
	}
	s.f = f
	return nil
}

func (s *spool) write(entries []Entry, cps []Checkpoint) error {
	if err := s.open(); err != nil {
		return err
	}
	w := bufio.NewWriterSize(s.f, 64<<10)
	enc := json.NewEncoder(w)
	for i := range entries {
		if err := enc.Encode(EntryLine(&entries[i], false)); err != nil {
			return err
		}
	}
	for i := range cps {
		if err := enc.Encode(CheckpointLine(&cps[i])); err != nil {
			return err
		}
	}
	if err := w.Flush(); err != nil {
		return err
	}
	if err := s.f.Sync(); err != nil {
		return err
	}
	if s.lines == 0 && len(entries) > 0 {
		s.oldestUS = TimeUS(entries[0].Time)
	}
	s.lines += len(entries) + len(cps)
	s.count += len(entries)
	return nil
}

type replayed struct{ entries, checkpoints int }

// replay writes the spool to the store and empties it.
func (s *spool) replay(ctx context.Context, st *Store, batch int) (replayed, error) {
	if s.f == nil {
		return replayed{}, nil
	}
	if _, err := s.f.Seek(0, 0); err != nil {
		return replayed{}, err
	}
	n, err := appendLines(ctx, st, s.f, batch)
	if err != nil {
		return n, err
	}
	if err := s.f.Truncate(0); err != nil {
		return n, err
	}
	s.lines, s.count, s.oldestUS = 0, 0, 0
	return n, nil
}

func (s *spool) close() {
	if s == nil || s.f == nil {
		return
	}
	empty := s.lines == 0
	s.f.Close()
	s.f = nil
	if empty {
		_ = os.Remove(s.path)
	}
}

// appendLines writes a spool's lines to the store in batches. Rows already
// there (a replay cut short) are skipped by the store.
func appendLines(ctx context.Context, st *Store, f *os.File, batch int) (replayed, error) {
	var n replayed
	lines, err := ReadLines(f)
	if err != nil {
		return n, err
	}
	var es []Entry
	var cps []Checkpoint
	flush := func() error {
		if err := st.Append(ctx, es, cps); err != nil {
			return err
		}
		n.entries += len(es)
		n.checkpoints += len(cps)
		es, cps = es[:0], cps[:0]
		return nil
	}
	for i := range lines {
		switch lines[i].Type {
		case LineCheckpoint:
			c, err := lines[i].Checkpoint()
			if err != nil {
				return n, err
			}
			cps = append(cps, c)
		case LineRecord:
			e, err := lines[i].Entry()
			if err != nil {
				return n, err
			}
			es = append(es, e)
		}
		if len(es)+len(cps) >= batch {
			if err := flush(); err != nil {
				return n, err
			}
		}
	}
	return n, flush()
}

// replaySpools writes the spool files of writers that are gone (their
// file is not locked) to the store and removes them.
func replaySpools(ctx context.Context, st *Store, dir string, batch int) (int, error) {
	paths, err := filepath.Glob(filepath.Join(dir, "audit-*.spool"))
	if err != nil {
		return 0, err
	}
	total := 0
	for _, p := range paths {
		f, err := os.OpenFile(p, os.O_RDWR, 0)
		if err != nil {
			if errors.Is(err, os.ErrNotExist) {
				continue
			}
			return total, err
		}
		if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
			f.Close() // a live writer's
			continue
		}
		n, err := appendLines(ctx, st, f, batch)
		if err != nil {
			f.Close()
			return total, fmt.Errorf("%s: %w", p, err)
		}
		total += n.entries
		_ = os.Remove(p)
		f.Close()
	}
	return total, nil
}
