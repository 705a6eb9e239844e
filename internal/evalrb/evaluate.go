package evalrb

import (
	"errors"
	"fmt"
	"maps"
	"slices"
	"sort"
	"strings"

	"github.com/stellwerk/stellwerk/internal/catalog"
	"github.com/stellwerk/stellwerk/internal/decide"
)

// Point is quality and cost of one routing strategy over a set of prompts.
type Point struct {
	Floor   float64 `json:"floor"`
	Prompts int     `json:"prompts"`
	Quality float64 `json:"quality"` // mean score, 0..1
	Cost    float64 `json:"cost"`    // USD, summed
}

// Options are the evaluation's settings.
type Options struct {
	Floors []float64
	// Relative floors are shares of the best model's predicted quality for the prompt;
	// absolute ones are capped at it.
	Relative bool
	// Target is the share of GPT-4's quality the operating point must keep on the fit rows;
	// the cheapest floor that does is chosen (the highest-quality one when none does).
	Target float64
	// Floor is the operating point of a given (not fitted) router.
	Floor float64
	// SignalAt, when above 0, adds signalCurve at this share of GPT-4's cost to folds whose
	// evaluation rows come from more than one dataset.
	SignalAt float64
}

// SignalShares are the shares of signalCurve.
var SignalShares = []float64{0, 0.05, 0.1, 0.15, 0.2, 0.25, 0.3, 0.4, 0.5}

// RouterResult is one router on one fold.
type RouterResult struct {
	Name string `json:"name"`
	// Variant is the trainer's setting chosen on the fit rows, if it has several.
	Variant string `json:"variant,omitempty"`
	// FloorFrom says where the operating point came from.
	FloorFrom string         `json:"floor_from"`
	Chosen    Point          `json:"chosen"`
	Curve     []Point        `json:"curve"`
	Choices   map[string]int `json:"choices"` // model → prompts at the chosen point
	// BestSingle is the single model with the best quality among those that cost no more
	// than the chosen point (empty when every model costs more).
	BestSingle      string `json:"best_single_at_cost,omitempty"`
	BestSinglePoint Point  `json:"best_single_point"`
	// BestMix is the best random split of the requests between two single models that costs
	// exactly what the chosen point costs: the line between their points. A router that does
	// not beat it has learned nothing a coin could not do.
	BestMix      string `json:"best_mix_at_cost,omitempty"`
	BestMixPoint Point  `json:"best_mix_point"`
	// DatasetBound is datasetBound at the chosen point's cost, when the evaluation rows come
	// from more than one dataset: what knowing each prompt's dataset, and nothing else about
	// it, could reach at that cost.
	DatasetBound *Point `json:"dataset_bound_at_cost,omitempty"`
	// Ranking is rankingAUC of the router's predictions on the evaluation rows, per dataset.
	Ranking map[string]float64 `json:"ranking_auc,omitempty"`
}

// FoldResult is the evaluation of one fold.
type FoldResult struct {
	Name      string           `json:"name"`
	Fit       int              `json:"fit_prompts"`
	Eval      int              `json:"eval_prompts"`
	Datasets  map[string]int   `json:"eval_datasets"`
	Tasks     map[string]int   `json:"eval_tasks"`
	Baselines map[string]Point `json:"baselines"` // gpt4, cheapest, oracle
	Singles   map[string]Point `json:"singles"`   // every model alone
	// DatasetBound is datasetBound at each of BoundShares of GPT-4's cost, when the
	// evaluation rows come from more than one dataset.
	DatasetBound []Point `json:"dataset_bound,omitempty"`
	// Signal is signalCurve at Options.SignalAt of GPT-4's cost (SignalAt echoes it).
	Signal   []SignalPoint  `json:"signal,omitempty"`
	SignalAt float64        `json:"signal_at,omitempty"`
	Routers  []RouterResult `json:"routers"`
}

// Report is the evaluation's result.
type Report struct {
	Protocol  string       `json:"protocol"`
	Data      []string     `json:"data"`
	Excluded  int          `json:"excluded_labelled_rows"`
	FloorMode string       `json:"floor_mode"`
	Target    float64      `json:"target"`
	Models    []string     `json:"models"`
	Folds     []FoldResult `json:"folds"`
	// Pooled sums the folds' evaluation rows (leave-one-dataset-out: every row is
	// evaluated exactly once, by a router that never saw its dataset).
	Pooled *FoldResult `json:"pooled,omitempty"`
}

