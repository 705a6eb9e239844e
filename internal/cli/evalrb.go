package cli

import (
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
	"github.com/stellwerk/stellwerk/internal/qpredict"
)

// LearnedVariants are the learned router's regularisation settings `eval routerbench`
// chooses among per fold, on the fit rows.
var LearnedVariants = []qpredict.Options{
	{L2: 1e-3}, {L2: 1e-2}, {L2: 1e-1},
	{L2: 1e-2, FixedL2: 1e-4}, {L2: 3e-2, FixedL2: 1e-4}, {L2: 1e-1, FixedL2: 1e-4},
	{L2: 1e-2, FixedL2: 1e-4, Rank: 1},
}

// runEvalRouterBench: `stellwerk eval routerbench [flags] CSV…`.
func runEvalRouterBench(args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("eval routerbench", flag.ContinueOnError)
	fs.SetOutput(stderr)
	cfgPath := fs.String("config", filepath.Join("examples", "stellwerk.yaml"), "config whose catalog holds the RouterBench models")
	asJSON := fs.Bool("json", false, "print the report as JSON")
	svg := fs.String("svg", "", "write the first fold's cost–quality curves as SVG to this file")
	scoreOut := fs.String("scorecard-out", "", "write the per-task scorecard fitted on the hash split's fit half (CSV) to this file")
	split := fs.String("split", "", "hash: fit on one half, evaluate on the other; lodo: leave one dataset out; "+
		"all: evaluate every row (only with --scorecard/--router, which fit nothing). Default: hash, or all with --scorecard/--router")
	relative := fs.Bool("relative", false, "floors are shares of the best model's predicted quality for the request")
	floors := fs.String("floors", "0,0.5,0.6,0.7,0.75,0.8,0.85,0.88,0.9,0.92,0.94,0.96,0.98,1", "quality floors to sweep")
	target := fs.Float64("target", 0.95, "operating point: the cheapest floor keeping this share of GPT-4's quality on the fit rows")
	routers := fs.String("routers", "task,learned", "routers fitted per fold: task (per-task scorecard), learned (per-prompt quality predictor)")
	scorecard := fs.String("scorecard", "", "evaluate this scorecard (CSV) as the config's catalog reads it, fitting nothing")
	routerFile := fs.String("router", "", "evaluate this quality predictor (stellwerk router train), fitting nothing")
	signalAt := fs.Float64("signal-at", 0, "also report synthetic routers that read part of each prompt's grade: how much per-prompt knowledge reaches what quality at this share of GPT-4's cost (hash split)")
	floor := fs.Float64("floor", -1, "operating point of --scorecard/--router (default: the config's default workspace relative_quality, or quality_floor)")
	usage := func() error {
		fmt.Fprintln(stderr, "usage: stellwerk eval routerbench [--config FILE] [--split hash|lodo|all] [--relative] [--target SHARE] [--routers task,learned] "+
			"[--scorecard FILE] [--router FILE] [--floor F] [--signal-at SHARE] [--json] [--svg FILE] [--scorecard-out FILE] CSV…")
		return ErrUsage
	}
	if err := fs.Parse(args); err != nil || fs.NArg() == 0 {
		return usage()
	}
	given := *scorecard != "" || *routerFile != ""
	if *split == "" {
		*split = map[bool]string{true: "all", false: "hash"}[given]
	}
	if *split == "heldout" {
		*split = "hash"
	}
	var problems []string
	switch {
	case *split != "hash" && *split != "lodo" && *split != "all":
		problems = append(problems, fmt.Sprintf("--split %q: want hash, lodo or all", *split))
	case *split == "all" && !given:
		problems = append(problems, "--split all evaluates on the rows it fits on; use it only with --scorecard or --router")
	case *split == "lodo" && given:
		problems = append(problems, "--split lodo fits per fold; a given --scorecard/--router fits nothing (use --split all or hash)")
	}
	if *target <= 0 || *target > 2 {
		problems = append(problems, "--target: want a share of GPT-4's quality in (0, 2]")
	}
	var fl []float64
	for _, f := range strings.Split(*floors, ",") {
		v, err := strconv.ParseFloat(strings.TrimSpace(f), 64)
		if err != nil || v < 0 || v > 1 {
			problems = append(problems, fmt.Sprintf("--floors: %q is not a number in [0, 1]", f))
			continue
		}
		fl = append(fl, v)
	}
	var kinds []string
	if !given {
		for _, k := range strings.Split(*routers, ",") {
			k = strings.TrimSpace(k)
			if k != "task" && k != "learned" {
				problems = append(problems, fmt.Sprintf("--routers: unknown router %q (task, learned)", k))
			}
			kinds = append(kinds, k)
		}
	}
	if len(problems) > 0 {
		for _, p := range problems {
			fmt.Fprintln(stderr, p)
		}
		return usage()
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
	prompts, excluded := evalrb.WithoutLabelled(prompts)
	evalrb.Classify(prompts, cl)

	if *scoreOut != "" {
		f, err := os.Create(*scoreOut)
		if err != nil {
			return err
		}
		if err := evals.Write(f, evalrb.Scorecard(evalrb.HashSplit(prompts).Fit, models)); err != nil {
			f.Close()
			return err
		}
		if err := f.Close(); err != nil {
			return err
		}
	}
	// A given scorecard replaces the config's; fitted routers read no scorecard at all.
	if *scorecard != "" {
		cfg.Evals = []string{*scorecard}
	}
	cat, err := catalog.New(cfg, catalog.Env{Getenv: func(string) string { return "" }, ReadFile: os.ReadFile})
	if err != nil {
		return err
	}
	var ms []*catalog.Model
	for _, id := range models {
		m, ok := cat.Lookup(id)
		if !ok {
			return fmt.Errorf("model %q of the RouterBench files is not in the catalog of %s", id, *cfgPath)
		}
		ms = append(ms, m)
	}
	if *signalAt < 0 || *signalAt > 1 {
		return fmt.Errorf("--signal-at %g: want a share of GPT-4's cost between 0 and 1", *signalAt)
	}
	opt := evalrb.Options{Floors: fl, Relative: *relative, Target: *target, Floor: *floor, SignalAt: *signalAt}
	if opt.Floor < 0 {
		ws := cfg.Workspaces[0]
		for _, w := range cfg.Workspaces {
			if w.Name == "default" {
				ws = w
			}
		}
		opt.Floor = ws.QualityFloor
		if *relative {
			opt.Floor = ws.RelativeQuality
		}
	}
	var trainers []evalrb.Trainer
	if *scorecard != "" {
		trainers = append(trainers, evalrb.CatalogScores("scorecard "+filepath.Base(*scorecard), ms))
	}
	if *routerFile != "" {
		qp, err := qpredict.ReadFile(*routerFile)
		if err != nil {
			return err
		}
		trainers = append(trainers, evalrb.Trainer{Name: "quality predictor " + filepath.Base(*routerFile), Given: evalrb.LearnedRouter(qp, models, ms)})
	}
	for _, k := range kinds {
		switch k {
		case "task":
			trainers = append(trainers, evalrb.TaskScorecard())
		case "learned":
			// Regularisation is chosen per fold on the fit rows, with the floor: one strength
			// for every weight, or a strength on the n-gram weights over nearly free task,
			// length, confidence and bias weights (per-task base rates plus a lexical
			// correction).
			trainers = append(trainers, evalrb.Learned(LearnedVariants...))
		}
	}
	var folds []evalrb.Fold
	protocol := ""
	switch {
	case *split == "lodo":
		folds, protocol = evalrb.LeaveOneDatasetOut(prompts), "leave one dataset out (fit on the other datasets, evaluate on the held-out one)"
	case *split == "hash" && given:
		folds, protocol = []evalrb.Fold{evalrb.HeldOutOnly(prompts)}, "given router, evaluated on the hash split's held-out half"
	case *split == "hash":
		folds, protocol = []evalrb.Fold{evalrb.HashSplit(prompts)}, "hash split (FNV-1a of sample id + prompt: even → fit, odd → evaluate)"
	default:
		folds, protocol = []evalrb.Fold{evalrb.AllRows(prompts)}, "given router, evaluated on every row"
	}
	rep, err := evalrb.Evaluate(folds, trainers, models, cat, opt)
	if err != nil {
		return err
	}
	rep.Protocol, rep.Excluded = protocol, excluded
	for _, p := range fs.Args() {
		rep.Data = append(rep.Data, filepath.Base(p))
	}
	if *svg != "" {
		sf, err := os.Create(*svg)
		if err != nil {
			return err
		}
		if err := rep.SVG(sf, 0); err != nil {
			sf.Close()
			return err
		}
		if err := sf.Close(); err != nil {
			return err
		}
	}
	return writeEval(stdout, rep, *asJSON)
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
		if err := evals.Validate(rows, task.Tasks); err != nil {
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
