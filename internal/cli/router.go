package cli

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	iofs "io/fs"
	"os"
	"path/filepath"
	"strings"

	"github.com/stellwerk/stellwerk/internal/classify"
	"github.com/stellwerk/stellwerk/internal/classify/task"
	"github.com/stellwerk/stellwerk/internal/config"
	"github.com/stellwerk/stellwerk/internal/evalrb"
	"github.com/stellwerk/stellwerk/internal/feedback"
	"github.com/stellwerk/stellwerk/internal/qpredict"
	"github.com/stellwerk/stellwerk/internal/store"
)

// runRouter: `stellwerk router train [flags] CSV…` fits a quality predictor on graded
// prompts (RouterBench format) and writes it for routing.quality_predictor.
func runRouter(args []string, stdout, stderr io.Writer) error {
	usage := func() error {
		fmt.Fprintln(stderr, "usage: stellwerk router train [--config FILE] --out FILE [--rows all|hash-fit] [--epochs N] [--rate R] [--l2 L] [--fixed-l2 L] [--rank K] [--buckets N] CSV…")
		return ErrUsage
	}
	if len(args) == 0 || args[0] != "train" {
		return usage()
	}
	fs := flag.NewFlagSet("router train", flag.ContinueOnError)
	fs.SetOutput(stderr)
	cfgPath := fs.String("config", filepath.Join("examples", "stellwerk.yaml"), "config whose classifier settings the predictor reads the task with")
	out := fs.String("out", "", "write the quality predictor (JSON) to this file")
	rows := fs.String("rows", "all", "all: train on every row; hash-fit: only the hash split's fit half, so `eval routerbench --router FILE --split hash` measures it on rows it never saw")
	epochs := fs.Int("epochs", 30, "passes over the data")
	rate := fs.Float64("rate", 0.2, "AdaGrad learning rate")
	l2 := fs.Float64("l2", 1e-2, "L2 strength on the hashed n-gram weights (eval routerbench chooses it per fold on the fit rows, with --fixed-l2)")
	fixedL2 := fs.Float64("fixed-l2", 0, "L2 strength on the task, length, confidence and bias weights (0: the same as --l2)")
	rank := fs.Int("rank", 0, "share the n-gram weights across models as a rank-K factorisation (0: one logistic regression per model)")
	buckets := fs.Int("buckets", 4096, "hashed n-gram buckets (a power of two)")
	feedback := fs.String("feedback", "", "also train on graded answers in JSONL, one {\"prompt\", \"model\", \"good\": true|false} per line (thumbs up/down on your own traffic)")
	fromStore := fs.Bool("feedback-store", false, "also train on the votes in the config's state store (POST /admin/feedback) that carry their prompt")
	if err := fs.Parse(args[1:]); err != nil || *out == "" || fs.NArg() == 0 || (*rows != "all" && *rows != "hash-fit") {
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
			return missingData("router train", path, "graded prompts in RouterBench format (docs/routerbench.md)", "pass the CSV files as arguments")
		}
	}
	prompts, models, err := evalrb.Read(fs.Args()...)
	if err != nil {
		return err
	}
	prompts, excluded := evalrb.WithoutLabelled(prompts)
	if *rows == "hash-fit" {
		prompts = evalrb.HashSplit(prompts).Fit
	}
	var fb []evalrb.Prompt
	if *feedback != "" {
		if fb, err = readFeedback(*feedback, models); err != nil {
			return err
		}
		prompts = append(prompts, fb...)
	}
	var stored []evalrb.Prompt
	var skipped int
	if *fromStore {
		if stored, skipped, err = readFeedbackStore(cfg, models); err != nil {
			return err
		}
		prompts = append(prompts, stored...)
	}
	evalrb.Classify(prompts, cl)
	var names []string
	for _, p := range fs.Args() {
		names = append(names, filepath.Base(p))
	}
	if *feedback != "" {
		names = append(names, fmt.Sprintf("%d feedback rows of %s", len(fb), filepath.Base(*feedback)))
	}
	if *fromStore {
		names = append(names, fmt.Sprintf("%d votes of the state store (%d left out: no prompt, or a model the CSVs do not grade)", len(stored), skipped))
	}
	desc := fmt.Sprintf("%d graded prompts of %s (rows: %s; %d rows of the task classifier's labelled set left out); %d epochs, AdaGrad %g, L2 %g, fixed-feature L2 %g, rank %d, %d buckets",
		len(prompts), strings.Join(names, ", "), *rows, excluded, *epochs, *rate, *l2, cmp.Or(*fixedL2, *l2), *rank, *buckets)
	m, err := qpredict.Train(evalrb.Examples(prompts), models, qpredict.Options{Epochs: *epochs, Rate: *rate, L2: *l2, FixedL2: *fixedL2, Rank: *rank, Buckets: *buckets, Tasks: task.Tasks, Trained: desc})
	if err != nil {
		return err
	}
	tmp := *out + ".tmp"
	f, err := os.Create(tmp)
	if err != nil {
		return err
	}
	if err := m.Write(f); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	if err := os.Rename(tmp, *out); err != nil {
		return err
	}
	fmt.Fprintf(stdout, "%s: quality predictor for %d models, trained on %s\n", *out, len(models), desc)
	return nil
}