type evaluator struct {
	models []string
	cands  []*catalog.Model
	opt    Options
}

// Evaluate runs every router over every fold.
func Evaluate(folds []Fold, trainers []Trainer, models []string, cat *catalog.Catalog, opt Options) (*Report, error) {
	e := &evaluator{models: models, opt: opt}
	for _, id := range models {
		m, ok := cat.Lookup(id)
		if !ok {
			return nil, fmt.Errorf("model %q of the RouterBench files is not in the catalog", id)
		}
		e.cands = append(e.cands, m)
	}
	rep := &Report{Models: models, Target: opt.Target, FloorMode: "absolute"}
	if opt.Relative {
		rep.FloorMode = "relative"
	}
	for _, f := range folds {
		fr, err := e.fold(f, trainers)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", f.Name, err)
		}
		rep.Folds = append(rep.Folds, *fr)
	}
	if len(folds) > 1 {
		rep.Pooled = pool(rep.Folds)
	}
	return rep, nil
}

func (e *evaluator) fold(f Fold, trainers []Trainer) (*FoldResult, error) {
	if len(f.Eval) == 0 {
		return nil, errors.New("no prompts to evaluate")
	}
	fr := &FoldResult{Name: f.Name, Fit: len(f.Fit), Eval: len(f.Eval), Datasets: map[string]int{}, Tasks: map[string]int{},
		Baselines: map[string]Point{}, Singles: map[string]Point{}}
	for _, p := range f.Eval {
		fr.Datasets[p.Dataset]++
		fr.Tasks[p.Task]++
	}
	for _, m := range e.models {
		fr.Singles[m] = measure(f.Eval, func(int, *Prompt) string { return m }, 0)
	}
	fr.Baselines["gpt4"] = fr.Singles[GPT4]
	cheapest := ""
	for _, m := range e.models {
		if cheapest == "" || fr.Singles[m].Cost < fr.Singles[cheapest].Cost {
			cheapest = m
		}
	}
	fr.Baselines["cheapest"] = fr.Singles[cheapest]
	fr.Baselines["oracle"] = measure(f.Eval, func(_ int, p *Prompt) string {
		best, bestQ, bestC := "", -1.0, 0.0
		for _, m := range e.models {
			q, c := p.Score[m], p.Cost[m]
			if q > bestQ || (q == bestQ && c < bestC) {
				best, bestQ, bestC = m, q, c
			}
		}
		return best
	}, 0)
	if len(fr.Datasets) > 1 {
		for _, share := range BoundShares {
			b := datasetBound(f.Eval, e.models, share*fr.Singles[GPT4].Cost)
			b.Floor = share
			fr.DatasetBound = append(fr.DatasetBound, b)
		}
		if e.opt.SignalAt > 0 {
			fr.SignalAt = e.opt.SignalAt
			fr.Signal = e.signalCurve(f.Eval, e.opt.SignalAt*fr.Singles[GPT4].Cost, SignalShares)
		}
	}
	for _, t := range trainers {
		rr, err := e.router(f, t, fr.Singles, len(fr.Datasets) > 1)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", t.Name, err)
		}
		fr.Routers = append(fr.Routers, *rr)
	}
	return fr, nil
}

// router fits (or takes) and measures one router on a fold; manyDatasets: the evaluation rows
// come from more than one dataset, so the bound for routing by dataset says something.
func (e *evaluator) router(f Fold, t Trainer, singles map[string]Point, manyDatasets bool) (*RouterResult, error) {
	rr := &RouterResult{Name: t.Name}
	var r Router
	floor := e.opt.Floor
	switch {
	case t.Given != nil:
		r = t.Given
		rr.FloorFrom = "given"
	case len(f.Fit) == 0:
		return nil, errors.New("no rows to fit on")
	default:
		var err error
		var variant int
		floor, variant, err = e.chooseFloor(f.Fit, t)
		if err != nil {
			return nil, err
		}
		rr.FloorFrom = fmt.Sprintf("chosen on the %d fit rows (two-fold cross-fit): cheapest floor keeping %.0f%% of GPT-4's quality", len(f.Fit), 100*e.opt.Target)
		if len(t.Variants) > 0 {
			rr.Variant = t.Variants[variant]
			rr.FloorFrom += fmt.Sprintf(", with %s (of %s) chosen with it", rr.Variant, strings.Join(t.Variants, ", "))
		}
		if r, err = t.Fit(f.Fit, e.models, variant); err != nil {
			return nil, err
		}
	}
	pred := e.predict(f.Eval, r)
	for _, fl := range e.opt.Floors {
		rr.Curve = append(rr.Curve, e.routeAll(f.Eval, pred, fl, nil))
	}
	rr.Choices = map[string]int{}
	rr.Chosen = e.routeAll(f.Eval, pred, floor, rr.Choices)
	rr.BestSingle, rr.BestSinglePoint = bestSingleAtCost(singles, rr.Chosen.Cost)
	rr.BestMix, rr.BestMixPoint = bestMixAtCost(singles, rr.Chosen.Cost)
	if manyDatasets {
		b := datasetBound(f.Eval, e.models, rr.Chosen.Cost)
		rr.DatasetBound = &b
	}
	rr.Ranking = rankingAUC(f.Eval, e.models, pred)
	return rr, nil
}

