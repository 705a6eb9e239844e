package evalrb

import (
	"fmt"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stellwerk/stellwerk/internal/catalog"
	"github.com/stellwerk/stellwerk/internal/config"
	"github.com/stellwerk/stellwerk/internal/qpredict"
)

const cheap = "mistralai/mistral-7b-chat"

// writeCSV writes a synthetic RouterBench-format file: GPT-4 answers everything; the cheap
// model answers exactly the prompts that mention "lists", which a per-prompt router can learn
// and a per-task one (every prompt is the same task) cannot.
func writeCSV(t *testing.T, dir, name string, n int, extra string) string {
	t.Helper()
	var b strings.Builder
	b.WriteString("sample_id,prompt,eval_name," + GPT4 + "," + cheap + "," + GPT4 + "|total_cost," + cheap + "|total_cost\n")
	for i := 0; i < n; i++ {
		topic, good := "graphs and trees", 0
		if i%2 == 0 {
			topic, good = "lists and arrays", 1
		}
		fmt.Fprintf(&b, "%s.%d,\"['Write a python function about %s, case %x. %s']\",%s,1.0,%d,0.01,0.0001\n", name, i, topic, uint32(i)*2654435761, extra, name, good)
	}
	p := filepath.Join(dir, name+".csv")
	if err := os.WriteFile(p, []byte(b.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

func testCatalog(t *testing.T) *catalog.Catalog {
	t.Helper()
	cfg, err := config.Load(filepath.Join("..", "..", "examples", "routerbench.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	cfg.Evals = nil
	cat, err := catalog.New(cfg, catalog.Env{Getenv: func(string) string { return "" }, ReadFile: os.ReadFile})
	if err != nil {
		t.Fatal(err)
	}
	return cat
}

func classified(ps []Prompt) {
	for i := range ps {
		ps[i].Task, ps[i].TaskConfidence, ps[i].Tokens = "code", 0.9, 20
	}
}

func TestLearnedBeatsPerTaskOnHeldOutHalf(t *testing.T) {
	dir := t.TempDir()
	ps, models, err := Read(writeCSV(t, dir, "alpha", 400, ""))
	if err != nil {
		t.Fatal(err)
	}
	classified(ps)
	rep, err := Evaluate([]Fold{HashSplit(ps)}, []Trainer{TaskScorecard(), Learned(qpredict.Options{L2: 1e-3}, qpredict.Options{L2: 1e-2})}, models, testCatalog(t),
		Options{Floors: []float64{0, 0.5, 0.8, 0.9, 1}, Relative: true, Target: 0.95})
	if err != nil {
		t.Fatal(err)
	}
	f := rep.Folds[0]
	if f.Fit+f.Eval != 400 || f.Fit == 0 || f.Eval == 0 {
		t.Fatalf("hash split: %d fit, %d eval", f.Fit, f.Eval)
	}
	g := f.Baselines["gpt4"]
	task, learned := f.Routers[0].Chosen, f.Routers[1].Chosen
	if learned.Quality < 0.95*g.Quality || learned.Cost > 0.7*g.Cost {
		t.Errorf("learned router: quality %.3f, cost %.3f; GPT-4 %.3f, %.3f: want ≥ 95%% of the quality at ≤ 70%% of the cost", learned.Quality, learned.Cost, g.Quality, g.Cost)
	}
	if learned.Cost >= task.Cost {
		t.Errorf("learned router costs %.3f, per-task %.3f: the per-prompt signal was not used", learned.Cost, task.Cost)
	}
	if !strings.Contains(rep.Markdown(), "learned per-prompt") {
		t.Error("markdown does not name the learned router")
	}
}

func TestLeaveOneDatasetOutNeverFitsOnTheHeldOutDataset(t *testing.T) {
	dir := t.TempDir()
	ps, _, err := Read(writeCSV(t, dir, "alpha", 30, ""), writeCSV(t, dir, "beta", 20, ""), writeCSV(t, dir, "gamma", 10, ""))
	if err != nil {
		t.Fatal(err)
	}
	folds := LeaveOneDatasetOut(ps)
	if len(folds) != 3 {
		t.Fatalf("%d folds, want 3", len(folds))
	}
	for _, f := range folds {
		held := f.Eval[0].Dataset
		for _, p := range f.Eval {
			if p.Dataset != held {
				t.Errorf("%s: evaluates %s", f.Name, p.Dataset)
			}
		}
		for _, p := range f.Fit {
			if p.Dataset == held {
				t.Errorf("%s: fits on the held-out dataset", f.Name)
			}
		}
		if len(f.Fit)+len(f.Eval) != 60 {
			t.Errorf("%s: %d rows, want 60", f.Name, len(f.Fit)+len(f.Eval))
		}
	}
}

func TestFloorIsChosenOnFitRowsOnly(t *testing.T) {
	// The fit rows say the cheap model is always right, the evaluation rows that it never
	// is: a floor chosen on the fit rows keeps the cheap model, and the evaluation shows it.
	dir := t.TempDir()
	ps, models, err := Read(writeCSV(t, dir, "alpha", 200, ""))
	if err != nil {
		t.Fatal(err)
	}
	classified(ps)
	f := HashSplit(ps)
	for i := range f.Fit {
		f.Fit[i].Score = map[string]float64{GPT4: 1, cheap: 1}
	}
	for i := range f.Eval {
		f.Eval[i].Score = map[string]float64{GPT4: 1, cheap: 0}
	}
	rep, err := Evaluate([]Fold{f}, []Trainer{TaskScorecard()}, models, testCatalog(t), Options{Floors: []float64{0.5, 1}, Relative: true, Target: 0.95})
	if err != nil {
		t.Fatal(err)
	}
	if q := rep.Folds[0].Routers[0].Chosen.Quality; q != 0 {
		t.Errorf("evaluation quality %.2f: the operating point looked at the evaluation rows", q)
	}
}

func TestWithoutLabelled(t *testing.T) {
	ps := []Prompt{{Text: "Write a python function to find the sum of an array."}, {Text: "Write a haiku about signal boxes."}}
	kept, n := WithoutLabelled(ps)
	if n != 1 || len(kept) != 1 || kept[0].Text != ps[1].Text {
		t.Errorf("kept %v, dropped %d: want the labelled MBPP prompt dropped", kept, n)
	}
}

func TestBestMixAtCost(t *testing.T) {
	singles := map[string]Point{"cheap": {Quality: 0.6, Cost: 1}, "strong": {Quality: 0.9, Cost: 11}, "poor": {Quality: 0.5, Cost: 6}}
	name, p := bestMixAtCost(singles, 6)
	if name != "50% cheap, 50% strong" || p.Quality < 0.7499 || p.Quality > 0.7501 || p.Cost != 6 {
		t.Errorf("mix at cost 6: %s %+v, want half cheap, half strong at quality 0.75", name, p)
	}
	if name, _ := bestMixAtCost(singles, 0.5); name != "" {
		t.Errorf("below every model's cost: %q, want none", name)
	}
}

func TestDatasetBound(t *testing.T) {
	models := []string{"cheap", "strong"}
	row := func(ds string, cheap, strong float64) Prompt {
		return Prompt{Dataset: ds, Score: map[string]float64{"cheap": cheap, "strong": strong}, Cost: map[string]float64{"cheap": 1, "strong": 10}}
	}
	// On "easy" the cheap model is as good as the strong one; on "hard" only the strong one
	// answers, on half the rows.
	ps := []Prompt{row("easy", 1, 1), row("easy", 1, 1), row("hard", 0, 1), row("hard", 0, 0)}
	for _, c := range []struct {
		cost, quality float64
	}{
		{4, 0.5},    // everything to the cheap model
		{13, 0.625}, // half of "hard" (the 18 USD to move it all, bought with 9) to the strong model
		{22, 0.75},  // "hard" to the strong model, "easy" stays cheap: nothing left to gain
		{40, 0.75},  // more money buys nothing
		{2, 0.5},    // below the cheapest routing: it is reported at its own cost
	} {
		p := datasetBound(ps, models, c.cost)
		if math.Abs(p.Quality-c.quality) > 1e-9 || p.Cost > max(c.cost, 4) {
			t.Errorf("bound at %.0f USD: %+v, want quality %.3f", c.cost, p, c.quality)
		}
	}
}

func TestAUC(t *testing.T) {
	scores := []float64{0.9, 0.8, 0.7, 0.6, 0.5, 0.5}
	grades := []float64{1, 1, 0, 1, 0, 1}
	idx := []int{0, 1, 2, 3, 4, 5}
	// Positives 0.9, 0.8, 0.6, 0.5 against negatives 0.7, 0.5: pairs won 2+2+1+0, tied 0+0+0+1
	// (0.5 against 0.5), lost 0+0+1+1 → (5 + 0.5) / 8.
	a, ok := auc(idx, func(i int) (float64, float64) { return scores[i], grades[i] })
	if !ok || math.Abs(a-5.5/8) > 1e-12 {
		t.Errorf("auc %.4f (%v), want %.4f", a, ok, 5.5/8)
	}
	if _, ok := auc(idx[:2], func(i int) (float64, float64) { return scores[i], grades[i] }); ok {
		t.Error("auc of positives only: want not defined")
	}
}

func TestSignalCurve(t *testing.T) {
	// Two datasets on which the cheap model answers half the prompts: knowing nothing of
	// single prompts ranks them at chance; knowing half of each grade ranks them well and,
	// within the budget, routes better.
	dir := t.TempDir()
	ps, models, err := Read(writeCSV(t, dir, "alpha", 200, ""), writeCSV(t, dir, "beta", 200, ""))
	if err != nil {
		t.Fatal(err)
	}
	classified(ps)
	const at = 0.6
	rep, err := Evaluate([]Fold{HashSplit(ps)}, nil, models, testCatalog(t),
		Options{Floors: []float64{0, 0.5, 0.7, 0.8, 0.9, 0.95, 1}, Relative: true, Target: 0.95, SignalAt: at})
	if err != nil {
		t.Fatal(err)
	}
	f := rep.Folds[0]
	if len(f.Signal) != len(SignalShares) || f.SignalAt != at {
		t.Fatalf("signal %+v at %v: want %d points at %v", f.Signal, f.SignalAt, len(SignalShares), at)
	}
	first, last := f.Signal[0], f.Signal[len(f.Signal)-1]
	if first.Ranking < 0.4 || first.Ranking > 0.6 {
		t.Errorf("share 0 ranks with ROC area %.2f: want chance", first.Ranking)
	}
	if last.Ranking < 0.85 {
		t.Errorf("share %.2f ranks with ROC area %.2f: want well above chance", last.Share, last.Ranking)
	}
	if last.Best.Quality <= first.Best.Quality {
		t.Errorf("quality %.3f with share %.2f, %.3f with none: knowing the grades must help", last.Best.Quality, last.Share, first.Best.Quality)
	}
	budget := at * f.Singles[GPT4].Cost
	for _, s := range f.Signal {
		if s.Best.Cost > budget+1e-9 {
			t.Errorf("share %.2f: cost %.4f over the budget %.4f", s.Share, s.Best.Cost, budget)
		}
	}
	if !strings.Contains(rep.Markdown(), "| share of the grade |") {
		t.Error("the report leaves the synthetic routers out")
	}
}
