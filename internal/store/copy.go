package store

import (
	"context"
	"database/sql"
	"fmt"
	"sort"
	"strings"
)

// Tables lists the database's own tables (not the engine's), sorted.
func (db *DB) Tables(ctx context.Context) ([]string, error) {
	q := `SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite\_%' ESCAPE '\'`
	if db.Dialect == Postgres {
		q = `SELECT table_name FROM information_schema.tables WHERE table_schema = current_schema() AND table_type = 'BASE TABLE'`
	}
	rows, err := db.SQL.QueryContext(ctx, q)
	if err != nil {
		return nil, Classify(err)
	}
	defer rows.Close()
	var names []string
	for rows.Next() {
		var n string
		if err := rows.Scan(&n); err != nil {
			return nil, err
		}
		names = append(names, n)
	}
	if err := rows.Err(); err != nil {
		return nil, err
	}
	sort.Strings(names)
	return names, nil
}

// CopyOptions says how Copy treats tables the schema itself fills.
type CopyOptions struct {
	// Seeded names tables a migration writes rows into (a generation
	// counter): the destination's rows are replaced by the source's
	// instead of making it count as not empty.
	Seeded map[string]bool
}

// CopyTable is one table's rows as Copy moved them.
type CopyTable struct {
	Name string
	Rows int64
}

// maxParams bounds one INSERT's placeholders (PostgreSQL allows 65,535)
// and maxBatchBytes its values, so that a batch of audit bodies stays a
// few megabytes.
const (
	maxParams     = 20000
	maxBatchBytes = 4 << 20
)

// Copy moves every row of src into dst, table by table, for a state
// database moving to another engine (SQLite to PostgreSQL). Both must be
// at the same schema (each component migrated by this binary) and dst
// empty but for opts.Seeded; schema_migrations is dst's own. The rows are
// read in one transaction of src, so they are one consistent state, and
// written in one transaction of dst, so a failure leaves dst as it was.
// Values pass through as the source's driver reads them (integers, text,
// bytes, NULL), which is what both dialects' schemas hold.
func Copy(ctx context.Context, src, dst *DB, opts CopyOptions) ([]CopyTable, error) {
	tables, err := src.Tables(ctx)
	if err != nil {
		return nil, fmt.Errorf("source: %w", err)
	}
	have, err := dst.Tables(ctx)
	if err != nil {
		return nil, fmt.Errorf("destination: %w", err)
	}
	inDst := map[string]bool{}
	for _, t := range have {
		inDst[t] = true
	}
	var missing []string
	for _, t := range tables {
		if t != "schema_migrations" && !inDst[t] {
			missing = append(missing, t)
		}
	}
	if len(missing) > 0 {
		return nil, fmt.Errorf("the destination has no table %s: both must be at this stellwerk's schema", strings.Join(missing, ", "))
	}
	stx, err := src.SQL.BeginTx(ctx, &sql.TxOptions{ReadOnly: true})
	if err != nil {
		return nil, fmt.Errorf("source: %w", Classify(err))
	}
	defer stx.Rollback() //nolint:errcheck // read only
	var out []CopyTable
	err = dst.Tx(ctx, func(dtx *sql.Tx) error {
		var full []string
		for _, t := range tables {
			if t == "schema_migrations" || opts.Seeded[t] {
				continue
			}
			var n int64
			if err := dtx.QueryRowContext(ctx, `SELECT COUNT(*) FROM `+quoteIdent(t)).Scan(&n); err != nil {
				return err
			}
			if n > 0 {
				full = append(full, fmt.Sprintf("%s (%d rows)", t, n))
			}
		}
		if len(full) > 0 {
			return fmt.Errorf("the destination is not empty: %s; copy only into a new database", strings.Join(full, ", "))
		}
		for _, t := range tables {
			if t == "schema_migrations" {
				continue
			}
			if opts.Seeded[t] {
				if _, err := dtx.ExecContext(ctx, `DELETE FROM `+quoteIdent(t)); err != nil {
					return err
				}
			}
			n, err := copyTable(ctx, stx, dtx, dst.Dialect, t)
			if err != nil {
				return fmt.Errorf("table %s: %w", t, err)
			}
			out = append(out, CopyTable{Name: t, Rows: n})
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

// copyTable streams one table's rows from stx into dtx in multi-row
// INSERTs.
func copyTable(ctx context.Context, stx, dtx *sql.Tx, d Dialect, table string) (int64, error) {
	rows, err := stx.QueryContext(ctx, `SELECT * FROM `+quoteIdent(table))
	if err != nil {
		return 0, err
	}
	defer rows.Close()
	cols, err := rows.Columns()
	if err != nil {
		return 0, err
	}
	quoted := make([]string, len(cols))
	for i, c := range cols {
		quoted[i] = quoteIdent(c)
	}
	head := d.Insert() + quoteIdent(table) + " (" + strings.Join(quoted, ", ") + ") VALUES "
	perBatch := maxParams / len(cols)
	var (
		args  []any
		size  int
		total int64
	)
	flush := func() error {
		if len(args) == 0 {
			return nil
		}
		var b strings.Builder
		b.WriteString(head)
		for r := 0; r < len(args)/len(cols); r++ {
			if r > 0 {
				b.WriteString(", ")
			}
			b.WriteByte('(')
			for c := range cols {
				if c > 0 {
					b.WriteString(", ")
				}
				fmt.Fprintf(&b, "$%d", r*len(cols)+c+1)
			}
			b.WriteByte(')')
		}
		if _, err := dtx.ExecContext(ctx, b.String(), args...); err != nil {
			return err
		}
		args, size = args[:0], 0
		return nil
	}
	for rows.Next() {
		vals := make([]any, len(cols))
		ptrs := make([]any, len(cols))
		for i := range vals {
			ptrs[i] = &vals[i]
		}
		if err := rows.Scan(ptrs...); err != nil {
			return total, err
		}
		for _, v := range vals {
			switch v := v.(type) {
			case string:
				size += len(v)
			case []byte:
				size += len(v)
			}
		}
		args = append(args, vals...)
		total++
		if len(args)/len(cols) >= perBatch || size >= maxBatchBytes {
			if err := flush(); err != nil {
				return total, err
			}
		}
	}
	if err := rows.Err(); err != nil {
		return total, err
	}
	return total, flush()
}

// quoteIdent quotes a table or column name for both dialects.
func quoteIdent(s string) string {
	return `"` + strings.ReplaceAll(s, `"`, `""`) + `"`
}
