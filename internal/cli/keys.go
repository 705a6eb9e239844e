package cli

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/user"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/stellwerk/stellwerk/internal/admin"
	"github.com/stellwerk/stellwerk/internal/audit"
	"github.com/stellwerk/stellwerk/internal/auth"
	"github.com/stellwerk/stellwerk/internal/config"
	"github.com/stellwerk/stellwerk/internal/keys"
	"github.com/stellwerk/stellwerk/internal/store"
)

const keysUsage = `usage:
  stellwerk keys hash [KEY]                       sha256 of a key for keys[].sha256 in stellwerk.yaml (stdin when omitted)
  stellwerk keys create --workspace W [flags]     create a key; its secret is printed once, on stdout
  stellwerk keys list [--workspace W] [--team T] [--user U] [--status active|expired|revoked] [--limit N]
                                                  in the order of the ids, printed as read (--json: one array)
  stellwerk keys show ID
  stellwerk keys rotate ID [--grace 1h]           a new secret (printed once); the old one stops (after the grace)
  stellwerk keys revoke ID [--reason TEXT]        refused by every replica within a second; the reason goes on the audit record
  stellwerk keys limits ID [--budget EUR:PERIOD[:ACTION]]... [--rpm N] [--tpm N] [--rpd N] [--tpd N]
                                                  replace the key's own budgets and rate limits (none given: remove them)
  stellwerk keys models ID [--models a,b,provider:p]
                                                  replace the models the key may use (none given: what its workspace allows)
  stellwerk keys provider set WORKSPACE PROVIDER  store the workspace's own provider key, read from stdin
  stellwerk keys provider list [--workspace W]
  stellwerk keys provider delete WORKSPACE PROVIDER
  stellwerk keys rotate-master                    re-encrypt provider keys under the first state.master_keys entry
Every verb but hash takes --config FILE (env STELLWERK_CONFIG), --state-dir DIR and --json, and
works on the store the config names (state.dir or state.postgres), beside running servers.
`

