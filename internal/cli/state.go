package cli

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"github.com/stellwerk/stellwerk/internal/audit"
	"github.com/stellwerk/stellwerk/internal/config"
	"github.com/stellwerk/stellwerk/internal/feedback"
	"github.com/stellwerk/stellwerk/internal/flowstore"
	"github.com/stellwerk/stellwerk/internal/keys"
	"github.com/stellwerk/stellwerk/internal/spend"
	"github.com/stellwerk/stellwerk/internal/store"
)

const stateUsage = `usage: stellwerk state copy --from OLD.yaml [--from-state-dir DIR] [--config NEW.yaml]
  Copy one host's embedded state (the SQLite store the old config names) into the PostgreSQL
  database the new config names, for a host growing into a fleet: virtual keys, workspace
  provider keys, the spend ledger, the audit log with its checkpoints, route versions and
  feedback. Stop stellwerk on the old state first; the destination must be empty.
  Refused before anything is written when the keys would not work there: the destination must
  hash with the old hash key (state.hash_key) and hold the master keys provider keys are under.
`

// stateComponents are the schemas a state store holds, migrated on both
// sides of a copy so both are at this binary's version.
var stateComponents = []struct {
	name string
	ms   []store.Migration
}{
	{keys.Component, keys.Migrations},
	{spend.Component, spend.Migrations},
	{audit.Component, audit.Migrations},
	{flowstore.Component, flowstore.Migrations},
	{feedback.Component, feedback.Migrations},
}

// seededTables are the tables the migrations above write a row into
// (generation counters): the copy replaces them.
var seededTables = map[string]bool{"keys_generation": true, "routes_generation": true}

// runState is `stellwerk state …`.
func runState(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 || args[0] != "copy" {
		fmt.Fprint(stderr, stateUsage)
		return ErrUsage
	}
	fs := flag.NewFlagSet("state copy", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprint(stderr, stateUsage)
		fs.PrintDefaults()
	}
	from := fs.String("from", "", "the config of the state to copy (its state.dir, hash key and audit spool)")
	fromDir := fs.String("from-state-dir", "", "directory of the embedded store to copy, overrides the old config's state.dir")
	cfgPath := fs.String("config", defaultConfigPath(), "the config of the destination, naming state.postgres (env STELLWERK_CONFIG)")
	if err := fs.Parse(args[1:]); err != nil {
		return ErrUsage
	}
	if fs.NArg() > 0 || *from == "" {
		if *from == "" {
			fmt.Fprintln(stderr, "--from: the old config is required")
		} else {
			fmt.Fprintln(stderr, "unexpected arguments: "+strings.Join(fs.Args(), " "))
		}
		return ErrUsage
	}
	src, err := loadConfig(*from, *fromDir)
	if err != nil {
		return fmt.Errorf("--from: %w", err)
	}
	dst, err := loadConfig(*cfgPath, "")
	if err != nil {
		return fmt.Errorf("--config: %w", err)
	}
	if src.State.Postgres != nil {
		return errors.New("--from: the old config's state is in PostgreSQL already; copy from an embedded (SQLite) store")
	}
	if dst.State.Postgres == nil {
		return errors.New("--config: the new config names no state.postgres; the copy goes into PostgreSQL")
	}
	if err := storeExists(src.State); err != nil {
		return fmt.Errorf("--from: %w", err)
	}
	// What a server still running on it wrote after the copy would be
	// left behind (the operator probe copied under traffic, unwarned).
	release, err := store.LockDir(src.State.Dir)
	if err != nil {
		return fmt.Errorf("refused, nothing copied: %w", err)
	}
	defer release()
	if err := spoolEmpty(src); err != nil {
		return err
	}
	sdb, err := store.Open(ctx, src.State, os.Getenv)
	if err != nil {
		return fmt.Errorf("source: %w", err)
	}
	defer sdb.Close()
	ddb, err := store.Open(ctx, dst.State, os.Getenv)
	if err != nil {
		return fmt.Errorf("destination: %w", err)
	}
	defer ddb.Close()
	for _, c := range stateComponents {
		if err := sdb.Migrate(ctx, c.name, c.ms); err != nil {
			return fmt.Errorf("source: %w", err)
		}
		if err := ddb.Migrate(ctx, c.name, c.ms); err != nil {
			return fmt.Errorf("destination: %w", err)
		}
	}
	for _, m := range sdb.Migrated() {
		fmt.Fprintf(stderr, "source schema migrated: %s\n", m)
	}
	if err := keys.CheckMove(ctx, src.State, sdb, dst.State, os.Getenv); err != nil {
		return fmt.Errorf("refused, nothing copied: %w", err)
	}
	tables, err := store.Copy(ctx, sdb, ddb, store.CopyOptions{Seeded: seededTables})
	if err != nil {
		return fmt.Errorf("refused, nothing copied: %w", err)
	}
	var total int64
	for _, t := range tables {
		fmt.Fprintf(stdout, "%-20s %d\n", t.Name, t.Rows)
		total += t.Rows
	}
	fmt.Fprintf(stdout, "copied %d rows from %s into PostgreSQL\n", total, filepath.Join(src.State.Dir, store.SQLiteFile))
	for _, n := range afterCopyNotes(ctx, sdb, src, dst) {
		fmt.Fprintln(stderr, n)
	}
	return nil
}

