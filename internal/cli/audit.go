package cli

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/stellwerk/stellwerk/internal/audit"
	"github.com/stellwerk/stellwerk/internal/config"
	"github.com/stellwerk/stellwerk/internal/spend"
	"github.com/stellwerk/stellwerk/internal/store"
)

const auditUsage = `usage:
  stellwerk audit verify [--from T] [--to T] [--writer W] [--pubkey FILE]… [--witness FILE] [--any-retention]
                                                                              check the store's chains and checkpoints
  stellwerk audit verify --file EXPORT --pubkey FILE [--witness FILE]        check an export offline (no config, no store)
  stellwerk audit witness [--out FILE]                                        print each writer's latest checkpoint, to keep
                                                                              where the database's administrators cannot write
  stellwerk audit export --from T --to T [--workspace W] [--key ID] [--writer W] [--format jsonl|csv] [--out FILE]
                                                                              the records of a period (of a workspace, of a key),
                                                                              with the chain and checkpoints to verify them
  stellwerk audit pubkey                                                      print the signing key's public half (PEM)
  stellwerk audit prune                                                       apply audit.retention now
T is an RFC 3339 time, a date (2006-01-02, midnight UTC), now, or a duration ago (36h, 7d), as
stellwerk spend and GET /admin/audit read it. Without --pubkey, verify trusts the public half of the
configured signing key (audit.signing_key, or the one generated into state.dir). Every verb but
verify --file takes --config FILE (env STELLWERK_CONFIG) and --state-dir DIR. verify exits 1 when it
finds a problem and prints each with its writer and seq. --witness FILE (a witness file or an earlier
export) makes every signed checkpoint in it count: missing from the store, or signing another chain,
is a problem. A record's body, or a chain's start, removed before the config's audit.retention
allows is a problem too; --any-retention accepts any removal (the retention was shorter once).
export --key ID selects the records of one key (principal.key_id; a leaked key's); every other entry
is in the file as a link, so verify --file checks it whole.
`

