package audit

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"syscall"

	"go.uber.org/zap"
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
	// size is the file's length after its last complete batch: a write
	// that fails (a full disk) is cut back to it, so that no half a line
	// is left for the next batch to follow (the storage probe: every
	// replay of such a file failed on its torn line, and so did the next
	// start). torn says the cut failed too: the next write tries again
	// first.
	size int64
	torn bool
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
	fi, err := f.Stat()
	if err != nil {
		f.Close()
		return err
	}
	s.f, s.size = f, fi.Size()
	return nil
}

// write appends a batch and syncs it, or leaves the file as it was.
func (s *spool) write(entries []Entry, cps []Checkpoint) error {
	if err := s.open(); err != nil {
		return err
	}
	if s.torn {
		if err := s.cut(); err != nil {
			return err
		}
	}
	if err := s.append(entries, cps); err != nil {
		if cerr := s.cut(); cerr != nil {
			return fmt.Errorf("%w (and the half-written batch could not be removed: %v)", err, cerr)
		}
		return err
	}
	if s.lines == 0 && len(entries) > 0 {
		s.oldestUS = TimeUS(entries[0].Time)
	}
	s.lines += len(entries) + len(cps)
	s.count += len(entries)
	return nil
}

// append writes and syncs a batch's lines, and notes the file's new size.
func (s *spool) append(entries []Entry, cps []Checkpoint) error {
	cw := &countingWriter{w: s.f}
	w := bufio.NewWriterSize(cw, 64<<10)
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
	s.size += cw.n
	return nil
}

// cut removes what a failed write left after the last complete batch.
func (s *spool) cut() error {
	if err := s.f.Truncate(s.size); err != nil {
		s.torn = true
		return err
	}
	s.torn = false
	return nil
}

type countingWriter struct {
	w io.Writer
	n int64
}

func (c *countingWriter) Write(p []byte) (int, error) {
	n, err := c.w.Write(p)
	c.n += int64(n)
	return n, err
}

// replayed counts what a replay wrote, and the lines it could not read.
type replayed struct{ entries, checkpoints, skipped int }

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
	s.lines, s.count, s.oldestUS, s.size = 0, 0, 0, 0
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
	lines, skipped, err := readSpool(f)
	n.skipped = skipped
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
// file is not locked) to the store and removes them. A file with lines it
// could not read (a write cut short by a full disk or a crash) is kept
// beside, renamed *.spool.broken, for an operator to look at: what could
// be read is in the store, and stellwerk audit verify names what is not.
func replaySpools(ctx context.Context, st *Store, dir string, batch int, log *zap.Logger) (int, error) {
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
		if n.skipped > 0 {
			log.Error("audit spool had lines that could not be read (a write cut short): the rest is in the store, the file is kept; stellwerk audit verify reports the records missing",
				zap.String("spool", p), zap.Int("lines_skipped", n.skipped), zap.String("kept_as", p+".broken"))
			_ = os.Rename(p, p+".broken")
		} else {
			_ = os.Remove(p)
		}
		f.Close()
	}
	return total, nil
}

// readSpool reads a spool's lines. A line that is not one export line (a
// write cut short: half a line, or half a line and the next batch's first
// after it, as spools written before 2026-12-07 could hold) is skipped and
// counted, and the lines after it are read: a torn line stopped every
// replay of the file, and the next start (the storage probe).
func readSpool(r io.Reader) ([]Line, int, error) {
	br := bufio.NewReaderSize(r, 64<<10)
	var out []Line
	skipped := 0
	for {
		b, err := br.ReadBytes('\n')
		if len(bytes.TrimSpace(b)) > 0 {
			var l Line
			if json.Unmarshal(b, &l) == nil && (l.Type == LineRecord || l.Type == LineCheckpoint) {
				out = append(out, l)
			} else {
				skipped++
			}
		}
		if errors.Is(err, io.EOF) {
			return out, skipped, nil
		}
		if err != nil {
			return out, skipped, err
		}
	}
}