// runKeys is `stellwerk keys …`.
func runKeys(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) (err error) {
	if len(args) == 0 {
		fmt.Fprint(stderr, keysUsage)
		return ErrUsage
	}
	verb, args := args[0], args[1:]
	if isHelp(verb) {
		fmt.Fprint(stdout, keysUsage)
		return nil
	}
	if verb == "hash" {
		return runKeysHash(args, stdin, stdout, stderr)
	}
	if verb == "provider" {
		if len(args) == 0 {
			fmt.Fprint(stderr, keysUsage)
			return ErrUsage
		}
		verb, args = "provider "+args[0], args[1:]
	}
	fs := flag.NewFlagSet("keys "+verb, flag.ContinueOnError)
	fs.SetOutput(stderr)
	cfgPath := fs.String("config", defaultConfigPath(), "config file (env STELLWERK_CONFIG)")
	asJSON := fs.Bool("json", false, "print JSON")
	stateDir := fs.String("state-dir", "", "directory of the embedded key store, overrides state.dir (as for serve)")
	var spec keys.Spec
	var expiresIn, expiresAt, models, routes string
	var budgets, meta multiFlag
	var grace time.Duration
	var filter keys.Filter
	var listLimit int
	var reason string
	switch verb {
	case "create":
		fs.StringVar(&spec.ID, "id", "", "key id (lower-case letters, digits, - and _); generated when empty")
		fs.StringVar(&spec.Workspace, "workspace", "", "workspace (required)")
		fs.StringVar(&spec.Team, "team", "", "team of the workspace")
		fs.StringVar(&spec.User, "user", "", "user the key belongs to")
		fs.StringVar(&models, "models", "", "comma-separated model ids or provider:<name> the key may use (default: what its workspace allows)")
		fs.StringVar(&routes, "routes", "", "comma-separated named routes the key may use")
		fs.StringVar(&expiresIn, "expires-in", "", "expiry as a duration from now, e.g. 720h")
		fs.StringVar(&expiresAt, "expires-at", "", "expiry as an RFC 3339 time")
		fs.Var(&budgets, "budget", "budget EUR:PERIOD[:ACTION], e.g. 50:month or 5:day:downgrade (repeatable)")
		fs.Int64Var(&spec.Limits.RateLimit.RequestsPerMinute, "rpm", 0, "requests per minute")
		fs.Int64Var(&spec.Limits.RateLimit.TokensPerMinute, "tpm", 0, "tokens per minute")
		fs.Int64Var(&spec.Limits.RateLimit.RequestsPerDay, "rpd", 0, "requests per day")
		fs.Int64Var(&spec.Limits.RateLimit.TokensPerDay, "tpd", 0, "tokens per day")
		fs.Var(&meta, "meta", "metadata KEY=VALUE (repeatable)")
	case "list":
		fs.StringVar(&filter.Workspace, "workspace", "", "only this workspace")
		fs.StringVar(&filter.Team, "team", "", "only this team")
		fs.StringVar(&filter.User, "user", "", "only this user")
		fs.StringVar(&filter.Status, "status", "", "only active, expired or revoked keys")
		fs.IntVar(&listLimit, "limit", 0, "stop after this many keys (0: all)")
	case "rotate":
		fs.DurationVar(&grace, "grace", 0, "keep the old secret working this long (at most 168h)")
	case "models":
		fs.StringVar(&models, "models", "", "comma-separated model ids or provider:<name> the key may use (empty: what its workspace allows)")
	case "limits":
		fs.Var(&budgets, "budget", "budget EUR:PERIOD[:ACTION], e.g. 50:month or 5:day:downgrade (repeatable)")
		fs.Int64Var(&spec.Limits.RateLimit.RequestsPerMinute, "rpm", 0, "requests per minute")
		fs.Int64Var(&spec.Limits.RateLimit.TokensPerMinute, "tpm", 0, "tokens per minute")
		fs.Int64Var(&spec.Limits.RateLimit.RequestsPerDay, "rpd", 0, "requests per day")
		fs.Int64Var(&spec.Limits.RateLimit.TokensPerDay, "tpd", 0, "tokens per day")
	case "provider list":
		fs.StringVar(&filter.Workspace, "workspace", "", "only this workspace")
	case "revoke":
		fs.StringVar(&reason, "reason", "", fmt.Sprintf("why, for the audit record (one line, at most %d bytes)", admin.MaxRevokeReason))
	case "show", "provider set", "provider delete", "rotate-master":
	default:
		fmt.Fprintf(stderr, "unknown keys command %q\n\n%s", verb, keysUsage)
		return ErrUsage
	}
	pos, err := parseInterspersed(fs, args)
	if err != nil {
		return ErrUsage
	}
	want := map[string]int{"show": 1, "rotate": 1, "revoke": 1, "limits": 1, "models": 1, "provider set": 2, "provider delete": 2}[verb]
	if len(pos) != want {
		fmt.Fprintf(stderr, "keys %s takes %d argument(s), got %d\n\n%s", verb, want, len(pos), keysUsage)
		return ErrUsage
	}

	// Flags are checked together before anything is opened.
	var problems []string
	for _, b := range budgets { // create and limits
		bd, err := parseBudget(b)
		if err != nil {
			problems = append(problems, err.Error())
		}
		spec.Limits.Budgets = append(spec.Limits.Budgets, bd)
	}
	if verb == "limits" {
		if errs := spec.Limits.Check("limits"); len(errs) > 0 {
			f, msg, _ := strings.Cut(errs[0].Error(), ": ")
			problems = append(problems, cliField(f)+": "+msg)
		}
	}
	if verb == "create" {
		spec.Models, spec.Routes = splitList(models), splitList(routes)
		for _, m := range meta {
			k, v, ok := strings.Cut(m, "=")
			if !ok {
				problems = append(problems, fmt.Sprintf("--meta %q: want KEY=VALUE", m))
				continue
			}
			if spec.Metadata == nil {
				spec.Metadata = map[string]string{}
			}
			spec.Metadata[k] = v
		}
		req := admin.CreateKeyRequest{Spec: spec, ExpiresIn: expiresIn}
		if expiresAt != "" {
			t, err := time.Parse(time.RFC3339, expiresAt)
			if err != nil {
				problems = append(problems, fmt.Sprintf("--expires-at %q: not an RFC 3339 time", expiresAt))
			}
			req.ExpiresAt = t
		}
		if len(problems) == 0 {
			if spec, err = req.Resolve(time.Now()); err != nil {
				problems = append(problems, cliProblem(err))
			}
		}
	}
	if err := admin.CheckRevokeReason(reason); err != nil {
		problems = append(problems, cliProblem(err))
	}
	if listLimit < 0 {
		problems = append(problems, "--limit: must be 0 (all) or more")
	}
	if len(problems) > 0 {
		fmt.Fprintln(stderr, strings.Join(problems, "\n"))
		return ErrUsage
	}

	cfg, err := loadConfig(*cfgPath, *stateDir)
	if err != nil {
		return err
	}
	if verb == "create" {
		if err := spec.CheckConfig(cfg); err != nil {
			fmt.Fprintln(stderr, cliProblem(err))
			return ErrUsage
		}
	}
	if verb == "list" || verb == "provider list" {
		if err := filter.CheckConfig(cfg); err != nil {
			fmt.Fprintln(stderr, cliProblem(err))
			return ErrUsage
		}
	}
	if verb != "create" && verb != "provider set" { // the verbs that may start a new store
		if err := storeExists(cfg.State); err != nil {
			return err
		}
	}
	var secret []byte // provider set's, read before the store's time starts
	if verb == "provider set" {
		if secret, err = readProviderSecret(stdin, stderr); err != nil {
			return err
		}
		defer clear(secret)
	}
	ctx, cancel := boundStore(ctx)
	defer cancel()
	defer func() { err = storeTimedOut(ctx, err) }()
	ks, db, err := keys.OpenConfigured(ctx, cfg.State, os.Getenv)
	if err != nil {
		return err
	}
	defer db.Close()
	k := &keysCLI{ks: ks, db: db, cfg: cfg, json: *asJSON, stdout: stdout, stderr: stderr, by: cliUser(os.Getenv)}
	switch verb {
	case "create":
		return k.create(ctx, spec)
	case "list":
		return k.list(ctx, filter, listLimit)
	case "show":
		key, err := ks.Get(ctx, pos[0])
		if err != nil {
			return k.fail(keys.OrConfigKey(err, cfg, pos[0]))
		}
		return k.printKey(key)
	case "rotate":
		key, secret, err := ks.Rotate(ctx, pos[0], grace, k.by)
		if err != nil {
			return k.fail(keys.OrConfigKey(err, cfg, pos[0]))
		}
		k.changed(ctx, audit.KindKey, key.Workspace, "rotate", key.ID, map[string]string{"grace": grace.String()})
		return k.printSecret(key, secret, "rotated")
	case "limits":
		key, err := ks.SetLimits(ctx, pos[0], spec.Limits, k.by)
		if err != nil {
			return k.fail(keys.OrConfigKey(err, cfg, pos[0]))
		}
		detail, _ := json.Marshal(key.Limits)
		k.changed(ctx, audit.KindKey, key.Workspace, "limits", key.ID, map[string]string{"limits": string(detail)})
		fmt.Fprintf(stderr, "key %s's limits set; every replica applies them within a second\n", key.ID)
		return k.printKey(key)
	case "models":
		key, err := ks.SetModels(ctx, pos[0], splitList(models), cfg, k.by)
		if err != nil {
			return k.fail(keys.OrConfigKey(err, cfg, pos[0]))
		}
		k.changed(ctx, audit.KindKey, key.Workspace, "models", key.ID, map[string]string{"models": strings.Join(key.Models, ",")})
		fmt.Fprintf(stderr, "key %s's models set; every replica applies them within a second\n", key.ID)
		return k.printKey(key)
	case "revoke":
		key, err := ks.Revoke(ctx, pos[0], k.by)
		if err != nil {
			return k.fail(keys.OrConfigKey(err, cfg, pos[0]))
		}
		k.changed(ctx, audit.KindKey, key.Workspace, "revoke", key.ID, admin.RevokeDetail(reason))
		fmt.Fprintf(stderr, "key %s revoked; every replica refuses it within a second\n", key.ID)
		if k.json {
			return k.printKey(key)
		}
		return nil
	case "provider set":
		return k.providerSet(ctx, pos[0], pos[1], secret)
	case "provider list":
		list, err := ks.ListProviderKeys(ctx, filter.Workspace)
		if err != nil {
			return k.fail(err)
		}
		if k.json {
			return writeJSONTo(stdout, list)
		}
		tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "WORKSPACE\tPROVIDER\tMASTER KEY\tUPDATED\tBY")
		for _, p := range list {
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", shown(p.Workspace), shown(p.Provider), shown(p.MasterKeyID), p.UpdatedAt.Format(time.RFC3339), shown(p.UpdatedBy))
		}
		return tw.Flush()
	case "provider delete":
		if err := ks.DeleteProviderKey(ctx, pos[0], pos[1]); err != nil {
			return k.fail(err)
		}
		k.changed(ctx, audit.KindProviderKey, pos[0], "delete", pos[0]+"/"+pos[1], nil)
		if k.json {
			return writeJSONTo(stdout, map[string]any{"workspace": pos[0], "provider": pos[1], "deleted": true})
		}
		fmt.Fprintf(stderr, "provider key of %s for %s deleted\n", pos[0], pos[1])
		return nil
	case "rotate-master":
		n, err := ks.RotateMaster(ctx, k.by)
		if err != nil {
			return k.fail(err)
		}
		k.changed(ctx, audit.KindProviderKey, "", "rotate_master", "", map[string]string{"records": strconv.Itoa(n)})
		if k.json {
			return writeJSONTo(stdout, map[string]any{"reencrypted": n, "master_key": cfg.State.MasterKeys[0].ID})
		}
		fmt.Fprintf(stdout, "%d provider key(s) re-encrypted under master key %s\n", n, cfg.State.MasterKeys[0].ID)
		return nil
	}
	return nil
}

