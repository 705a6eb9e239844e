package store

import (
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/binary"
)

// Mark is a point in a store's history: a generation and the stamp the
// write that made it drew (0: none, before stamps were kept).
type Mark struct {
	Gen, Stamp int64
}

// StampsKept is how many generations keep their stamp. A table further
// behind than this cannot tell a restored database from a busy one, and
// reloads everything.
const StampsKept = 1000

// Generation is a component's change counter (<name>_generation, one row)
// and the stamps of its recent values (<name>_stamps). The counter alone
// cannot tell a table that the database went back: pg_restore of an older
// dump puts the counter back too, and the writes after it count up again
// through the numbers the table has seen, with other changes. Each write
// draws a random stamp for its generation, so the same number in another
// history has another stamp (or none, until it is reached again).
type Generation struct {
	name string
	read *Stmt
}

// NewGeneration returns the counter of the tables named name_generation
// and name_stamps.
func NewGeneration(db *sql.DB, name string) *Generation {
	return &Generation{name: name, read: NewStmt(db, `SELECT g.gen, COALESCE(n.stamp, 0), COALESCE(o.stamp, 0)
		FROM `+name+`_generation g LEFT JOIN `+name+`_stamps n ON n.gen = g.gen LEFT JOIN `+name+`_stamps o ON o.gen = $1
		WHERE g.id = 1`)}
}

// Bump increments the generation and stamps it; it must be a write's first
// statement, so that the counter's row lock orders concurrent writers
// (SQLite's write lock does the same) and a reader that has seen
// generation g has seen every change up to g.
func (g *Generation) Bump(ctx context.Context, tx *sql.Tx) (int64, error) {
	var gen int64
	if err := tx.QueryRowContext(ctx, `UPDATE `+g.name+`_generation SET gen = gen + 1 WHERE id = 1 RETURNING gen`).Scan(&gen); err != nil {
		return 0, err
	}
	var b [8]byte
	_, _ = rand.Read(b[:])
	stamp := int64(binary.LittleEndian.Uint64(b[:])>>1) | 1 // positive, never 0
	// A stamp left at this number by a database that was put back is
	// replaced: this write is the history now.
	if _, err := tx.ExecContext(ctx, `INSERT INTO `+g.name+`_stamps (gen, stamp) VALUES ($1, $2)
		ON CONFLICT (gen) DO UPDATE SET stamp = excluded.stamp`, gen, stamp); err != nil {
		return 0, err
	}
	_, err := tx.ExecContext(ctx, `DELETE FROM `+g.name+`_stamps WHERE gen <= $1`, gen-StampsKept)
	return gen, err
}

// Continuity is how a store's history relates to a mark a table loaded.
type Continuity int

const (
	// Continues: the store went on from the mark; what changed after it
	// brings the table up to date.
	Continues Continuity = iota
	// WentBack: the store is not the history the table loaded (restored
	// from an older backup, or another database): only reloading
	// everything is right.
	WentBack
	// Forgotten: the mark is more than StampsKept generations behind, its
	// stamp no longer kept, or the store's generation has no stamp (written
	// by a build before stamps, or restored from a dump of one): reload
	// everything, nothing to tell.
	Forgotten
)

// Read returns the store's mark and how it relates to seen. One query, for
// every poll.
func (g *Generation) Read(ctx context.Context, seen Mark) (Mark, Continuity, error) {
	var now Mark
	var then int64
	if err := g.read.QueryRow(ctx, []any{seen.Gen}, &now.Gen, &now.Stamp, &then); err != nil {
		return Mark{}, WentBack, Classify(err)
	}
	return now, continuity(now, then, seen), nil
}

// ReadTx is Read in tx (DB.ReadTx): the mark of the store that tx's later
// reads see, and of nothing newer.
func (g *Generation) ReadTx(ctx context.Context, tx *sql.Tx, seen Mark) (Mark, Continuity, error) {
	var now Mark
	var then int64
	if err := g.read.QueryRowTx(ctx, tx, []any{seen.Gen}, &now.Gen, &now.Stamp, &then); err != nil {
		return Mark{}, WentBack, Classify(err)
	}
	return now, continuity(now, then, seen), nil
}

// continuity is how the store at now, whose stamp of seen's generation is
// then, relates to seen.
func continuity(now Mark, then int64, seen Mark) Continuity {
	switch {
	case now.Gen == 0 && seen.Gen == 0:
		return Continues // nothing written yet
	case now.Gen == 0:
		// Put back to before its first write (a restore of a dump of an
		// empty store, or a new database): every key the table holds is
		// gone. Continuing kept them all live (the red team).
		return WentBack
	case now.Stamp == 0:
		// An older build wrote it (a rolling upgrade, or a restore of a
		// dump from before it while this build runs): its history cannot
		// be told, and an unstamped generation that caught up with this
		// table's looked like the same history (the upgrade probe: a
		// revoked key kept working on a replica).
		return Forgotten
	case now.Gen >= seen.Gen && then == seen.Stamp:
		return Continues
	case now.Gen-seen.Gen >= StampsKept:
		return Forgotten
	}
	return WentBack
}
