package spend

import (
	"context"
	"fmt"
	"time"
)

// Notices keeps which budget events were told (table budget_notices), so
// that a restart does not tell a budget already past its threshold again,
// and replicas sharing a PostgreSQL tell it once between them. It is
// notify.Claims for a deployment without Redis.
type Notices struct{ s *Store }

// Notices is the told-events table in the store's database.
func (s *Store) Notices() Notices { return Notices{s: s} }

// Claim marks notice as told until until (zero: for good) and reports
// whether this call was the first to mark it since the last mark ran out.
// One statement decides, so two replicas claiming at once get one true.
// Marks that ran out are deleted on the way.
func (n Notices) Claim(ctx context.Context, notice string, until time.Time) (bool, error) {
	now := time.Now().UnixMilli()
	var untilMS int64
	if !until.IsZero() {
		untilMS = until.UnixMilli()
	}
	res, err := n.s.db.SQL.ExecContext(ctx, `INSERT INTO budget_notices (notice, until_ms) VALUES ($1, $2)
ON CONFLICT (notice) DO UPDATE SET until_ms = excluded.until_ms
WHERE budget_notices.until_ms <> 0 AND budget_notices.until_ms <= $3`, notice, untilMS, now)
	if err != nil {
		return false, fmt.Errorf("budget notices: %w", classify(err))
	}
	first, err := res.RowsAffected()
	if err != nil {
		return false, fmt.Errorf("budget notices: %w", classify(err))
	}
	if first == 1 {
		// A new period's mark: forget the ones whose periods ended.
		if _, err := n.s.db.SQL.ExecContext(ctx, `DELETE FROM budget_notices WHERE until_ms <> 0 AND until_ms <= $1`, now); err != nil {
			return true, nil // a leftover mark costs a row, not a notice
		}
	}
	return first == 1, nil
}
