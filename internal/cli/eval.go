package cli

import (
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"

	"github.com/stellwerk/stellwerk/internal/classify/injection"
	"github.com/stellwerk/stellwerk/internal/classify/pii"
	"github.com/stellwerk/stellwerk/internal/classify/task"
)

// report is what every evaluation returns.
type report interface{ Markdown() string }

// evaluations maps `stellwerk eval NAME` to its default data set and runner.
var evaluations = map[string]struct {
	data string
	run  func(io.Reader) (report, error)
	what string
}{
	"pii": {filepath.Join("..", "shared", "data", "pii", "presidio_generated_large.json"),
		func(r io.Reader) (report, error) { return pii.EvaluatePresidio(r) }, "personal-data detectors on presidio-research data"},
	"injection": {filepath.Join("..", "shared", "data", "injection", "jailbreak_train_balanced.csv"),
		func(r io.Reader) (report, error) { return injection.EvaluateCSV(r) }, "prompt-injection signal on llm-warden data"},
	"task": {filepath.Join("internal", "classify", "task", "testdata", "prompts.jsonl"),
		func(r io.Reader) (report, error) { return task.Evaluate(r) }, "task classifier on the labelled prompt set"},
}

// runEval measures a classifier on a data set: `stellwerk eval pii|injection|task [--data FILE] [--json]`.
func runEval(args []string, stdout, stderr io.Writer) error {
	if len(args) > 0 && args[0] == "routerbench" {
		return runEvalRouterBench(args[1:], stdout, stderr)
	}
	if len(args) == 0 || evaluations[args[0]].run == nil {
		fmt.Fprintln(stderr, "usage: stellwerk eval pii|injection|task [--data FILE] [--json]  or  stellwerk eval routerbench CSV…")
		for name, e := range evaluations {
			fmt.Fprintf(stderr, "  %-10s %s (default data: %s)\n", name, e.what, e.data)
		}
		return ErrUsage
	}
	e := evaluations[args[0]]
	fs := flag.NewFlagSet("eval "+args[0], flag.ContinueOnError)
	fs.SetOutput(stderr)
	data := fs.String("data", e.data, "data set (path relative to the repository root by default)")
	asJSON := fs.Bool("json", false, "print the report as JSON")
	if err := fs.Parse(args[1:]); err != nil {
		return ErrUsage
	}
	f, err := os.Open(*data)
	if err != nil {
		return fmt.Errorf("eval %s: %w (run from the repository root, or pass --data)", args[0], err)
	}
	defer f.Close()
	rep, err := e.run(f)
	if err != nil {
		return fmt.Errorf("eval %s: %w", args[0], err)
	}
	if *asJSON {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		return enc.Encode(rep)
	}
	fmt.Fprintln(stdout, rep.Markdown())
	return nil
}