type keysCLI struct {
	ks             *keys.Store
	db             *store.DB
	cfg            *config.Config
	json           bool
	stdout, stderr io.Writer
	by             string
}

func (k *keysCLI) create(ctx context.Context, spec keys.Spec) error {
	key, secret, err := k.ks.Create(ctx, spec, k.by)
	if err != nil {
		return k.fail(err)
	}
	k.changed(ctx, audit.KindKey, key.Workspace, "create", key.ID, admin.CreateDetail(key))
	return k.printSecret(key, secret, "created")
}

// changed puts a change made here on the audit record, with who made it.
func (k *keysCLI) changed(ctx context.Context, kind, workspace, action, target string, detail map[string]string) {
	recordChange(ctx, k.cfg, k.db, kind, workspace, audit.Change{Actor: k.by, Action: action, Target: target, Detail: detail}, k.stderr)
}

// printSecret shows a new secret: alone on stdout (so it can be captured),
// the rest on stderr; or everything as JSON.
// A secret that could not be written is lost (the store keeps its hash
// alone): the verb fails, saying what to do, rather than exit 0 with the
// key made and its secret gone (the CLI probe: `> /dev/full`).
func (k *keysCLI) printSecret(key keys.Key, secret, what string) error {
	var err error
	if k.json {
		err = writeJSONTo(k.stdout, admin.KeyWithSecret{Key: admin.View(key, time.Now()), Secret: secret})
	} else {
		fmt.Fprintf(k.stderr, "key %s %s (workspace %s, prefix %s); its secret follows, shown this once:\n", key.ID, what, key.Workspace, key.Prefix)
		_, err = fmt.Fprintln(k.stdout, secret)
	}
	if err != nil {
		return fmt.Errorf("key %s was %s, but its secret could not be written (%v) and is lost: rotate it (stellwerk keys rotate %s) or revoke it", key.ID, what, err, key.ID)
	}
	return nil
}

