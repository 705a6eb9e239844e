package spend

import (
	"context"
	"database/sql"
	"fmt"
	"sync"
	"time"

	"github.com/stellwerk/stellwerk/internal/ledger"
)

// Totals keeps the in-memory budget backend's spend in the state store
// (table budget_totals), so a restart does not reset a month's budget:
// the default when neither state.spend_file nor state.redis is set. It
// remembers what it last saved and writes only the counters that changed
// since (an upsert each) and deletes those gone, in one transaction.
//
// One process owns the table: the in-memory backend is for one replica.
// Replicas sharing a PostgreSQL keep their budgets in Redis.
type Totals struct {
	s     *Store
	mu    sync.Mutex
	saved map[totalKey]totalVal // nil until loaded
}

type totalKey struct {
	budget, period, subject string
	start                   int64
}

type totalVal struct {
	expires int64
	used    ledger.MicroEUR
}

var _ ledger.Persister = (*Totals)(nil)

// Totals is the budget spend persister in the store's database.
func (s *Store) Totals() *Totals { return &Totals{s: s} }

func keyOf(t ledger.Total) totalKey {
	k := totalKey{budget: t.Budget, period: t.Period, subject: t.Subject}
	if !t.Start.IsZero() {
		k.start = t.Start.UnixMilli()
	}
	return k
}

// Load returns every saved counter.
func (p *Totals) Load(ctx context.Context) ([]ledger.Total, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	m, err := p.load(ctx)
	if err != nil {
		return nil, err
	}
	p.saved = m
	out := make([]ledger.Total, 0, len(m))
	for k, v := range m {
		t := ledger.Total{Budget: k.budget, Period: k.period, Subject: k.subject, Used: v.used}
		if k.start != 0 {
			t.Start = time.UnixMilli(k.start).UTC()
		}
		if v.expires != 0 {
			t.Expires = time.UnixMilli(v.expires).UTC()
		}
		out = append(out, t)
	}
	return out, nil
}

func (p *Totals) load(ctx context.Context) (map[totalKey]totalVal, error) {
	rows, err := p.s.db.SQL.QueryContext(ctx, `SELECT budget, period, subject, start_ms, expires_ms, used_micro_eur FROM budget_totals`)
	if err != nil {
		return nil, fmt.Errorf("budget totals: %w", classify(err))
	}
	defer rows.Close()
	m := map[totalKey]totalVal{}
	for rows.Next() {
		var k totalKey
		var v totalVal
		var used int64
		if err := rows.Scan(&k.budget, &k.period, &k.subject, &k.start, &v.expires, &used); err != nil {
			return nil, fmt.Errorf("budget totals: %w", classify(err))
		}
		v.used = ledger.MicroEUR(used)
		m[k] = v
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("budget totals: %w", classify(err))
	}
	return m, nil
}

// Save makes the table equal the snapshot.
func (p *Totals) Save(ctx context.Context, ts []ledger.Total) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.saved == nil {
		m, err := p.load(ctx)
		if err != nil {
			return err
		}
		p.saved = m
	}
	next := make(map[totalKey]totalVal, len(ts))
	for _, t := range ts {
		v := totalVal{used: t.Used}
		if !t.Expires.IsZero() {
			v.expires = t.Expires.UnixMilli()
		}
		next[keyOf(t)] = v
	}
	err := p.s.db.Tx(ctx, func(tx *sql.Tx) error {
		for k, v := range next {
			if old, ok := p.saved[k]; ok && old == v {
				continue
			}
			if _, err := tx.ExecContext(ctx, `INSERT INTO budget_totals (budget, period, subject, start_ms, expires_ms, used_micro_eur)
VALUES ($1, $2, $3, $4, $5, $6)
ON CONFLICT (budget, period, subject, start_ms) DO UPDATE SET expires_ms = excluded.expires_ms, used_micro_eur = excluded.used_micro_eur`,
				k.budget, k.period, k.subject, k.start, v.expires, int64(v.used)); err != nil {
				return err
			}
		}
		for k := range p.saved {
			if _, ok := next[k]; ok {
				continue
			}
			if _, err := tx.ExecContext(ctx, `DELETE FROM budget_totals WHERE budget = $1 AND period = $2 AND subject = $3 AND start_ms = $4`,
				k.budget, k.period, k.subject, k.start); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("budget totals: %w", err)
	}
	p.saved = next
	return nil
}