// feedbackRow is one graded answer: a user's thumbs up or down on what a model answered.
type feedbackRow struct {
	Prompt string `json:"prompt"`
	Model  string `json:"model"`
	Good   *bool  `json:"good"`
}

// readFeedback reads graded answers as prompts graded for one model each; the other models
// are not trained on them. Every problem is reported, with its line.
func readFeedback(path string, models []string) ([]evalrb.Prompt, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	known := map[string]bool{}
	for _, m := range models {
		known[m] = true
	}
	var out []evalrb.Prompt
	var errs []error
	for i, line := range strings.Split(string(b), "\n") {
		if strings.TrimSpace(line) == "" {
			continue
		}
		var r feedbackRow
		dec := json.NewDecoder(strings.NewReader(line))
		dec.DisallowUnknownFields()
		switch err := dec.Decode(&r); {
		case err != nil:
			errs = append(errs, fmt.Errorf("%s:%d: %w", path, i+1, err))
		case r.Prompt == "" || r.Good == nil:
			errs = append(errs, fmt.Errorf("%s:%d: want prompt, model and good", path, i+1))
		case !known[r.Model]:
			errs = append(errs, fmt.Errorf("%s:%d: model %q is not one of the training data's models", path, i+1, r.Model))
		default:
			g := 0.0
			if *r.Good {
				g = 1
			}
			out = append(out, evalrb.Prompt{Dataset: "feedback", Text: r.Prompt, Score: map[string]float64{r.Model: g}, Cost: map[string]float64{}})
		}
	}
	return out, errors.Join(errs...)
}

// readFeedbackStore reads the votes kept by POST /admin/feedback. A vote without its prompt,
// or on a model the training data does not grade, cannot train the predictor: counted, left out.
func readFeedbackStore(cfg *config.Config, models []string) ([]evalrb.Prompt, int, error) {
	ctx := context.Background()
	db, err := store.Open(ctx, cfg.State, os.Getenv)
	if err != nil {
		return nil, 0, fmt.Errorf("feedback store: %w", err)
	}
	defer db.Close()
	st, err := feedback.Open(ctx, db)
	if err != nil {
		return nil, 0, fmt.Errorf("feedback store: %w", err)
	}
	votes, err := st.List(ctx)
	if err != nil {
		return nil, 0, fmt.Errorf("feedback store: %w", err)
	}
	known := map[string]bool{}
	for _, m := range models {
		known[m] = true
	}
	var out []evalrb.Prompt
	skipped := 0
	for _, v := range votes {
		if v.Prompt == "" || !known[v.Model] {
			skipped++
			continue
		}
		g := 0.0
		if v.Good {
			g = 1
		}
		out = append(out, evalrb.Prompt{Dataset: "feedback", ID: v.DecisionID, Text: v.Prompt, Score: map[string]float64{v.Model: g}, Cost: map[string]float64{}})
	}
	return out, skipped, nil
}