func (k *keysCLI) printKey(key keys.Key) error {
	v := admin.View(key, time.Now())
	if k.json {
		return writeJSONTo(k.stdout, v)
	}
	b, _ := json.MarshalIndent(v, "", "  ")
	fmt.Fprintln(k.stdout, string(b))
	return nil
}

// list prints the keys a page of the store at a time, so that its memory
// does not grow with the store (50,000 keys took 150 MB and 1.9 s before
// the first line, with --json 182 MB: the data-volume probe); limit > 0
// stops after that many. The table's columns are aligned within each page
// of listPage keys; --json is one array, written as it is read, in the
// bytes writeJSONTo wrote for the whole list.
func (k *keysCLI) list(ctx context.Context, f keys.Filter, limit int) error {
	var tw *tabwriter.Writer
	if !k.json {
		tw = tabwriter.NewWriter(k.stdout, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "ID\tPREFIX\tWORKSPACE\tTEAM\tUSER\tSTATUS\tEXPIRES\tCREATED")
	}
	bw := bufio.NewWriter(k.stdout)
	n, after := 0, ""
	for {
		size := listPage
		if limit > 0 {
			size = min(size, limit-n)
		}
		page, more, err := k.ks.ListPage(ctx, f, after, size)
		if err != nil {
			if n > 0 && k.json {
				bw.WriteString("\n]\n") // what was printed stays valid JSON; the exit status says it is cut short
				bw.Flush()
			}
			return k.fail(err)
		}
		now := time.Now()
		for _, key := range page {
			if k.json {
				b, err := json.MarshalIndent(admin.View(key, now), "  ", "  ")
				if err != nil {
					return err
				}
				if n == 0 {
					bw.WriteString("[\n  ")
				} else {
					bw.WriteString(",\n  ")
				}
				bw.Write(b)
			} else {
				exp := "-"
				if !key.ExpiresAt.IsZero() {
					exp = key.ExpiresAt.Format(time.RFC3339)
				}
				fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", shown(key.ID), shown(key.Prefix), shown(key.Workspace), dash(key.Team), dash(key.User),
					key.Status(now), exp, key.CreatedAt.Format(time.RFC3339))
			}
			n++
		}
		last := !more || (limit > 0 && n >= limit)
		if tw != nil {
			if !last { // the last page is flushed with the config's keys
				if err := tw.Flush(); err != nil {
					return err
				}
			}
		} else if err := bw.Flush(); err != nil {
			return err
		}
		if last {
			break
		}
		after = page[len(page)-1].ID
	}
	ck := keys.ConfigKeys(k.cfg, f)
	if k.json {
		if n == 0 {
			bw.WriteString("[]\n")
		} else {
			bw.WriteString("\n]\n")
		}
		if err := bw.Flush(); err != nil {
			return err
		}
		if len(ck) > 0 { // the array stays the store's keys, whose ids the other verbs take
			ids := make([]string, len(ck))
			for i, c := range ck {
				ids[i] = shown(c.ID)
			}
			fmt.Fprintf(k.stderr, "and %d key(s) of stellwerk.yaml, not in the store (change them in the config): %s\n", len(ck), strings.Join(ids, ", "))
		}
		return nil
	}
	// The config's keys serve too: listed after the store's, marked, never
	// with a digest or the variable that holds one.
	for _, c := range ck {
		if limit > 0 && n >= limit {
			break
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", shown(c.ID), "-", shown(c.Workspace), dash(c.Team), dash(c.User),
			"config", "-", "stellwerk.yaml")
		n++
	}
	return tw.Flush()
}

