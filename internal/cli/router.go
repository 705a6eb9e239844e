package cli

import (
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
	"github.com/stellwerk/stellwerk/internal/qpredict"
)

// runRouter: `stellwerk router train [flags] CSV…` fits a quality predictor on graded
// prompts (RouterBench format) and writes it for routing.quality_predictor.
func runRouter(args []string, stdout, stderr io.Writer) error {
	usage := func() error {
		fmt.Fprintln(stderr, "usage: stellwerk router train [--config FILE] --out FILE [--rows all|hash-fit] [--epochs N] [--rate R] [--l2 L] [--buckets N] CSV…")
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
	l2 := fs.Float64("l2", 1e-2, "L2 strength (eval routerbench chooses between 1e-3 and 1e-2 per fold on the fit rows; 1e-2 won on the RouterBench hash fit half)")
	buckets := fs.Int("buckets", 4096, "hashed n-gram buckets (a power of two)")
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
	evalrb.Classify(prompts, cl)
	var names []string
	for _, p := range fs.Args() {
		names = append(names, filepath.Base(p))
	}
	desc := fmt.Sprintf("%d graded prompts of %s (rows: %s; %d rows of the task classifier's labelled set left out); %d epochs, AdaGrad %g, L2 %g, %d buckets",
		len(prompts), strings.Join(names, ", "), *rows, excluded, *epochs, *rate, *l2, *buckets)
	m, err := qpredict.Train(evalrb.Examples(prompts), models, qpredict.Options{Epochs: *epochs, Rate: *rate, L2: *l2, Buckets: *buckets, Tasks: task.Tasks, Trained: desc})
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
