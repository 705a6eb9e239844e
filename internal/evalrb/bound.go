package evalrb

import (
	"math/rand/v2"
	"slices"
	"sort"
)

// BoundShares are the shares of GPT-4's cost at which a fold reports DatasetBound.
var BoundShares = []float64{0.02, 0.05, 0.1, 0.2, 0.3, 0.5, 0.8, 1}

// datasetBound is the best quality that any router able to tell the datasets apart, but not
// the prompts within one, can reach at this cost on these rows: per dataset, each model's
// mean grade and total cost on the rows themselves, mixed at random within the dataset.
// Those mixes are the upper concave hull of each dataset's (cost, quality) points; the best
// spend of a budget across datasets fills the hulls' segments in order of quality gained per
// USD (a fractional knapsack, exact for random mixes). It reads the evaluation rows' grades,
// so it is an upper bound, not a router: a router above it has learned something about single
// prompts, one below it cannot claim to have.
func datasetBound(ps []Prompt, models []string, cost float64) Point {
	type pt struct{ c, q float64 } // summed over the dataset's rows
	names, totals := datasetTotals(ps, models)
	byDS := map[string][]pt{}
	for _, d := range names {
		pts := make([]pt, len(models))
		for j := range pts {
			pts[j] = pt{totals[d].cost[j], totals[d].score[j]}
		}
		byDS[d] = pts
	}
	type seg struct{ dc, dq float64 }
	var segs []seg
	var c, q float64
	for _, d := range names {
		pts := byDS[d]
		sort.Slice(pts, func(a, b int) bool { return pts[a].c < pts[b].c || (pts[a].c == pts[b].c && pts[a].q > pts[b].q) })
		hull := []pt{pts[0]}
		for _, p := range pts[1:] {
			if p.q <= hull[len(hull)-1].q {
				continue // costs more for no more quality
			}
			for len(hull) >= 2 {
				a, b := hull[len(hull)-2], hull[len(hull)-1]
				if (b.q-a.q)*(p.c-a.c) > (p.q-a.q)*(b.c-a.c) {
					break // b stays on the hull
				}
				hull = hull[:len(hull)-1]
			}
			hull = append(hull, p)
		}
		c += hull[0].c
		q += hull[0].q
		for i := 1; i < len(hull); i++ {
			segs = append(segs, seg{hull[i].c - hull[i-1].c, hull[i].q - hull[i-1].q})
		}
	}
	// A hull's segments fall in slope, so taking all datasets' segments by slope keeps each
	// dataset's in order.
	slices.SortStableFunc(segs, func(a, b seg) int {
		switch x, y := a.dq*b.dc, b.dq*a.dc; {
		case x > y:
			return -1
		case x < y:
			return 1
		}
		return 0
	})
	for _, s := range segs {
		if c >= cost {
			break
		}
		if c+s.dc <= cost {
			c, q = c+s.dc, q+s.dq
			continue
		}
		q += s.dq * (cost - c) / s.dc
		c = cost
	}
	return Point{Prompts: len(ps), Quality: q / float64(max(len(ps), 1)), Cost: c}
}

// dsTotals are one dataset's rows summed per model (indexed like the models).
type dsTotals struct {
	n           float64
	score, cost []float64
}

// datasetTotals sums the rows per dataset, and lists the datasets in the order of their first row.
func datasetTotals(ps []Prompt, models []string) ([]string, map[string]*dsTotals) {
	var names []string
	totals := map[string]*dsTotals{}
	for i := range ps {
		d := ps[i].Dataset
		t := totals[d]
		if t == nil {
			t = &dsTotals{score: make([]float64, len(models)), cost: make([]float64, len(models))}
			totals[d] = t
			names = append(names, d)
		}
		t.n++
		for j, m := range models {
			t.score[j] += ps[i].Score[m]
			t.cost[j] += ps[i].Cost[m]
		}
	}
	return names, totals
}

// rankingAUC says how well a router's predictions order the prompts within each dataset:
// per dataset, the mean over models of the area under the ROC curve of the predicted quality
// against the grade (0.5: no better than chance; models whose grades on the dataset are all
// equal, or with fewer than 20 rows, are left out). A router's gain over datasetBound can only
// come from these orderings.
func rankingAUC(ps []Prompt, models []string, pred [][]float64) map[string]float64 {
	byDS := map[string][]int{}
	for i := range ps {
		byDS[ps[i].Dataset] = append(byDS[ps[i].Dataset], i)
	}
	out := map[string]float64{}
	for d, idx := range byDS {
		if len(idx) < minGraded {
			continue
		}
		var sum float64
		n := 0
		for j, m := range models {
			if a, ok := auc(idx, func(i int) (float64, float64) { return pred[i][j], ps[i].Score[m] }); ok {
				sum += a
				n++
			}
		}
		if n > 0 {
			out[d] = sum / float64(n)
		}
	}
	return out
}