func bestSingleAtCost(singles map[string]Point, cost float64) (string, Point) {
	best := ""
	var names []string
	for m := range singles {
		names = append(names, m)
	}
	sort.Strings(names)
	for _, m := range names {
		p := singles[m]
		if p.Cost <= cost && (best == "" || p.Quality > singles[best].Quality) {
			best = m
		}
	}
	if best == "" {
		return "", Point{}
	}
	return best, singles[best]
}

// bestMixAtCost is the best quality a random split of the requests between two single
// models reaches at exactly this cost (or one model alone, when one costs exactly that).
func bestMixAtCost(singles map[string]Point, cost float64) (string, Point) {
	var names []string
	for m := range singles {
		names = append(names, m)
	}
	sort.Strings(names)
	best, bestP := "", Point{}
	for _, a := range names {
		for _, b := range names {
			pa, pb := singles[a], singles[b]
			if pa.Cost > cost || pb.Cost < cost || (a == b && pa.Cost != cost) {
				continue
			}
			share := 0.0 // of requests sent to b
			if pb.Cost > pa.Cost {
				share = (cost - pa.Cost) / (pb.Cost - pa.Cost)
			}
			q := pa.Quality + share*(pb.Quality-pa.Quality)
			if best == "" || q > bestP.Quality {
				switch {
				case share < 0.005:
					best = a
				case share > 0.995:
					best = b
				default:
					best = fmt.Sprintf("%.0f%% %s, %.0f%% %s", 100*(1-share), a, 100*share, b)
				}
				bestP = Point{Prompts: pa.Prompts, Quality: q, Cost: cost}
			}
		}
	}
	return best, bestP
}

// chooseFloor picks the operating point (and the trainer's variant) on the fit rows only:
// each half of them (by hash) is routed by a router fitted on the other half, so the choice
// sees out-of-sample predictions, as the evaluation rows will.
func (e *evaluator) chooseFloor(fit []Prompt, t Trainer) (float64, int, error) {
	var halves [2][]Prompt
	for _, p := range fit {
		k := (p.hash >> 1) & 1
		halves[k] = append(halves[k], p)
	}
	nv := max(len(t.Variants), 1)
	nf := len(e.opt.Floors)
	qs := make([]float64, nv*nf)
	cs := make([]float64, nv*nf)
	var g4 float64
	n := 0
	for k := range halves {
		if len(halves[k]) == 0 || len(halves[1-k]) == 0 {
			continue
		}
		for v := 0; v < nv; v++ {
			r, err := t.Fit(halves[1-k], e.models, v)
			if err != nil {
				return 0, 0, err
			}
			pred := e.predict(halves[k], r)
			for i, fl := range e.opt.Floors {
				pt := e.routeAll(halves[k], pred, fl, nil)
				qs[v*nf+i] += pt.Quality * float64(pt.Prompts)
				cs[v*nf+i] += pt.Cost
			}
		}
		for _, p := range halves[k] {
			g4 += p.Score[GPT4]
		}
		n += len(halves[k])
	}
	if n == 0 {
		return 0, 0, errors.New("too few fit rows to choose a floor")
	}
	best := -1
	for i := range qs {
		if qs[i] >= e.opt.Target*g4 && (best < 0 || cs[i] < cs[best]) {
			best = i
		}
	}
	if best < 0 {
		best = 0
		for i := range qs {
			if qs[i] > qs[best] {
				best = i
			}
		}
	}
	return e.opt.Floors[best%nf], best / nf, nil
}

