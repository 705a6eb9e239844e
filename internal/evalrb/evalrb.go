// Package evalrb replays RouterBench-format prompts through stellwerk's real classify →
// select path and measures the quality and cost of what it chose against fixed baselines.
//
// The protocol is honest by construction: a router (a per-task scorecard, or a learned
// per-prompt quality predictor) is fitted on the fit rows of a split only; its operating
// point (the quality floor) is chosen on those fit rows only, by two-fold cross-fitting
// inside them; figures are measured on the evaluation rows only; and RouterBench rows that
// sit in the task classifier's labelled set are left out of everything, because the
// classifier's output is one of the signals routing reads.
package evalrb

import (
	"encoding/csv"
	"errors"
	"fmt"
	"hash/fnv"
	"io"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"

	"github.com/tidwall/gjson"

	"github.com/stellwerk/stellwerk/internal/classify"
	"github.com/stellwerk/stellwerk/internal/classify/task"
)

// GPT4 is the strong baseline RouterBench compares with.
const GPT4 = "gpt-4-1106-preview"

// Prompt is one RouterBench row.
type Prompt struct {
	ID      string
	Dataset string
	Text    string
	Score   map[string]float64 // model → 0/1 (missing when the file has none)
	Cost    map[string]float64 // model → USD
	// Task and TaskConfidence are stellwerk's classification.
	Task           string
	TaskConfidence float64
	Tokens         int
	hash           uint32 // FNV-1a of sample id + prompt: the hash split
}

// HashFit says whether a prompt is in the fit half of the hash split.
func (p *Prompt) HashFit() bool { return p.hash%2 == 0 }

// Read loads RouterBench-format CSVs: a prompt column, and per model a score column and a
// "<model>|total_cost" column. The dataset of a row is its eval_name column when present,
// otherwise the file name without "_train.csv"/".csv".
func Read(paths ...string) ([]Prompt, []string, error) {
	var all []Prompt
	var models []string
	for _, path := range paths {
		ps, ms, err := readOne(path)
		if err != nil {
			return nil, nil, err
		}
		if models == nil {
			models = ms
		} else if !slices.Equal(sorted(models), sorted(ms)) {
			return nil, nil, fmt.Errorf("%s: its models differ from %s's", path, paths[0])
		}
		all = append(all, ps...)
	}
	return all, models, nil
}

func sorted(s []string) []string { s = slices.Clone(s); slices.Sort(s); return s }

func readOne(path string) ([]Prompt, []string, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, nil, err
	}
	defer f.Close()
	r := csv.NewReader(f)
	r.LazyQuotes = true
	head, err := r.Read()
	if err != nil {
		return nil, nil, fmt.Errorf("%s: %w", path, err)
	}
	col := map[string]int{}
	for i, h := range head {
		col[h] = i
	}
	var ms []string
	for _, h := range head {
		if _, ok := col[h+"|total_cost"]; ok {
			ms = append(ms, h)
		}
	}
	if len(ms) == 0 || !has(col, "prompt") {
		return nil, nil, fmt.Errorf("%s: not a RouterBench file (needs prompt and <model>|total_cost columns)", path)
	}
	name := strings.TrimSuffix(strings.TrimSuffix(filepath.Base(path), ".csv"), "_train")
	var out []Prompt
	for {
		rec, err := r.Read()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return nil, nil, fmt.Errorf("%s: %w", path, err)
		}
		p := Prompt{Dataset: name, Text: promptText(rec[col["prompt"]]), Score: map[string]float64{}, Cost: map[string]float64{}}
		if i, ok := col["eval_name"]; ok && rec[i] != "" {
			p.Dataset = rec[i]
		}
		if i, ok := col["sample_id"]; ok {
			p.ID = rec[i]
		}
		for _, m := range ms {
			if v, err := strconv.ParseFloat(rec[col[m]], 64); err == nil {
				p.Score[m] = v
			}
			if v, err := strconv.ParseFloat(rec[col[m+"|total_cost"]], 64); err == nil {
				p.Cost[m] = v
			}
		}
		h := fnv.New32a()
		h.Write([]byte(p.ID + p.Text))
		p.hash = h.Sum32()
		out = append(out, p)
	}
	return out, ms, nil
}

func has(m map[string]int, k string) bool { _, ok := m[k]; return ok }

// promptText undoes RouterBench's Python list rendering ("['…']").
func promptText(s string) string {
	s = strings.TrimSpace(s)
	if len(s) >= 4 && s[0] == '[' && s[len(s)-1] == ']' && (s[1] == '\'' || s[1] == '"') {
		s = s[2 : len(s)-2]
	}
	r := strings.NewReplacer(`\n`, "\n", `\t`, "\t", `\'`, "'", `\"`, `"`, `\\`, `\`)
	return r.Replace(s)
}

// WithoutLabelled drops the rows whose prompt is in the task classifier's labelled set
// (task.InLabelledSet) and says how many it dropped.
func WithoutLabelled(ps []Prompt) ([]Prompt, int) {
	out := ps[:0:0]
	for _, p := range ps {
		if !task.InLabelledSet(p.Text) {
			out = append(out, p)
		}
	}
	return out, len(ps) - len(out)
}

// Classify runs stellwerk's classifier on every prompt.
func Classify(ps []Prompt, cl *classify.Classifier) {
	for i := range ps {
		body := `{"messages":[{"role":"user","content":` + strconv.Quote(ps[i].Text) + `}]}`
		msgs := gjson.Get(body, "messages")
		if !msgs.Exists() { // strconv.Quote is JSON-compatible for valid UTF-8; be safe otherwise
			msgs = gjson.Parse(`[{"role":"user","content":""}]`)
		}
		res := cl.Classify(classify.Request{Messages: msgs})
		ps[i].Task, ps[i].TaskConfidence, ps[i].Tokens = res.Task, res.TaskConfidence, res.InputTokens
	}
}

// Fold is one fit/evaluation partition of the rows.
type Fold struct {
	Name string
	Fit  []Prompt
	Eval []Prompt
}

// HashSplit is the hash split: fit on one half, evaluate on the other.
func HashSplit(ps []Prompt) Fold {
	f := Fold{Name: "hash split, held-out half"}
	for _, p := range ps {
		if p.HashFit() {
			f.Fit = append(f.Fit, p)
		} else {
			f.Eval = append(f.Eval, p)
		}
	}
	return f
}

// LeaveOneDatasetOut gives one fold per dataset: fit on the others, evaluate on it.
func LeaveOneDatasetOut(ps []Prompt) []Fold {
	var names []string
	for _, p := range ps {
		if !slices.Contains(names, p.Dataset) {
			names = append(names, p.Dataset)
		}
	}
	sort.Strings(names)
	var out []Fold
	for _, n := range names {
		f := Fold{Name: "held out: " + n}
		for _, p := range ps {
			if p.Dataset == n {
				f.Eval = append(f.Eval, p)
			} else {
				f.Fit = append(f.Fit, p)
			}
		}
		out = append(out, f)
	}
	return out
}

// AllRows evaluates every row and fits nothing: for a given scorecard or router.
func AllRows(ps []Prompt) Fold { return Fold{Name: "all rows (nothing fitted)", Eval: ps} }

// HeldOutOnly evaluates the hash split's held-out half and fits nothing: for a given
// scorecard or router that was fitted on the other half.
func HeldOutOnly(ps []Prompt) Fold {
	f := HashSplit(ps)
	f.Name, f.Fit = "hash split, held-out half (nothing fitted)", nil
	return f
}