// listPage is how many keys keys list reads (and aligns) at a time.
var listPage = keys.MaxPage

// readProviderSecret reads provider set's key from stdin.
func readProviderSecret(stdin io.Reader, stderr io.Writer) ([]byte, error) {
	b, err := io.ReadAll(io.LimitReader(stdin, 16<<10))
	if err != nil {
		return nil, err
	}
	secret := []byte(strings.TrimSpace(string(b)))
	clear(b)
	if len(secret) == 0 {
		fmt.Fprintln(stderr, "keys provider set reads the provider key from stdin, and it was empty")
		return nil, ErrUsage
	}
	return secret, nil
}

func (k *keysCLI) providerSet(ctx context.Context, ws, prov string, secret []byte) error {
	if !hasProvider(k.cfg, prov) {
		fmt.Fprintf(k.stderr, "unknown provider %q\n", prov)
		return ErrUsage
	}
	if err := (keys.Spec{Workspace: ws}).CheckConfig(k.cfg); err != nil {
		fmt.Fprintln(k.stderr, cliProblem(err))
		return ErrUsage
	}
	if err := k.ks.SetProviderKey(ctx, ws, prov, secret, k.by); err != nil {
		return k.fail(err)
	}
	k.changed(ctx, audit.KindProviderKey, ws, "set", ws+"/"+prov, nil)
	if k.json {
		return writeJSONTo(k.stdout, map[string]any{"workspace": ws, "provider": prov, "master_key": k.cfg.State.MasterKeys[0].ID})
	}
	fmt.Fprintf(k.stderr, "provider key of %s for %s stored (encrypted under master key %s)\n", ws, prov, k.cfg.State.MasterKeys[0].ID)
	return nil
}