func (e *evaluator) predict(ps []Prompt, r Router) [][]float64 {
	out := make([][]float64, len(ps))
	for i := range ps {
		out[i] = make([]float64, len(e.models))
		r.Qualities(&ps[i], out[i])
	}
	return out
}

// routeAll routes every prompt with decide.Decide, objective cost, and measures the choice.
func (e *evaluator) routeAll(ps []Prompt, pred [][]float64, floor float64, counts map[string]int) Point {
	dc := make([]decide.Candidate, len(e.cands))
	return measure(ps, func(i int, p *Prompt) string {
		best := 0.0
		for j, m := range e.cands {
			q := pred[i][j]
			best = max(best, q)
			dc[j] = decide.Candidate{Model: m, EstimatedCostEUR: m.CostEUR(p.Tokens, 256), Quality: q, LatencyMS: m.LatencyMS, Healthy: true}
		}
		in := decide.Input{Asked: decide.Auto, Task: p.Task, Candidates: dc, Objective: "cost"}
		if e.opt.Relative {
			in.RelativeQuality = floor
		} else {
			in.QualityFloor = min(floor, best)
		}
		d, err := decide.Decide(in)
		id := GPT4 // cannot happen with healthy candidates and a reachable floor; be explicit
		if err == nil {
			id = d.Model.ID
		}
		if counts != nil {
			counts[id]++
		}
		return id
	}, floor)
}

func measure(ps []Prompt, choose func(int, *Prompt) string, floor float64) Point {
	var q, c float64
	for i := range ps {
		p := &ps[i]
		m := choose(i, p)
		q += p.Score[m] // a missing grade counts as 0
		c += p.Cost[m]
	}
	return Point{Floor: floor, Prompts: len(ps), Quality: q / float64(max(len(ps), 1)), Cost: c}
}

func pool(folds []FoldResult) *FoldResult {
	add := func(a, b Point) Point {
		n := a.Prompts + b.Prompts
		return Point{Floor: b.Floor, Prompts: n, Quality: (a.Quality*float64(a.Prompts) + b.Quality*float64(b.Prompts)) / float64(max(n, 1)), Cost: a.Cost + b.Cost}
	}
	p := &FoldResult{Name: "all held-out folds, pooled", Datasets: map[string]int{}, Tasks: map[string]int{}, Baselines: map[string]Point{}, Singles: map[string]Point{}}
	for _, f := range folds {
		p.Fit += f.Fit
		p.Eval += f.Eval
		for k, v := range f.Datasets {
			p.Datasets[k] += v
		}
		for k, v := range f.Tasks {
			p.Tasks[k] += v
		}
		for k, v := range f.Baselines {
			p.Baselines[k] = add(p.Baselines[k], v)
		}
		for k, v := range f.Singles {
			p.Singles[k] = add(p.Singles[k], v)
		}
		for i, r := range f.Routers {
			if len(p.Routers) <= i {
				p.Routers = append(p.Routers, RouterResult{Name: r.Name, FloorFrom: "per fold", Choices: map[string]int{}})
			}
			pr := &p.Routers[i]
			pr.Chosen = add(pr.Chosen, r.Chosen)
			pr.Chosen.Floor = 0
			for k, v := range r.Choices {
				pr.Choices[k] += v
			}
		}
	}
	// The cheapest-over-all-rows model may differ per fold; the pooled "cheapest" is the
	// single model that is cheapest over all rows.
	cheapest := ""
	for m, s := range p.Singles {
		if cheapest == "" || s.Cost < p.Singles[cheapest].Cost {
			cheapest = m
		}
	}
	p.Baselines["cheapest"] = p.Singles[cheapest]
	for i := range p.Routers {
		p.Routers[i].BestSingle, p.Routers[i].BestSinglePoint = bestSingleAtCost(p.Singles, p.Routers[i].Chosen.Cost)
		p.Routers[i].BestMix, p.Routers[i].BestMixPoint = bestMixAtCost(p.Singles, p.Routers[i].Chosen.Cost)
	}
	return p
}

