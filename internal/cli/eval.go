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
	"strings"

	"github.com/stellwerk/stellwerk/internal/classify"
	"github.com/stellwerk/stellwerk/internal/classify/injection"
	"github.com/stellwerk/stellwerk/internal/classify/pii"
	"github.com/stellwerk/stellwerk/internal/classify/task"
)

// report is what every evaluation returns.
type report interface{ Markdown() string }

// writeEval writes rep as its Markdown tables, or as indented JSON.
func writeEval(w io.Writer, rep report, asJSON bool) error {
	if asJSON {
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		return enc.Encode(rep)
	}
	_, err := fmt.Fprintln(w, rep.Markdown())
	return err
}

// evaluations maps `stellwerk eval NAME` to its default data set and runner.
var evaluations = map[string]struct {
	data   string
	run    func(io.Reader) (report, error)
	what   string
	source string // where the data set comes from, for a missing-data error
}{
	"pii": {filepath.Join("..", "shared", "data", "pii", "presidio_generated_large.json"),
		func(r io.Reader) (report, error) { return pii.EvaluatePresidio(r) }, "personal-data detectors on presidio-research data",
		"presidio-research's generated set (microsoft/presidio-research, MIT: presidio_generated_large.json, 2,109 labelled sentences)"},
	"injection": {filepath.Join("..", "shared", "data", "injection", "jailbreak_train_balanced.csv"),
		func(r io.Reader) (report, error) { return injection.EvaluateCSV(r) }, "prompt-injection signal on llm-warden data",
		"llm-warden's balanced jailbreak training split (jackhhao/llm-warden, MIT: jailbreak_train_balanced.csv)"},
	"task": {filepath.Join("internal", "classify", "task", "testdata", "prompts.jsonl"),
		func(r io.Reader) (report, error) { return task.Evaluate(r) }, "task classifier on the labelled prompt set",
		"the repository's own labelled prompts (internal/classify/task/testdata)"},
	"task-varied": {filepath.Join("internal", "classify", "task", "testdata", "varied.txt"),
		func(r io.Reader) (report, error) { return task.EvaluateVaried(r) }, "task classifier on the varied prompts (held-out split)",
		"the repository's own varied prompts (internal/classify/task/testdata/varied.txt)"},
}

// missingData explains a data set that is not where the command looks:
// the external sets live in the project's shared data folder beside the
// repository (../shared/data, see its README), not in the repository, so
// a fresh clone has none of them.
func missingData(verb, path, source, other string) error {
	where := "it ships with the repository: run from the repository root, or " + other
	if strings.HasPrefix(filepath.ToSlash(path), "../shared/data/") {
		where = "it is not in the repository: the project keeps it in ../shared/data/ beside the repository root " +
			"(its README lists each set, source and licence); put it there and run from the repository root, or " + other
	}
	return fmt.Errorf("%s: the data set %s is missing: %s; %s", verb, path, source, where)
}

// runEval measures a classifier on a data set: `stellwerk eval pii|injection|task [--data FILE] [--json]`.
func runEval(args []string, stdout, stderr io.Writer) error {
	if len(args) > 0 && args[0] == "routerbench" {
		return runEvalRouterBench(args[1:], stdout, stderr)
	}
	if len(args) > 0 && args[0] == "numbers" {
		return runEvalNumbers(args[1:], stdout, stderr)
	}
	if len(args) > 0 && (args[0] == "injection-documents" || args[0] == "documents") {
		return runEvalDocuments(args[0], args[1:], stdout, stderr)
	}
	if len(args) == 0 || evaluations[args[0]].run == nil {
		fmt.Fprintln(stderr, "usage: stellwerk eval pii|injection|task|task-varied [--data FILE] [--json]  or  stellwerk eval numbers [--split held-out|dev] [--seed N] [--n N] [--json]  or  stellwerk eval documents|injection-documents [--chunk BYTES] [--json] FILE…  or  stellwerk eval routerbench CSV…")
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
	if errors.Is(err, iofs.ErrNotExist) {
		return missingData("eval "+args[0], *data, e.source, "pass --data FILE")
	}
	if err != nil {
		return fmt.Errorf("eval %s: %w", args[0], err)
	}
	defer f.Close()
	rep, err := e.run(f)
	if err != nil {
		return fmt.Errorf("eval %s: %w", args[0], err)
	}
	return writeEval(stdout, rep, *asJSON)
}

// runEvalDocuments runs the detectors over pieces of documents: `stellwerk
// eval documents [--chunk BYTES] [--json] FILE…` reports what the injection,
// secret and personal-data detectors find in each piece (what a request
// pasting it would be refused or pinned for); `eval injection-documents`
// reports the injection signal's false positives alone, with how many
// pieces came within 0.1 of its threshold.
func runEvalDocuments(name string, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("eval "+name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	chunk := fs.Int("chunk", 2000, "bytes per piece: what one request pastes")
	asJSON := fs.Bool("json", false, "print the report as JSON")
	if err := fs.Parse(args); err != nil || fs.NArg() == 0 || *chunk < 100 {
		if err == nil {
			fmt.Fprintf(stderr, "usage: stellwerk eval %s [--chunk BYTES (≥ 100)] [--json] FILE…  (for text known to hold no attack, credential or personal data, every finding is a false one)\n", name)
		}
		return ErrUsage
	}
	var names, texts []string
	for _, path := range fs.Args() {
		b, err := os.ReadFile(path)
		if err != nil {
			return fmt.Errorf("eval %s: %w", name, err)
		}
		names, texts = append(names, filepath.Base(path)), append(texts, string(b))
	}
	if name == "documents" {
		return writeEval(stdout, classify.EvaluateDocuments(names, texts, *chunk), *asJSON)
	}
	return writeEval(stdout, injection.EvaluateDocuments(names, texts, *chunk), *asJSON)
}

// runEvalNumbers measures the card and phone detectors on generated sentences:
// `stellwerk eval numbers [--split held-out|dev] [--seed N] [--n N] [--json]`.
func runEvalNumbers(args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("eval numbers", flag.ContinueOnError)
	fs.SetOutput(stderr)
	split := fs.String("split", "held-out", "sentence frames: held-out (reported) or dev (used while developing)")
	seed := fs.Uint64("seed", pii.SynthSeed, "generator seed")
	n := fs.Int("n", 1000, "sentences of each kind (cards, phones, look-alike negatives)")
	asJSON := fs.Bool("json", false, "print the report as JSON")
	if err := fs.Parse(args); err != nil || fs.NArg() > 0 || *n < 1 || *split != "held-out" && *split != "dev" {
		if err == nil {
			fmt.Fprintln(stderr, "usage: stellwerk eval numbers [--split held-out|dev] [--seed N] [--n N (≥ 1)] [--json]")
		}
		return ErrUsage
	}
	sp := pii.SynthHeldOut
	if *split == "dev" {
		sp = pii.SynthDev
	}
	rep := pii.EvaluateSynthetic(*seed, sp, *n)
	return writeEval(stdout, rep, *asJSON)
}