// runAudit is `stellwerk audit …`.
func runAudit(ctx context.Context, args []string, stdout, stderr io.Writer) (err error) {
	if len(args) == 0 {
		fmt.Fprint(stderr, auditUsage)
		return ErrUsage
	}
	verb, args := args[0], args[1:]
	if isHelp(verb) {
		fmt.Fprint(stdout, auditUsage)
		return nil
	}
	fs := flag.NewFlagSet("audit "+verb, flag.ContinueOnError)
	fs.SetOutput(stderr)
	cfgPath := fs.String("config", defaultConfigPath(), "config file (env STELLWERK_CONFIG)")
	stateDir := fs.String("state-dir", "", "directory of the embedded store, overrides state.dir (as for serve)")
	var from, to, writer, workspace, key, file, format, outPath, witness string
	var pubkeys multiFlag
	asJSON, anyRetention := false, false
	switch verb {
	case "verify":
		fs.StringVar(&from, "from", "", "only records from this time (RFC 3339, a date, now, or a duration ago: 36h, 7d)")
		fs.StringVar(&to, "to", "", "only records before this time")
		fs.StringVar(&writer, "writer", "", "only this writer's chain")
		fs.StringVar(&file, "file", "", "verify an export file (JSONL or CSV) instead of the store")
		fs.Var(&pubkeys, "pubkey", "trusted public key file (PEM or base64; repeatable)")
		fs.BoolVar(&asJSON, "json", false, "print the report as JSON")
		fs.StringVar(&witness, "witness", "", "checkpoints kept outside the store (audit witness, or an export): each must still be there")
		fs.BoolVar(&anyRetention, "any-retention", false, "accept bodies and chain starts removed before audit.retention allows (it was shorter once)")
	case "witness":
		fs.StringVar(&outPath, "out", "", "write to this file (default stdout)")
	case "export":
		fs.StringVar(&from, "from", "", "records from this time (required; RFC 3339, a date, now, or a duration ago: 36h, 7d)")
		fs.StringVar(&to, "to", "", "records before this time (required)")
		fs.StringVar(&workspace, "workspace", "", "only this workspace's records (others appear as links)")
		fs.StringVar(&key, "key", "", "only this key's records, by principal.key_id (others appear as links)")
		fs.StringVar(&writer, "writer", "", "only this writer's chain")
		fs.StringVar(&format, "format", "jsonl", "jsonl or csv")
		fs.StringVar(&outPath, "out", "", "write to this file (default stdout)")
	case "pubkey", "prune":
	default:
		fmt.Fprintf(stderr, "unknown audit command %q\n\n%s", verb, auditUsage)
		return ErrUsage
	}
	if err := fs.Parse(args); err != nil {
		return ErrUsage
	}
	var problems []string
	if fs.NArg() > 0 {
		problems = append(problems, "unexpected arguments: "+strings.Join(fs.Args(), " "))
	}
	fromT, err := parseWhen(from)
	if err != nil {
		problems = append(problems, "--from: "+err.Error())
	}
	toT, err := parseWhen(to)
	if err != nil {
		problems = append(problems, "--to: "+err.Error())
	}
	if !fromT.IsZero() && !toT.IsZero() && !toT.After(fromT) {
		problems = append(problems, "--to must be after --from")
	}
	switch verb {
	case "export":
		if from == "" || to == "" {
			problems = append(problems, "export needs --from and --to")
		}
		if format != "jsonl" && format != "csv" {
			problems = append(problems, fmt.Sprintf("--format %q: want jsonl or csv", format))
		}
	case "verify":
		if file != "" && (from != "" || to != "" || writer != "") {
			problems = append(problems, "--file verifies the whole export: --from, --to and --writer apply to the store")
		}
		if file != "" && len(pubkeys) == 0 {
			problems = append(problems, "--file needs --pubkey: an export is verified against a key you trust, not one it carries")
		}
	}
	if len(problems) > 0 {
		fmt.Fprintln(stderr, strings.Join(problems, "\n"))
		return ErrUsage
	}

	var keys []audit.PublicKey
	for _, p := range pubkeys {
		b, err := os.ReadFile(p)
		if err != nil {
			return fmt.Errorf("--pubkey: %w", err)
		}
		ks, err := audit.ParsePublicKeys(b)
		if err != nil {
			return fmt.Errorf("--pubkey %s: %w", p, err)
		}
		keys = append(keys, ks...)
	}
	if verb == "verify" && file != "" {
		f, err := os.Open(file)
		if err != nil {
			return err
		}
		defer f.Close()
		var wit []audit.Checkpoint
		if witness != "" {
			if wit, err = readWitness(witness); err != nil {
				return err
			}
		}
		rep, err := audit.VerifyExport(f, keys, wit)
		if err != nil {
			return err
		}
		return printReport(rep, asJSON, stdout)
	}

	cfg, err := loadConfig(*cfgPath, *stateDir)
	if err != nil {
		return err
	}
	if verb == "pubkey" {
		k, err := audit.LoadPublic(cfg.Audit, cfg.State.Dir, os.Getenv)
		if err != nil {
			return err
		}
		fmt.Fprint(stdout, k.PEM())
		fmt.Fprintf(stderr, "key id %s\n", k.ID)
		return nil
	}
	if err := storeExists(cfg.State); err != nil {
		return err
	}
	// Opening the store is bounded; verify, export and prune then read or
	// change the whole log, which may rightly take longer than the bound.
	octx, cancel := boundStore(ctx)
	defer cancel()
	defer func() { err = storeTimedOut(octx, err) }()
	db, err := store.Open(octx, cfg.State, os.Getenv)
	if err != nil {
		return err
	}
	defer db.Close()
	st, err := audit.OpenStore(octx, db)
	if err != nil {
		return err
	}
	if verb == "witness" {
		ctx = octx // the last checkpoint of each writer: a short read
	} else {
		cancel() // the bound was for opening: its time does not run on
	}
	switch verb {
	case "verify":
		if len(keys) == 0 {
			k, err := audit.LoadPublic(cfg.Audit, cfg.State.Dir, os.Getenv)
			if err != nil {
				return fmt.Errorf("%w (give --pubkey)", err)
			}
			keys = []audit.PublicKey{k}
		}
		interval := cfg.Audit.CheckpointInterval
		if interval == 0 {
			interval = config.DefaultAuditCheckpointInterval
		}
		o := audit.VerifyOptions{From: fromT, To: toT, Writer: writer, CheckpointInterval: interval,
			MaxRequest: cfg.Envoy.RequestTimeout + time.Minute} // slow uploads, the edge's end
		if !anyRetention {
			r := cfg.Audit.Retention
			o.Retention, o.Now = &audit.Retention{Default: r.Default, Workspaces: r.Workspaces}, time.Now()
		}
		if witness != "" {
			if o.Witness, err = readWitness(witness); err != nil {
				return err
			}
		}
		rep, err := st.Verify(ctx, keys, o)
		if err != nil {
			return err
		}
		if writer != "" && len(rep.Writers) == 0 {
			// Nothing verified is no "ok" (the CLI probe: a mistyped
			// --writer passed).
			return fmt.Errorf("the audit log has no writer %q (stellwerk audit verify without --writer lists them)", writer)
		}
		return printReport(rep, asJSON, stdout)
	case "witness":
		cps, err := st.Checkpoints(ctx, "")
		if err != nil {
			return err
		}
		w, finish, err := outputTo(outPath, stdout)
		if err != nil {
			return err
		}
		enc := json.NewEncoder(w) // JSON lines, as an export's
		writers := 0
		for i := range cps { // by writer, then seq: each writer's last
			if i+1 < len(cps) && cps[i+1].Writer == cps[i].Writer {
				continue
			}
			writers++
			if err := enc.Encode(audit.CheckpointLine(&cps[i])); err != nil {
				return finish(err)
			}
		}
		if err := finish(nil); err != nil {
			return err
		}
		fmt.Fprintf(stderr, "%d writer(s); keep this where the database's administrators cannot write, and verify with: stellwerk audit verify --witness FILE\n", writers)
		return nil
	case "export":
		w, finish, err := outputTo(outPath, stdout)
		if err != nil {
			return err
		}
		n, err := st.Export(ctx, audit.ExportFilter{From: fromT, To: toT, Workspace: workspace, Writer: writer, Key: key}, format, w)
		if err := finish(err); err != nil {
			return err
		}
		fmt.Fprintf(stderr, "%d record(s) exported, with the chain and checkpoints around them; verify with: stellwerk audit verify --file FILE --pubkey KEY\n", n)
		return nil
	case "prune":
		r := cfg.Audit.Retention
		res, err := st.Prune(ctx, audit.Retention{Default: r.Default, Workspaces: r.Workspaces}, time.Now())
		if err != nil {
			return err
		}
		fmt.Fprintf(stdout, "%d record(s) pruned (content removed), %d chain row(s) compacted\n", res.Pruned, res.Compacted)
		return nil
	}
	return nil
}