// Markdown renders the report.
func (r *Report) Markdown() string {
	var b strings.Builder
	fmt.Fprintf(&b, "Protocol: %s. Data: %s. %d rows left out because the task classifier's labelled set holds them. %s quality floors; quality = mean grade of the chosen model, cost = its real cost in USD.\n",
		r.Protocol, strings.Join(r.Data, ", "), r.Excluded, r.FloorMode)
	folds := r.Folds
	if r.Pooled != nil {
		folds = append(folds, *r.Pooled)
	}
	for _, f := range folds {
		g := f.Baselines["gpt4"]
		fmt.Fprintf(&b, "\n### %s\n\n%d evaluation prompts %v, %d fit prompts; classifier tasks of the evaluation prompts: %v.\n\n", f.Name, f.Eval, sortedCounts(f.Datasets), f.Fit, sortedCounts(f.Tasks))
		fmt.Fprintf(&b, "| strategy | floor | quality | cost (USD) | quality vs GPT-4 | cost vs GPT-4 |\n|---|---:|---:|---:|---:|---:|\n")
		row := func(name, floor string, p Point) {
			fmt.Fprintf(&b, "| %s | %s | %.3f | %.3f | %.1f%% | %.1f%% |\n", name, floor, p.Quality, p.Cost, 100*p.Quality/g.Quality, 100*p.Cost/g.Cost)
		}
		for _, k := range []string{"gpt4", "cheapest", "oracle"} {
			row("baseline: "+k, "", f.Baselines[k])
		}
		for _, rr := range f.Routers {
			fl := fmt.Sprintf("%.2f", rr.Chosen.Floor)
			if r.Pooled != nil && f.Name == r.Pooled.Name {
				fl = "per fold"
			}
			row("**"+rr.Name+"** (operating point)", fl, rr.Chosen)
			if rr.BestSingle != "" {
				row("best single model at ≤ that cost: "+rr.BestSingle, "", rr.BestSinglePoint)
			} else {
				row("best single model at ≤ that cost: none", "", Point{})
			}
			if rr.BestMix != "" {
				row("best random mix of two models at that cost: "+rr.BestMix, "", rr.BestMixPoint)
			}
			if rr.DatasetBound != nil {
				row("bound for routing by dataset at that cost", "", *rr.DatasetBound)
			}
		}
		for _, p := range f.DatasetBound {
			row(fmt.Sprintf("bound for routing by dataset at %.0f%% of GPT-4's cost", 100*p.Floor), "", p)
		}
		for _, rr := range f.Routers {
			for _, p := range rr.Curve {
				row(rr.Name+", curve", fmt.Sprintf("%.2f", p.Floor), p)
			}
		}
		if len(f.Signal) > 0 {
			fmt.Fprintf(&b, "\nSynthetic routers that read part of each prompt's grade (signalCurve: the dataset's mean grade moved by *share* toward the prompt's own, plus noise σ %.1f), best point at ≤ %.0f%% of GPT-4's cost:\n\n", signalNoise, 100*f.SignalAt)
			fmt.Fprintf(&b, "| share of the grade | ROC area within a dataset | quality | cost (USD) | quality vs GPT-4 | cost vs GPT-4 |\n|---:|---:|---:|---:|---:|---:|\n")
			for _, s := range f.Signal {
				fmt.Fprintf(&b, "| %.2f | %.2f | %.3f | %.3f | %.1f%% | %.1f%% |\n", s.Share, s.Ranking, s.Best.Quality, s.Best.Cost, 100*s.Best.Quality/g.Quality, 100*s.Best.Cost/g.Cost)
			}
		}
		for _, rr := range f.Routers {
			fmt.Fprintf(&b, "\n%s: floor %s; routes to %v.", rr.Name, rr.FloorFrom, sortedCounts(rr.Choices))
			if len(rr.Ranking) > 0 {
				fmt.Fprintf(&b, " Ranks the prompts within a dataset with a ROC area (mean over models) of %s.", sortedFloats(rr.Ranking))
			}
		}
		b.WriteString("\n")
	}
	return b.String()
}

// sortedFloats lists m by key: "a 0.52, b 0.50".
func sortedFloats(m map[string]float64) string { return joinSorted(m, "%s %.2f") }

// sortedCounts lists m by key in parentheses: "(a 3, b 1)".
func sortedCounts(m map[string]int) string { return "(" + joinSorted(m, "%s %d") + ")" }

func joinSorted[V any](m map[string]V, format string) string {
	ks := slices.Sorted(maps.Keys(m))
	parts := make([]string, len(ks))
	for i, k := range ks {
		parts[i] = fmt.Sprintf(format, k, m[k])
	}
	return strings.Join(parts, ", ")
}
