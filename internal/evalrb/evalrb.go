// Package evalrb replays RouterBench prompts through stellwerk's real
// classify → select path and measures the quality and cost of what it
// chose against fixed baselines. Nothing is fitted per prompt: the only
// fitted values are per-model, per-task mean scores (the scorecard), taken
// from the "fit" half of the rows, where the task is the one stellwerk's
// classifier assigns — the signal selection sees at request time.
package evalrb

import (
	"encoding/csv"
	"errors"
	"fmt"
	"hash/fnv"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"

	"github.com/tidwall/gjson"

	"github.com/stellwerk/stellwerk/internal/catalog"
	"github.com/stellwerk/stellwerk/internal/classify"
	"github.com/stellwerk/stellwerk/internal/decide"
	"github.com/stellwerk/stellwerk/internal/evals"
)

// Splits a report can be computed on.
const (
	SplitHeldOut = "held-out half"
	SplitAll     = "all rows"
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
	Task    string             // stellwerk's classification
	Tokens  int
	Fit     bool // in the half the scorecard is fitted on
}

// Read loads RouterBench CSVs.
func Read(paths ...string) ([]Prompt, []string, error) {
	var all []Prompt
	var models []string
	for _, path := range paths {
		f, err := os.Open(path)
		if err != nil {
			return nil, nil, err
		}
		r := csv.NewReader(f)
		r.LazyQuotes = true
		head, err := r.Read()
		if err != nil {
			f.Close()
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
			f.Close()
			return nil, nil, fmt.Errorf("%s: not a RouterBench file (needs prompt and <model>|total_cost columns)", path)
		}
		if models == nil {
			models = ms
		}
		for {
			rec, err := r.Read()
			if errors.Is(err, io.EOF) {
				break
			}
			if err != nil {
				f.Close()
				return nil, nil, fmt.Errorf("%s: %w", path, err)
			}
			p := Prompt{Dataset: strings.TrimSuffix(filepath.Base(path), "_train.csv"), Text: promptText(rec[col["prompt"]]),
				Score: map[string]float64{}, Cost: map[string]float64{}}
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
			p.Fit = h.Sum32()%2 == 0
			all = append(all, p)
		}
		f.Close()
	}
	return all, models, nil
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

// Classify runs stellwerk's classifier on every prompt.
func Classify(ps []Prompt, cl *classify.Classifier) {
	for i := range ps {
		body := `{"messages":[{"role":"user","content":` + strconv.Quote(ps[i].Text) + `}]}`
		msgs := gjson.Get(body, "messages")
		if !msgs.Exists() { // strconv.Quote is JSON-compatible for valid UTF-8; be safe otherwise
			msgs = gjson.Parse(`[{"role":"user","content":""}]`)
		}
		res := cl.Classify(classify.Request{Messages: msgs})
		ps[i].Task, ps[i].Tokens = res.Task, res.InputTokens
	}
}

// Scorecard fits per-model, per-task mean scores on the fit half; the
// "default" row per model is its mean over every task.
func Scorecard(ps []Prompt, models []string) []evals.Score {
	type acc struct {
		sum float64
		n   int
	}
	by := map[[2]string]*acc{}
	add := func(m, t string, v float64) {
		k := [2]string{m, t}
		if by[k] == nil {
			by[k] = &acc{}
		}
		by[k].sum += v
		by[k].n++
	}
	for _, p := range ps {
		if !p.Fit {
			continue
		}
		for _, m := range models {
			if v, ok := p.Score[m]; ok {
				add(m, p.Task, v)
				add(m, "default", v)
			}
		}
	}
	var out []evals.Score
	for k, a := range by {
		if a.n >= 20 { // too few graded prompts say nothing about a task
			out = append(out, evals.Score{Model: k[0], Task: k[1], Score: a.sum / float64(a.n), N: a.n, Source: "routerbench-train-fit-half"})
		}
	}
	return evals.Merge(out)
}

// Point is quality and cost of one routing strategy over a set of prompts.
type Point struct {
	Floor   float64 `json:"floor"`
	Quality float64 `json:"quality"` // mean score, 0..1
	Cost    float64 `json:"cost"`    // USD, summed
}

// Report is the evaluation's result.
type Report struct {
	Prompts int    `json:"prompts"`
	Split   string `json:"split"` // "held-out half" or "all"
	// FloorMode is "absolute" (floor capped at the task's best model) or
	// "relative" (floor × the task's best model's score).
	FloorMode string           `json:"floor_mode"`
	Points    []Point          `json:"points"`
	Default   Point            `json:"default"`
	Settings  Settings         `json:"default_settings"`
	Baselines map[string]Point `json:"baselines"`
	Models    []string         `json:"models"`
	Tasks     map[string]int   `json:"tasks"`   // classifier task → prompts
	Choices   map[string]int   `json:"choices"` // model → prompts routed to it at the default point
	// Target: the cheapest point with quality >= 95% of GPT-4's, as a share
	// of GPT-4's cost (0 when no point reaches it).
	TargetPoint *Point  `json:"target_point,omitempty"`
	CostShare   float64 `json:"target_cost_share,omitempty"`
}

// Settings are the shipped configuration's selection settings: the
// default workspace's objective, quality floor and relative quality.
type Settings struct {
	Objective       string  `json:"objective"`
	QualityFloor    float64 `json:"quality_floor"`
	RelativeQuality float64 `json:"relative_quality"`
}

// Evaluate routes every prompt with the catalog's models and the scorecard
// for each quality floor, objective cost. A floor above the best model's
// score for a prompt's task is capped at that score, so every prompt is
// routed (to the best model for its task). The default point is the
// shipped configuration: the given objective and floor.
func Evaluate(ps []Prompt, models []string, cat *catalog.Catalog, floors []float64, def Settings, split string, relative bool) (*Report, error) {
	var cands []*catalog.Model
	for _, id := range models {
		m, ok := cat.Lookup(id)
		if !ok {
			return nil, fmt.Errorf("model %q of the RouterBench files is not in the catalog", id)
		}
		cands = append(cands, m)
	}
	mode := "absolute"
	if relative {
		mode = "relative"
	}
	rep := &Report{Settings: def, Split: split, FloorMode: mode, Models: models, Baselines: map[string]Point{}, Tasks: map[string]int{}, Choices: map[string]int{}}
	var sel []Prompt
	for _, p := range ps {
		if split == SplitAll || !p.Fit {
			sel = append(sel, p)
		}
	}
	rep.Prompts = len(sel)
	if len(sel) == 0 {
		return nil, errors.New("no prompts to evaluate")
	}
	for _, p := range sel {
		rep.Tasks[p.Task]++
	}

	route := func(p Prompt, objective string, floor, rel float64) (string, error) {
		dc := make([]decide.Candidate, len(cands))
		best := 0.0
		for i, m := range cands {
			q := m.QualityFor(p.Task)
			best = max(best, q)
			dc[i] = decide.Candidate{Model: m, EstimatedCostEUR: m.CostEUR(p.Tokens, 256), Quality: q, LatencyMS: m.LatencyMS, Healthy: true}
		}
		f := min(floor, best)
		if relative {
			f = floor * best
		}
		d, err := decide.Decide(decide.Input{Asked: decide.Auto, Task: p.Task, Candidates: dc, Objective: objective, QualityFloor: f, RelativeQuality: rel})
		if err != nil {
			return "", err
		}
		return d.Model.ID, nil
	}
	measure := func(choose func(Prompt) (string, error), floor float64) (Point, map[string]int, error) {
		var q, c float64
		counts := map[string]int{}
		for _, p := range sel {
			m, err := choose(p)
			if err != nil {
				return Point{}, nil, err
			}
			counts[m]++
			q += p.Score[m] // a missing grade counts as 0
			c += p.Cost[m]
		}
		return Point{Floor: floor, Quality: q / float64(len(sel)), Cost: c}, counts, nil
	}
	for _, f := range floors {
		pt, _, err := measure(func(p Prompt) (string, error) { return route(p, "cost", f, 0) }, f)
		if err != nil {
			return nil, err
		}
		rep.Points = append(rep.Points, pt)
	}
	var err error
	rep.Default, rep.Choices, err = measure(func(p Prompt) (string, error) {
		return route(p, def.Objective, def.QualityFloor, def.RelativeQuality)
	}, def.RelativeQuality)
	if err != nil {
		return nil, err
	}
	gpt4, _, _ := measure(func(Prompt) (string, error) { return GPT4, nil }, 0)
	rep.Baselines["gpt4"] = gpt4
	// cheapest: the single model with the lowest total cost over these prompts.
	cheapest, cheapestCost := "", -1.0
	for _, m := range models {
		var c float64
		for _, p := range sel {
			c += p.Cost[m]
		}
		if cheapestCost < 0 || c < cheapestCost {
			cheapest, cheapestCost = m, c
		}
	}
	rep.Baselines["cheapest"], _, _ = measure(func(Prompt) (string, error) { return cheapest, nil }, 0)
	// oracle: per prompt, the cheapest of the models with the best score.
	rep.Baselines["oracle"], _, _ = measure(func(p Prompt) (string, error) {
		best, bestQ, bestC := "", -1.0, 0.0
		for _, m := range models {
			q, c := p.Score[m], p.Cost[m]
			if q > bestQ || (q == bestQ && c < bestC) {
				best, bestQ, bestC = m, q, c
			}
		}
		return best, nil
	}, 0)
	for i := range rep.Points {
		pt := rep.Points[i]
		if pt.Quality >= 0.95*gpt4.Quality && (rep.TargetPoint == nil || pt.Cost < rep.TargetPoint.Cost) {
			rep.TargetPoint = &rep.Points[i]
		}
	}
	if rep.TargetPoint != nil {
		rep.CostShare = rep.TargetPoint.Cost / gpt4.Cost
	}
	sort.Slice(rep.Points, func(i, j int) bool { return rep.Points[i].Floor < rep.Points[j].Floor })
	return rep, nil
}

// Markdown renders the report.
func (r *Report) Markdown() string {
	var b strings.Builder
	g := r.Baselines["gpt4"]
	fmt.Fprintf(&b, "%d prompts (%s), %s quality floors. Quality: mean RouterBench score of the chosen model; cost: its real cost in USD.\n\n", r.Prompts, r.Split, r.FloorMode)
	fmt.Fprintf(&b, "| strategy | quality | cost (USD) | quality vs GPT-4 | cost vs GPT-4 |\n|---|---:|---:|---:|---:|\n")
	row := func(name string, p Point) {
		fmt.Fprintf(&b, "| %s | %.3f | %.3f | %.1f%% | %.1f%% |\n", name, p.Quality, p.Cost, 100*p.Quality/g.Quality, 100*p.Cost/g.Cost)
	}
	for _, k := range []string{"gpt4", "cheapest", "oracle"} {
		row("baseline: "+k, r.Baselines[k])
	}
	row(fmt.Sprintf("stellwerk default (%s, relative quality %.2f)", r.Settings.Objective, r.Settings.RelativeQuality), r.Default)
	for _, p := range r.Points {
		row(fmt.Sprintf("stellwerk cost, floor %.2f", p.Floor), p)
	}
	if r.TargetPoint != nil {
		fmt.Fprintf(&b, "\nCheapest point with ≥ 95%% of GPT-4's quality: floor %.2f, %.1f%% of GPT-4's quality at %.1f%% of its cost.\n",
			r.TargetPoint.Floor, 100*r.TargetPoint.Quality/g.Quality, 100*r.CostShare)
	} else {
		fmt.Fprintf(&b, "\nNo point reaches 95%% of GPT-4's quality.\n")
	}
	fmt.Fprintf(&b, "\nClassifier tasks: %v. Default point routes to: %v.\n", r.Tasks, r.Choices)
	return b.String()
}
