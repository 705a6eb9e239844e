package ledger

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"
)

// Total is one budget counter's spend: a budget, a subject, a period.
type Total struct {
	Budget  string `json:"budget"`
	Period  string `json:"period"`            // day, week, month, total
	Subject string `json:"subject,omitempty"` // as in config; "" for global
	// Start is the period's start (zero for total); Expires is when the
	// counter may be forgotten (zero: never).
	Start   time.Time `json:"start,omitzero"`
	Expires time.Time `json:"expires,omitzero"`
	Used    MicroEUR  `json:"used_micro_eur"`
}

func (t Total) key() (counterKey, bool) {
	p, err := ParsePeriod(t.Period)
	if err != nil || p == PeriodMinute {
		return counterKey{}, false
	}
	k := counterKey{kind: kindMoney, period: p, rule: t.Budget}
	k.s1, k.s2, _ = strings.Cut(t.Subject, "/")
	if !t.Start.IsZero() {
		k.start = t.Start.UnixMilli()
	}
	return k, true
}

// Persister keeps the in-memory backend's budget spend across restarts, so
// a restart does not reset a month's budget. Save gets every budget
// counter (a full snapshot, money held by requests in flight counted as
// spent); Load returns the last snapshot. An SQLite or PostgreSQL store
// implements it with one table of these rows.
type Persister interface {
	Load(ctx context.Context) ([]Total, error)
	Save(ctx context.Context, totals []Total) error
}

// MemoryPersister keeps the snapshot in memory: tests, and a process that
// restarts its ledger without restarting itself.
type MemoryPersister struct {
	mu     sync.Mutex
	totals []Total
	saves  int
}

// Load returns a copy of the last snapshot.
func (p *MemoryPersister) Load(context.Context) ([]Total, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	return slices.Clone(p.totals), nil
}

// Save replaces the snapshot.
func (p *MemoryPersister) Save(_ context.Context, ts []Total) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.totals = slices.Clone(ts)
	p.saves++
	return nil
}

// Saves counts Save calls.
func (p *MemoryPersister) Saves() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.saves
}

// FilePersister keeps the snapshot in a JSON file, replaced atomically
// (written beside it, synced, renamed) so a crash leaves the old or the
// new snapshot, never half of one.
type FilePersister struct {
	Path string
}

type spendFile struct {
	Version int     `json:"version"`
	Saved   string  `json:"saved"`
	Totals  []Total `json:"totals"`
}

// Load reads the file; a missing file is an empty ledger.
func (p FilePersister) Load(context.Context) ([]Total, error) {
	b, err := os.ReadFile(p.Path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("spend file: %w", err)
	}
	var f spendFile
	if err := json.Unmarshal(b, &f); err != nil {
		return nil, fmt.Errorf("spend file %s: %w", p.Path, err)
	}
	if f.Version != 1 {
		return nil, fmt.Errorf("spend file %s: version %d, want 1", p.Path, f.Version)
	}
	return f.Totals, nil
}

// Save writes the snapshot.
func (p FilePersister) Save(_ context.Context, ts []Total) error {
	slices.SortFunc(ts, func(a, b Total) int {
		return strings.Compare(a.Budget+"\x00"+a.Subject+"\x00"+a.Start.String(), b.Budget+"\x00"+b.Subject+"\x00"+b.Start.String())
	})
	b, err := json.MarshalIndent(spendFile{Version: 1, Saved: time.Now().UTC().Format(time.RFC3339), Totals: ts}, "", " ")
	if err != nil {
		return err
	}
	dir := filepath.Dir(p.Path)
	if err := os.MkdirAll(dir, 0o750); err != nil {
		return fmt.Errorf("spend file: %w", err)
	}
	f, err := os.CreateTemp(dir, ".spend-*.json")
	if err != nil {
		return fmt.Errorf("spend file: %w", err)
	}
	defer os.Remove(f.Name()) // no-op after the rename
	if _, err := f.Write(b); err != nil {
		f.Close()
		return fmt.Errorf("spend file: %w", err)
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return fmt.Errorf("spend file: %w", err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("spend file: %w", err)
	}
	if err := os.Rename(f.Name(), p.Path); err != nil {
		return fmt.Errorf("spend file: %w", err)
	}
	return nil
}
