package cli

import (
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	iofs "io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/stellwerk/stellwerk/internal/catalog"
	"github.com/stellwerk/stellwerk/internal/classify"
	"github.com/stellwerk/stellwerk/internal/classify/task"
	"github.com/stellwerk/stellwerk/internal/config"
	"github.com/stellwerk/stellwerk/internal/evalrb"
	"github.com/stellwerk/stellwerk/internal/evals"
)

// runEvalRouterBench: `stellwerk eval routerbench [flags] CSV…`.
func runEvalRouterBench(args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("eval routerbench", flag.ContinueOnError)
	fs.SetOutput(stderr)
	cfgPath := fs.String("config", filepath.Join("examples", "stellwerk.yaml"), "config whose catalog holds the RouterBench models")
	asJSON := fs.Bool("json", false, "print the report as JSON")
	svg := fs.String("svg", "", "write the cost–quality curve as SVG to this file")
	scoreOut := fs.String("scorecard-out", "", "write the fitted scorecard (CSV) to this file")
	split := fs.String("split", "heldout", "evaluate on the held-out half (heldout) or on all rows (all)")
	relative := fs.Bool("relative", false, "floors are shares of the best model's score for the request's task")
	floors := fs.String("floors", "0,0.5,0.6,0.65,0.7,0.75,0.8,0.85,0.9,0.95,1", "quality floors to sweep")
	if err := fs.Parse(args); err != nil || fs.NArg() == 0 || (*split != "heldout" && *split != "all") {
		fmt.Fprintln(stderr, "usage: stellwerk eval routerbench [--config FILE] [--json] [--svg FILE] [--scorecard-out FILE] [--split heldout|all] CSV…")
		return ErrUsage
	}
	var fl []float64
	for _, f := range strings.Split(*floors, ",") {
		v, err := strconv.ParseFloat(strings.TrimSpace(f), 64)
		if err != nil || v < 0 || v > 1 {
			fmt.Fprintf(stderr, "--floors: %q is not a number in [0, 1]\n", f)
			return ErrUsage
		}
		fl = append(fl, v)
	}
	cfg, err := config.Load(*cfgPath)
	if err != nil {
		return err
	}
	cl, err := classify.New(cfg.Classify)
	if err != nil {
		return err
	}
	for _, path := range fs.Args() {
		if _, err := os.Stat(path); errors.Is(err, iofs.ErrNotExist) {
			// make eval-routerbench passes its glob unexpanded when nothing matches.
			return missingData("eval routerbench", path, "RouterBench's zero-shot training CSVs (withmartian/routerbench, MIT: "+
				"arc_challenge_train.csv, mbpp_train.csv, winograde_train.csv, with the per-model scores and costs; docs/routerbench.md)",
				"pass the CSV files as arguments")
		}
	}
	prompts, models, err := evalrb.Read(fs.Args()...)
	if err != nil {
		return err
	}
	evalrb.Classify(prompts, cl)
	card := evalrb.Scorecard(prompts, models)

	// The catalog's own quality seeds are replaced by the fitted scorecard.
	out := *scoreOut
	if out == "" {
		f, err := os.CreateTemp("", "routerbench-scorecard-*.csv")
		if err != nil {
			return err
		}
		out = f.Name()
		f.Close()
		defer os.Remove(out)
	}
	f, err := os.Create(out)
	if err != nil {
		return err
	}
	if err := evals.Write(f, card); err != nil {
		f.Close()
		return err
	}
	f.Close()
	cfg.Evals = append(cfg.Evals, out)
	cat, err := catalog.New(cfg, catalog.Env{Getenv: func(string) string { return "" }, ReadFile: os.ReadFile})
	if err != nil {
		return err
	}
	ws := cfg.Workspaces[0]
	for _, w := range cfg.Workspaces {
		if w.Name == "default" {
			ws = w
		}
	}
	label := map[string]string{"heldout": evalrb.SplitHeldOut, "all": evalrb.SplitAll}[*split]
	rep, err := evalrb.Evaluate(prompts, models, cat, fl, evalrb.Settings{Objective: ws.Objective, QualityFloor: ws.QualityFloor, RelativeQuality: ws.RelativeQuality}, label, *relative)
	if err != nil {
		return err
	}
	if *svg != "" {
		sf, err := os.Create(*svg)
		if err != nil {
			return err
		}
		if err := rep.SVG(sf); err != nil {
			sf.Close()
			return err
		}
		if err := sf.Close(); err != nil {
			return err
		}
	}
	if *asJSON {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		return enc.Encode(rep)
	}
	fmt.Fprintln(stdout, rep.Markdown())
	return nil
}

// runEvalsImport validates scorecards against a config's catalog and merges
// them into one file: `stellwerk evals import [--config FILE] --into FILE SCORECARD…`.
func runEvalsImport(args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 || args[0] != "import" {
		fmt.Fprintln(stderr, "usage: stellwerk evals import [--config FILE] --into FILE SCORECARD.csv…")
		return ErrUsage
	}
	fs := flag.NewFlagSet("evals import", flag.ContinueOnError)
	fs.SetOutput(stderr)
	cfgPath := fs.String("config", defaultConfigPath(), "config whose catalog the scores must match")
	into := fs.String("into", "", "scorecard to merge into (created if missing); the config's evals: should list it")
	if err := fs.Parse(args[1:]); err != nil || *into == "" || fs.NArg() == 0 {
		fmt.Fprintln(stderr, "usage: stellwerk evals import [--config FILE] --into FILE SCORECARD.csv…")
		return ErrUsage
	}
	cfg, err := config.Load(*cfgPath)
	if err != nil {
		return err
	}
	ids := map[string]bool{}
	for _, m := range cfg.Models {
		ids[m.ID] = true
	}
	var sets [][]evals.Score
	if existing, err := evals.ReadFile(*into); err == nil {
		sets = append(sets, existing)
	} else if !os.IsNotExist(err) {
		return err
	}
	added := 0
	for _, path := range fs.Args() {
		rows, err := evals.ReadFile(path)
		if err != nil {
			return err
		}
		if err := evals.Validate(rows, ids, task.Tasks); err != nil {
			return fmt.Errorf("%s: %w", path, err)
		}
		sets = append(sets, rows)
		added += len(rows)
	}
	merged := evals.Merge(sets...)
	tmp := *into + ".tmp"
	f, err := os.Create(tmp)
	if err != nil {
		return err
	}
	if err := evals.Write(f, merged); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	if err := os.Rename(tmp, *into); err != nil {
		return err
	}
	fmt.Fprintf(stdout, "%s: %d rows imported, %d in the scorecard\n", *into, added, len(merged))
	return nil
}