// auc is the Mann–Whitney estimate of the ROC area of scores against 0/1 grades (a grade of
// 0.5 or more is positive), ties counted half.
func auc(idx []int, at func(int) (score, grade float64)) (float64, bool) {
	type sg struct {
		s   float64
		pos bool
	}
	xs := make([]sg, len(idx))
	npos := 0
	for k, i := range idx {
		s, g := at(i)
		xs[k] = sg{s, g >= 0.5}
		if xs[k].pos {
			npos++
		}
	}
	nneg := len(xs) - npos
	if npos == 0 || nneg == 0 {
		return 0, false
	}
	sort.Slice(xs, func(a, b int) bool { return xs[a].s < xs[b].s })
	// Sum of the positives' ranks, ties given their mean rank.
	var rankSum float64
	for a := 0; a < len(xs); {
		b := a
		for b < len(xs) && xs[b].s == xs[a].s {
			b++
		}
		mean := float64(a+b+1) / 2 // ranks a+1 … b
		for k := a; k < b; k++ {
			if xs[k].pos {
				rankSum += mean
			}
		}
		a = b
	}
	return (rankSum - float64(npos*(npos+1))/2) / float64(npos*nneg), true
}

// SignalPoint is one synthetic router of signalCurve.
type SignalPoint struct {
	// Share is how much of each prompt's own grade the synthetic predictions carry.
	Share float64 `json:"share"`
	// Ranking is their rankingAUC, averaged over datasets.
	Ranking float64 `json:"ranking_auc"`
	// Best is the best point of their floor sweep that costs no more than the budget.
	Best Point `json:"best"`
}

// signalNoise is the spread of the synthetic predictions' noise.
const signalNoise = 0.3

// signalCurve answers "how much would a router have to know about single prompts to reach
// a quality at this cost?" with synthetic routers that read the evaluation grades: for each
// share w, every model's prediction for a prompt is its mean grade on the prompt's dataset
// (what the bound for routing by dataset knows) moved by w toward the prompt's own grade,
// plus Gaussian noise (σ 0.3, fixed seeds, three draws averaged). Each is routed like a
// real router over the floors, and the best point costing at most budget is kept. Not a
// router — it reads the answers — but it puts a number on the per-prompt knowledge a goal
// needs, in the same unit as rankingAUC.
func (e *evaluator) signalCurve(ps []Prompt, budget float64, shares []float64) []SignalPoint {
	// A model's prior on a dataset is its mean grade there.
	_, totals := datasetTotals(ps, e.models)
	prior := map[string][]float64{}
	for d, t := range totals {
		prior[d] = make([]float64, len(e.models))
		for j := range prior[d] {
			prior[d][j] = t.score[j] / t.n
		}
	}
	const draws = 3
	var out []SignalPoint
	for _, w := range shares {
		sp := SignalPoint{Share: w}
		for s := uint64(1); s <= draws; s++ {
			rng := rand.New(rand.NewPCG(s, 0x5ce11))
			pred := make([][]float64, len(ps))
			for i := range ps {
				pred[i] = make([]float64, len(e.models))
				for j, m := range e.models {
					pr := prior[ps[i].Dataset][j]
					pred[i][j] = pr + w*(ps[i].Score[m]-pr) + signalNoise*rng.NormFloat64()
				}
			}
			var auc float64
			r := rankingAUC(ps, e.models, pred)
			for _, a := range r {
				auc += a / float64(len(r))
			}
			best := Point{Quality: -1}
			for _, fl := range e.opt.Floors {
				if p := e.routeAll(ps, pred, fl, nil); p.Cost <= budget && p.Quality > best.Quality {
					best = p
				}
			}
			if best.Quality < 0 {
				best = Point{Prompts: len(ps)} // no floor stays within the budget
			}
			sp.Ranking += auc / draws
			sp.Best.Quality += best.Quality / draws
			sp.Best.Cost += best.Cost / draws
			sp.Best.Prompts = len(ps)
		}
		out = append(out, sp)
	}
	return out
}