// spoolEmpty refuses a source whose audit spool still holds records the
// store has not got: a copy without them would lose them.
func spoolEmpty(c *config.Config) error {
	dir := c.Audit.SpoolDir
	if dir == "" {
		dir = filepath.Join(c.State.Dir, "audit-spool")
	}
	ents, err := os.ReadDir(dir)
	if err != nil {
		return nil // no spool
	}
	for _, e := range ents {
		if fi, err := e.Info(); err == nil && strings.HasSuffix(e.Name(), ".spool") && fi.Size() > 0 {
			return fmt.Errorf("refused, nothing copied: the audit spool %s holds records the store has not got; "+
				"start stellwerk on the old state once so that it writes them, stop it, and copy again", filepath.Join(dir, e.Name()))
		}
	}
	return nil
}

// afterCopyNotes says what the copy could not carry over: the signing key
// old checkpoints need, and budget totals a Redis ledger will not read.
func afterCopyNotes(ctx context.Context, sdb *store.DB, src, dst *config.Config) []string {
	var notes []string
	ids := map[string]bool{}
	if rows, err := sdb.SQL.QueryContext(ctx, `SELECT DISTINCT key_id FROM audit_checkpoints`); err == nil {
		for rows.Next() {
			var id string
			if rows.Scan(&id) == nil {
				ids[id] = true
			}
		}
		rows.Close()
	}
	if len(ids) > 0 {
		var list []string
		for id := range ids {
			list = append(list, id)
		}
		sort.Strings(list)
		k, err := audit.LoadPublic(dst.Audit, dst.State.Dir, os.Getenv)
		if err != nil || len(ids) > 1 || !ids[k.ID] {
			old := src.Audit.SigningKey.File
			if old == "" && !src.Audit.SigningKey.IsSet() {
				old = filepath.Join(src.State.Dir, audit.KeyFile)
			}
			hint := "the old config's audit.signing_key"
			if old != "" {
				hint = old
			}
			notes = append(notes, fmt.Sprintf("note: the copied audit checkpoints are signed by key %s; set the new config's audit.signing_key to %s "+
				"so that the fleet goes on signing with it, or verify with --pubkey for each key (stellwerk audit pubkey)", strings.Join(list, ", "), hint))
		}
	}
	if dst.State.Redis != nil {
		var n int
		if sdb.SQL.QueryRowContext(ctx, `SELECT COUNT(*) FROM budget_totals`).Scan(&n) == nil && n > 0 {
			notes = append(notes, "note: the new config counts budgets in Redis; each replica seeds the current period from the copied spend ledger when it starts, "+
				"and the copied budget totals are read only by replicas without state.redis")
		}
	}
	if src.State.SpendFile != "" {
		notes = append(notes, fmt.Sprintf("note: the in-memory budgets' totals in %s (state.spend_file) are not in the store and were not copied", src.State.SpendFile))
	}
	return notes
}
