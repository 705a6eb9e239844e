package cli

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/stellwerk/stellwerk/internal/spend"
	"github.com/stellwerk/stellwerk/internal/store"
)

const spendUsage = `usage: stellwerk spend [flags]
  The spend ledger (one row per request), summed over a time range and grouped:
  stellwerk spend --since 2025-06-01 --until 2025-07-01 --group-by team,model --format csv
  stellwerk spend --since 7d --group-by day --workspace legal
Times: RFC 3339, a date (midnight in --tz), now, or a duration ago (36h, 7d); --until is exclusive.
Works on the store the config names (state.dir or state.postgres), beside running servers.

`

// runSpend is `stellwerk spend …`.
func runSpend(ctx context.Context, args []string, stdout, stderr io.Writer) (err error) {
	fs := flag.NewFlagSet("spend", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprint(stderr, spendUsage)
		fs.PrintDefaults()
	}
	cfgPath := fs.String("config", defaultConfigPath(), "config file (env STELLWERK_CONFIG)")
	stateDir := fs.String("state-dir", "", "directory of the embedded store, overrides state.dir (as for serve)")
	var p spend.Params
	fs.StringVar(&p.Since, "since", "", "start of the range (default: 30 days before --until)")
	fs.StringVar(&p.Until, "until", "", "end of the range, exclusive (default: now)")
	fs.StringVar(&p.GroupBy, "group-by", "", "comma-separated: key, user, team, workspace, route, model, provider, status, end_user, tag, day")
	fs.StringVar(&p.TimeZone, "tz", "", "IANA time zone of dates and days (default: budgets.timezone)")
	format := fs.String("format", "table", "table, json or csv")
	filters := map[spend.Dim]*string{}
	for _, d := range spend.FilterDims { // --end-user for end_user, as --group-by
		filters[d] = fs.String(strings.ReplaceAll(string(d), "_", "-"), "", "only rows of this "+strings.ReplaceAll(string(d), "_", " "))
	}
	if err := fs.Parse(args); err != nil {
		return ErrUsage
	}
	var problems []string
	if fs.NArg() > 0 {
		problems = append(problems, "unexpected arguments: "+strings.Join(fs.Args(), " "))
	}
	if *format != "table" && *format != "json" && *format != "csv" {
		problems = append(problems, fmt.Sprintf("--format: %q is not table, json or csv", *format))
	}
	fs.Visit(func(f *flag.Flag) {
		d := spend.Dim(strings.ReplaceAll(f.Name, "-", "_"))
		if v, ok := filters[d]; ok {
			if p.Filter == nil {
				p.Filter = map[spend.Dim]string{}
			}
			p.Filter[d] = *v
		}
	})
	cfg, err := loadConfig(*cfgPath, *stateDir)
	if err != nil {
		return err
	}
	q, err := p.Resolve(time.Now(), cfg.Budgets.TimeZone)
	if err != nil {
		for _, e := range unjoin(err) {
			var inv *spend.InvalidError
			if errors.As(e, &inv) {
				problems = append(problems, "--"+strings.ReplaceAll(inv.Field, "_", "-")+": "+inv.Msg)
			}
		}
	}
	if len(problems) > 0 {
		fmt.Fprintln(stderr, strings.Join(problems, "\n"))
		return ErrUsage
	}
	if err := storeExists(cfg.State); err != nil {
		return fmt.Errorf("spend: %w", err)
	}
	ctx, cancel := boundStore(ctx) // the report is read whole before it is printed
	defer cancel()
	defer func() { err = storeTimedOut(ctx, err) }()
	db, err := store.Open(ctx, cfg.State, os.Getenv)
	if err != nil {
		return fmt.Errorf("spend: %w", err)
	}
	defer db.Close()
	sp, err := spend.Open(ctx, db)
	if err != nil {
		return fmt.Errorf("spend: %w", err)
	}
	rep, err := sp.Query(ctx, q)
	if err != nil {
		return fmt.Errorf("spend: %w", err)
	}
	switch *format {
	case "json":
		return writeJSONTo(stdout, rep)
	case "csv":
		return rep.WriteCSV(stdout)
	}
	return spendTable(stdout, rep)
}

// spendTable prints a report for a terminal: one line per group and the
// total.
func spendTable(w io.Writer, rep *spend.Report) error {
	fmt.Fprintf(w, "spend from %s until %s (%s)\n", rep.Since.In(loc(rep.TimeZone)).Format(time.RFC3339),
		rep.Until.In(loc(rep.TimeZone)).Format(time.RFC3339), rep.TimeZone)
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', tabwriter.AlignRight)
	head := make([]string, 0, len(rep.GroupBy)+6)
	for _, d := range rep.GroupBy {
		head = append(head, strings.ToUpper(string(d)))
	}
	head = append(head, "REQUESTS", "TOKENS IN", "TOKENS OUT", "CACHED", "COST EUR", "ESTIMATED")
	fmt.Fprintln(tw, strings.Join(head, "\t")+"\t")
	line := func(vals []string, s spend.Sums) {
		cells := append(vals, strconv.FormatInt(s.Requests, 10), strconv.FormatInt(s.TokensIn, 10), strconv.FormatInt(s.TokensOut, 10),
			strconv.FormatInt(s.TokensCached, 10), spend.DecimalEUR(s.Cost), strconv.FormatInt(s.Estimated, 10))
		fmt.Fprintln(tw, strings.Join(cells, "\t")+"\t")
	}
	for _, g := range rep.Groups {
		vals := make([]string, len(g.Values))
		for i, v := range g.Values {
			vals[i] = dash(v)
		}
		line(vals, g.Sums)
	}
	total := make([]string, len(rep.GroupBy))
	if len(total) > 0 {
		total[0] = "TOTAL"
	}
	line(total, rep.Total)
	return tw.Flush()
}

func loc(name string) *time.Location {
	if l, err := time.LoadLocation(name); err == nil {
		return l
	}
	return time.UTC
}

// unjoin lists the errors an errors.Join holds (or err alone).
func unjoin(err error) []error {
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		return j.Unwrap()
	}
	return []error{err}
}