func hasProvider(c *config.Config, name string) bool {
	for _, p := range c.Providers {
		if p.Name == name {
			return true
		}
	}
	return false
}

// fail turns a store error into the CLI's message (and exit status 1).
func (k *keysCLI) fail(err error) error {
	var inv *keys.InvalidError
	if errors.As(err, &inv) {
		fmt.Fprintln(k.stderr, cliProblem(err))
		return ErrUsage
	}
	return fmt.Errorf("keys: %w", err)
}

func cliProblem(err error) string {
	var inv *keys.InvalidError
	if errors.As(err, &inv) {
		return cliField(inv.Field) + ": " + inv.Msg
	}
	return err.Error()
}

// cliField names the flag that sets a key's field: limits.budgets[0].x is
// the first --budget (#1), limits.rate_limit.requests_per_minute is --rpm.
func cliField(field string) string {
	if i, ok := strings.CutPrefix(field, "limits.budgets["); ok {
		n, _, _ := strings.Cut(i, "]")
		k, _ := strconv.Atoi(n)
		return fmt.Sprintf("--budget #%d", k+1)
	}
	switch field {
	case "limits.rate_limit.requests_per_minute":
		return "--rpm"
	case "limits.rate_limit.tokens_per_minute":
		return "--tpm"
	case "limits.rate_limit.requests_per_day":
		return "--rpd"
	case "limits.rate_limit.tokens_per_day":
		return "--tpd"
	}
	return "--" + strings.ReplaceAll(field, "_", "-")
}

func dash(s string) string {
	if s == "" {
		return "-"
	}
	return shown(s)
}

func splitList(s string) []string {
	var out []string
	for _, e := range strings.Split(s, ",") {
		if e = strings.TrimSpace(e); e != "" {
			out = append(out, e)
		}
	}
	return out
}

