package cli

import (
	"bufio"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"sort"
	"strings"

	"github.com/stellwerk/stellwerk/internal/apierr"
	"github.com/stellwerk/stellwerk/internal/classify"
	"github.com/stellwerk/stellwerk/internal/config"
	"github.com/stellwerk/stellwerk/internal/decision"
	"github.com/stellwerk/stellwerk/internal/request"
)

// runClassify prints the classification of chat requests without sending
// anything: `stellwerk classify [--json] [FILE|-]` for one request,
// `stellwerk classify --jsonl` for one request per stdin line.
func runClassify(args []string, stdin io.Reader, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("classify", flag.ContinueOnError)
	fs.SetOutput(stderr)
	asJSON := fs.Bool("json", false, "print one JSON object")
	jsonl := fs.Bool("jsonl", false, "read one chat request per line on stdin, write one JSON result per line")
	cfgPath := fs.String("config", "", "use the classify rules of this config file (default: the built-in rules)")
	if err := fs.Parse(args); err != nil {
		return ErrUsage
	}
	if fs.NArg() > 1 || (*jsonl && fs.NArg() > 0) {
		fmt.Fprintln(stderr, "usage: stellwerk classify [--json] [--config FILE] [REQUEST.json|-]  or  stellwerk classify --jsonl < requests.jsonl")
		return ErrUsage
	}
	rules := config.Classify{Sensitivity: config.DefaultSensitivity, Risk: config.DefaultRisk}
	if *cfgPath != "" {
		cfg, err := config.Load(*cfgPath)
		if err != nil {
			return err
		}
		rules = cfg.Classify
	}
	cl, err := classify.New(rules)
	if err != nil {
		return err
	}

	if *jsonl {
		sc := bufio.NewScanner(stdin)
		sc.Buffer(make([]byte, 1<<20), 256<<20)
		enc := json.NewEncoder(stdout)
		line := 0
		for sc.Scan() {
			line++
			if strings.TrimSpace(sc.Text()) == "" {
				continue
			}
			res, err := classifyBody(cl, sc.Bytes())
			if err != nil {
				// One bad line does not stop a data set; it gets an error object.
				_ = enc.Encode(map[string]any{"line": line, "error": err.Error()})
				continue
			}
			if err := enc.Encode(res); err != nil {
				return err
			}
		}
		return sc.Err()
	}

	var body []byte
	if fs.NArg() == 0 || fs.Arg(0) == "-" {
		body, err = io.ReadAll(stdin)
	} else {
		body, err = os.ReadFile(fs.Arg(0))
	}
	if err != nil {
		return err
	}
	res, err := classifyBody(cl, body)
	if err != nil {
		return err
	}
	if *asJSON {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		return enc.Encode(res)
	}
	printClassification(stdout, res)
	return nil
}

func classifyBody(cl *classify.Classifier, body []byte) (classify.Result, error) {
	chat, err := request.ParseChat(body)
	if err != nil {
		var ae *apierr.Error
		if errors.As(err, &ae) {
			return classify.Result{}, fmt.Errorf("invalid request: %s", ae.Message)
		}
		return classify.Result{}, err
	}
	return cl.Classify(decision.ClassifyRequest(chat)), nil
}

func printClassification(w io.Writer, r classify.Result) {
	row := func(k, format string, a ...any) { fmt.Fprintf(w, "%-13s%s\n", k, fmt.Sprintf(format, a...)) }
	cue := ""
	if r.TaskCue != "" {
		cue = ", cue " + r.TaskCue
	}
	row("task", "%s (confidence %.2f%s)", r.Task, r.TaskConfidence, cue)
	drivers := "none"
	if len(r.ComplexityDrivers) > 0 {
		drivers = strings.Join(r.ComplexityDrivers, ", ")
	}
	row("complexity", "%s (drivers: %s)", r.Complexity, drivers)
	row("language", "%s", r.Language)
	row("input tokens", "%d (estimated for o200k_base)", r.InputTokens)
	printFindings(w, "pii", r.PII)
	printFindings(w, "secrets", r.Secrets)
	det := "not detected"
	if r.Injection.Detected {
		det = "DETECTED"
	}
	rule := ""
	if r.Injection.Rule != "" {
		rule = ", cue " + r.Injection.Rule
	}
	row("injection", "%.2f (%s%s)", r.Injection.Score, det, rule)
	row("sensitivity", "%s (rule %s)", r.Sensitivity, r.SensitivityRule)
	row("risk", "%s (rule %s)", r.Risk, r.RiskRule)
	row("scan", "%s", scanLine(r.Scan, r.ScanLimit))
	if len(r.Unread) > 0 {
		row("unread", "%v (parts no detector reads)", r.Unread)
	}
	if len(r.Terms) > 0 {
		row("terms", "%s", termsLine(r.Terms))
	}
}

// termsLine is "project_zephyr ×2, codenames ×0": every configured list.
func termsLine(ts []classify.TermCount) string {
	parts := make([]string, len(ts))
	for i, t := range ts {
		parts[i] = fmt.Sprintf("%s ×%d", t.Name, t.Count)
	}
	return strings.Join(parts, ", ")
}

// scanLine says whether every text was read, and which cap stopped it.
func scanLine(scan, limit string) string {
	if scan == classify.ScanTruncated {
		return "TRUNCATED at the " + limit + " limit: text was not read; treated as restricted and high risk"
	}
	return scan
}

func printFindings(w io.Writer, name string, fs []classify.Finding) {
	if len(fs) == 0 {
		fmt.Fprintf(w, "%-13snone\n", name)
		return
	}
	counts := map[string]int{}
	for _, f := range fs {
		counts[f.Type]++
	}
	var parts []string
	for t, n := range counts {
		parts = append(parts, fmt.Sprintf("%s ×%d", t, n))
	}
	sort.Strings(parts)
	fmt.Fprintf(w, "%-13s%s\n", name, strings.Join(parts, ", "))
	for _, f := range fs {
		where := fmt.Sprintf("message %d %s", f.Message, f.Field)
		if f.Message < 0 {
			where = f.Field
		}
		fmt.Fprintf(w, "%-13s  %s in %s, bytes %d–%d\n", "", f.Type, where, f.Start, f.End)
	}
}
