package evalrb

import (
	"fmt"
	"io"
	"math"
)

var curveColors = []string{"#1f6fd1", "#2a9d3a", "#8e44ad", "#c0392b"}

// SVG draws one fold's cost–quality curves, one per router, with the baselines and each
// router's operating point: cost on x (USD), quality on y.
func (r *Report) SVG(w io.Writer, fold int) error {
	if fold < 0 || fold >= len(r.Folds) {
		return fmt.Errorf("no fold %d", fold)
	}
	f := r.Folds[fold]
	const W, H, ml, mr, mt, mb = 900.0, 480.0, 70.0, 290.0, 40.0, 60.0
	maxCost := 0.0
	minQ, maxQ := 1.0, 0.0
	var all []Point
	for _, b := range f.Baselines {
		all = append(all, b)
	}
	for _, rr := range f.Routers {
		all = append(all, rr.Chosen)
		all = append(all, rr.Curve...)
	}
	all = append(all, f.DatasetBound...)
	for _, p := range all {
		maxCost = max(maxCost, p.Cost)
		minQ, maxQ = min(minQ, p.Quality), max(maxQ, p.Quality)
	}
	maxCost *= 1.05
	minQ = math.Floor(minQ*20) / 20
	maxQ = math.Ceil(maxQ*20) / 20
	if maxQ <= minQ {
		maxQ = minQ + 0.05
	}
	x := func(c float64) float64 { return ml + (W-ml-mr)*c/maxCost }
	y := func(q float64) float64 { return H - mb - (H-mt-mb)*(q-minQ)/(maxQ-minQ) }
	pr := func(format string, a ...any) { fmt.Fprintf(w, format, a...) }
	pr(`<svg xmlns="http://www.w3.org/2000/svg" width="%.0f" height="%.0f" font-family="sans-serif" font-size="12">`+"\n", W, H)
	pr(`<rect width="100%%" height="100%%" fill="white"/>` + "\n")
	pr(`<text x="%.0f" y="22" font-size="14" font-weight="bold">stellwerk on RouterBench, %s (%d prompts): quality vs cost</text>`+"\n", ml, f.Name, f.Eval)
	for i := 0; i <= 5; i++ {
		c := maxCost * float64(i) / 5
		pr(`<line x1="%.1f" y1="%.1f" x2="%.1f" y2="%.1f" stroke="#ddd"/><text x="%.1f" y="%.1f" text-anchor="middle">%.2f</text>`+"\n",
			x(c), y(minQ), x(c), y(maxQ), x(c), H-mb+18, c)
		q := minQ + (maxQ-minQ)*float64(i)/5
		pr(`<line x1="%.1f" y1="%.1f" x2="%.1f" y2="%.1f" stroke="#ddd"/><text x="%.1f" y="%.1f" text-anchor="end">%.2f</text>`+"\n",
			x(0), y(q), x(maxCost), y(q), ml-6, y(q)+4, q)
	}
	pr(`<text x="%.1f" y="%.1f" text-anchor="middle">total cost (USD)</text>`+"\n", (ml+W-mr)/2, H-14)
	pr(`<text x="16" y="%.1f" transform="rotate(-90 16 %.1f)" text-anchor="middle">mean quality (grade of the chosen model)</text>`+"\n", (mt+H-mb)/2, (mt+H-mb)/2)
	if g, ok := f.Baselines["gpt4"]; ok && g.Quality >= minQ {
		pr(`<line x1="%.1f" y1="%.1f" x2="%.1f" y2="%.1f" stroke="#c33" stroke-dasharray="4 3"/><text x="%.1f" y="%.1f" fill="#c33">GPT-4 quality</text>`+"\n",
			x(0), y(g.Quality), x(maxCost), y(g.Quality), x(0)+4, y(g.Quality)-4)
		pr(`<line x1="%.1f" y1="%.1f" x2="%.1f" y2="%.1f" stroke="#c33" stroke-dasharray="2 3"/><text x="%.1f" y="%.1f" fill="#c33" text-anchor="middle">30%% of GPT-4 cost</text>`+"\n",
			x(0.3*g.Cost), y(minQ), x(0.3*g.Cost), y(maxQ), x(0.3*g.Cost), mt+4)
	}
	for i, rr := range f.Routers {
		col := curveColors[i%len(curveColors)]
		pr(`<polyline fill="none" stroke="%s" stroke-width="2" points="`, col)
		for _, p := range rr.Curve {
			pr("%.1f,%.1f ", x(p.Cost), y(p.Quality))
		}
		pr(`"/>` + "\n")
		for _, p := range rr.Curve {
			pr(`<circle cx="%.1f" cy="%.1f" r="3" fill="%s"><title>%s, floor %.2f: quality %.3f, cost %.3f</title></circle>`+"\n", x(p.Cost), y(p.Quality), col, rr.Name, p.Floor, p.Quality, p.Cost)
		}
		pr(`<rect x="%.1f" y="%.1f" width="10" height="10" fill="%s" stroke="black"/>`+"\n", x(rr.Chosen.Cost)-5, y(rr.Chosen.Quality)-5, col)
		pr(`<line x1="%.1f" y1="%.1f" x2="%.1f" y2="%.1f" stroke="%s" stroke-width="2"/><text x="%.1f" y="%.1f">%s: floor %.2f, %.3f, $%.2f</text>`+"\n",
			W-mr+10, mt+20+18*float64(i), W-mr+30, mt+20+18*float64(i), col, W-mr+34, mt+24+18*float64(i), rr.Name, rr.Chosen.Floor, rr.Chosen.Quality, rr.Chosen.Cost)
	}
	if len(f.DatasetBound) > 0 {
		const col = "#888"
		pr(`<polyline fill="none" stroke="%s" stroke-width="2" stroke-dasharray="6 4" points="`, col)
		for _, p := range f.DatasetBound {
			pr("%.1f,%.1f ", x(p.Cost), y(p.Quality))
		}
		pr(`"/>` + "\n")
		i := float64(len(f.Routers))
		pr(`<line x1="%.1f" y1="%.1f" x2="%.1f" y2="%.1f" stroke="%s" stroke-width="2" stroke-dasharray="6 4"/><text x="%.1f" y="%.1f">bound for routing by dataset</text>`+"\n",
			W-mr+10, mt+20+18*i, W-mr+30, mt+20+18*i, col, W-mr+34, mt+24+18*i)
	}
	for _, k := range []string{"gpt4", "cheapest", "oracle"} {
		p := f.Baselines[k]
		pr(`<rect x="%.1f" y="%.1f" width="8" height="8" fill="#555"/><text x="%.1f" y="%.1f">%s (%.3f, $%.2f)</text>`+"\n",
			x(p.Cost)-4, y(p.Quality)-4, x(p.Cost)+8, y(p.Quality)+4, k, p.Quality, p.Cost)
	}
	pr("</svg>\n")
	return nil
}