// outputTo is where a verb writes: stdout, or, for path, a new file
// beside it (0600) that finish renames to path once everything was written
// (and removes when it was not). An export interrupted by Ctrl-C or an
// error left the file it was replacing empty or cut short, and a cut
// export can verify (the CLI probe); now path is the old file or the
// whole new one.
func outputTo(path string, stdout io.Writer) (w io.Writer, finish func(error) error, err error) {
	if path == "" {
		return stdout, func(err error) error { return err }, nil
	}
	f, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".partial-*")
	if err != nil {
		return nil, nil, err
	}
	return f, func(werr error) error {
		if werr == nil {
			werr = f.Sync()
		}
		if cerr := f.Close(); werr == nil {
			werr = cerr
		}
		if werr == nil {
			werr = os.Rename(f.Name(), path)
		}
		if werr != nil {
			os.Remove(f.Name())
		}
		return werr
	}, nil
}

// readWitness reads the checkpoint lines of a witness file or an export.
func readWitness(path string) ([]audit.Checkpoint, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("--witness: %w", err)
	}
	defer f.Close()
	lines, err := audit.ReadLines(f)
	if err != nil {
		return nil, fmt.Errorf("--witness %s: %w", path, err)
	}
	var cps []audit.Checkpoint
	for i := range lines {
		if lines[i].Type != audit.LineCheckpoint {
			continue
		}
		c, err := lines[i].Checkpoint()
		if err != nil {
			return nil, fmt.Errorf("--witness %s: %w", path, err)
		}
		cps = append(cps, c)
	}
	if len(cps) == 0 {
		return nil, fmt.Errorf("--witness %s: no checkpoint in it", path)
	}
	return cps, nil
}

// errProblems is verify's failure: the report says what.
var errProblems = errors.New("audit verification failed")

func printReport(rep *audit.Report, asJSON bool, stdout io.Writer) error {
	if asJSON {
		if err := writeJSONTo(stdout, rep); err != nil {
			return err
		}
	} else {
		for _, w := range rep.Writers {
			state := "open (running, or ended without a shutdown checkpoint)"
			if w.Closed {
				state = "closed"
			}
			anchor := "from its start"
			if w.AnchoredAt > 0 {
				anchor = fmt.Sprintf("from checkpoint %d", w.AnchoredAt)
			}
			fmt.Fprintf(stdout, "%s: seq %d-%d, %d records (%d pruned, %d links), %d checkpoints, signed through %d, %d unsigned, verified %s, %s\n",
				w.Writer, w.FirstSeq, w.LastSeq, w.Records, w.Pruned, w.Links, w.Checkpoints, w.SignedThrough, w.Unsigned, anchor, state)
		}
		for _, p := range rep.Problems {
			fmt.Fprintf(stdout, "PROBLEM %s\n", p)
		}
		if rep.OK() {
			fmt.Fprintf(stdout, "ok: %d records in %d chain(s) verified\n", rep.Records, len(rep.Writers))
		}
	}
	if !rep.OK() {
		return fmt.Errorf("%w: %d problem(s)", errProblems, len(rep.Problems))
	}
	return nil
}

// parseWhen reads a time as spend's reports do (spend.ParseTime: RFC 3339,
// a date at UTC midnight, "now", or a duration ago: 36h, 7d); "" is the
// zero time. audit export and replay took RFC 3339 and dates only, where
// spend took 7d (the CLI probe).
func parseWhen(s string) (time.Time, error) {
	if s == "" {
		return time.Time{}, nil
	}
	return spend.ParseTime(s, time.Now(), time.UTC)
}