// parseBudget reads EUR:PERIOD[:ACTION].
func parseBudget(s string) (config.Budget, error) {
	parts := strings.Split(s, ":")
	if len(parts) < 2 || len(parts) > 3 {
		return config.Budget{}, fmt.Errorf("--budget %q: want EUR:PERIOD[:ACTION], e.g. 50:month", s)
	}
	amount, err := strconv.ParseFloat(parts[0], 64)
	if err != nil {
		return config.Budget{}, fmt.Errorf("--budget %q: %q is not an amount", s, parts[0])
	}
	b := config.Budget{AmountEUR: amount, Period: parts[1]}
	if len(parts) == 3 {
		b.Action = parts[2]
	}
	return b, nil
}

// cliUser names who ran a CLI command, for the key's record and the audit
// log: under sudo, the user who ran sudo ("cli:alice (sudo)"), not root,
// which named no one (the incident probe's F10). SUDO_USER is what sudo
// sets; anyone able to run the CLI as root could set it too, so it names
// who claims to have acted, as the unix user does.
func cliUser(getenv func(string) string) string {
	name := ""
	if u, err := user.Current(); err == nil {
		name = u.Username
	}
	if su := getenv("SUDO_USER"); su != "" && su != name && admin.OneLine(su) && len(su) <= 64 {
		// A name that is no one line of text is not taken (the red team:
		// a newline and a bidi override reached the key's record).
		if name == "root" || name == "" {
			return "cli:" + su + " (sudo)"
		}
		return "cli:" + name + " (sudo from " + su + ")"
	}
	if name != "" {
		return "cli:" + name
	}
	return "cli"
}

func writeJSONTo(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

type multiFlag []string

func (m *multiFlag) String() string     { return strings.Join(*m, ",") }
func (m *multiFlag) Set(v string) error { *m = append(*m, v); return nil }

// parseInterspersed parses flags that may come after positional arguments
// (`keys show ID --json`).
func parseInterspersed(fs *flag.FlagSet, args []string) ([]string, error) {
	var pos []string
	for {
		if err := fs.Parse(args); err != nil {
			return nil, err
		}
		if fs.NArg() == 0 {
			return pos, nil
		}
		pos = append(pos, fs.Arg(0))
		args = fs.Args()[1:]
	}
}

// runKeysHash: `stellwerk keys hash KEY` prints the digest for keys[].sha256.
func runKeysHash(args []string, stdin io.Reader, stdout, stderr io.Writer) error {
	const usage = "usage: stellwerk keys hash [KEY]   (reads the key from stdin when omitted)"
	if len(args) == 1 && isHelp(args[0]) {
		// Not the digest of "-h" (the CLI probe). A key is never a flag.
		fmt.Fprintln(stdout, usage)
		return nil
	}
	if len(args) > 1 || len(args) == 1 && strings.HasPrefix(args[0], "-") {
		fmt.Fprintln(stderr, usage)
		return ErrUsage
	}
	key := ""
	if len(args) == 1 {
		key = args[0]
	} else {
		b, err := io.ReadAll(io.LimitReader(stdin, 4096))
		if err != nil {
			return err
		}
		key = strings.TrimSpace(string(b))
	}
	if key == "" {
		fmt.Fprintln(stderr, "empty key")
		return ErrUsage
	}
	if strings.ContainsAny(key, ", \t") {
		// Envoy joins a header sent twice with commas, so stellwerk reads
		// each part as a key of its own: such a key could never be sent
		// (the red team).
		fmt.Fprintln(stderr, "a key must not contain a comma or white space: no client could send it (choose another)")
		return ErrUsage
	}
	fmt.Fprintln(stdout, auth.Hash(key))
	return nil
}

// isHelp says whether a command's first argument asks for its usage
// (stellwerk's help says "stellwerk <command> -h"; keys and audit answered
// it as an unknown verb, exit 2: the docs walkthrough).
func isHelp(arg string) bool {
	switch arg {
	case "-h", "-help", "--help", "help":
		return true
	}
	return false
}
