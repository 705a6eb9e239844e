package evalrb

import (
	"fmt"
	"io"
	"math"
)

// SVG draws the cost–quality curve with the baselines: cost on x (USD),
// quality on y.
func (r *Report) SVG(w io.Writer) error {
	const W, H, ml, mr, mt, mb = 720.0, 460.0, 70.0, 170.0, 40.0, 60.0
	maxCost := 0.0
	minQ, maxQ := 1.0, 0.0
	all := append([]Point{r.Default}, r.Points...)
	for _, b := range r.Baselines {
		all = append(all, b)
	}
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
	pr(`<text x="%.0f" y="22" font-size="15" font-weight="bold">stellwerk on RouterBench (%d prompts, %s): quality vs cost</text>`+"\n", ml, r.Prompts, r.Split)
	// axes and grid
	for i := 0; i <= 5; i++ {
		c := maxCost * float64(i) / 5
		pr(`<line x1="%.1f" y1="%.1f" x2="%.1f" y2="%.1f" stroke="#ddd"/><text x="%.1f" y="%.1f" text-anchor="middle">%.2f</text>`+"\n",
			x(c), y(minQ), x(c), y(maxQ), x(c), H-mb+18, c)
		q := minQ + (maxQ-minQ)*float64(i)/5
		pr(`<line x1="%.1f" y1="%.1f" x2="%.1f" y2="%.1f" stroke="#ddd"/><text x="%.1f" y="%.1f" text-anchor="end">%.2f</text>`+"\n",
			x(0), y(q), x(maxCost), y(q), ml-6, y(q)+4, q)
	}
	pr(`<text x="%.1f" y="%.1f" text-anchor="middle">total cost (USD)</text>`+"\n", (ml+W-mr)/2, H-14)
	pr(`<text x="16" y="%.1f" transform="rotate(-90 16 %.1f)" text-anchor="middle">mean quality (score of the chosen model)</text>`+"\n", (mt+H-mb)/2, (mt+H-mb)/2)
	// the 95%-of-GPT-4 quality line
	if g, ok := r.Baselines["gpt4"]; ok && 0.95*g.Quality >= minQ {
		pr(`<line x1="%.1f" y1="%.1f" x2="%.1f" y2="%.1f" stroke="#c33" stroke-dasharray="4 3"/><text x="%.1f" y="%.1f" fill="#c33">95%% of GPT-4 quality</text>`+"\n",
			x(0), y(0.95*g.Quality), x(maxCost), y(0.95*g.Quality), x(maxCost)+4, y(0.95*g.Quality)+4)
		pr(`<line x1="%.1f" y1="%.1f" x2="%.1f" y2="%.1f" stroke="#c33" stroke-dasharray="2 3"/><text x="%.1f" y="%.1f" fill="#c33" text-anchor="middle">40%% of GPT-4 cost</text>`+"\n",
			x(0.4*g.Cost), y(minQ), x(0.4*g.Cost), y(maxQ), x(0.4*g.Cost), mt+4)
	}
	// the curve
	pr(`<polyline fill="none" stroke="#1f6fd1" stroke-width="2" points="`)
	for _, p := range r.Points {
		pr("%.1f,%.1f ", x(p.Cost), y(p.Quality))
	}
	pr(`"/>` + "\n")
	for _, p := range r.Points {
		pr(`<circle cx="%.1f" cy="%.1f" r="3" fill="#1f6fd1"><title>floor %.2f: quality %.3f, cost %.3f</title></circle>`+"\n", x(p.Cost), y(p.Quality), p.Floor, p.Quality, p.Cost)
	}
	mark := func(p Point, label, color string) {
		pr(`<rect x="%.1f" y="%.1f" width="8" height="8" fill="%s"/><text x="%.1f" y="%.1f">%s (%.3f, $%.2f)</text>`+"\n",
			x(p.Cost)-4, y(p.Quality)-4, color, x(p.Cost)+8, y(p.Quality)+4, label, p.Quality, p.Cost)
	}
	for _, k := range []string{"gpt4", "cheapest", "oracle"} {
		mark(r.Baselines[k], k, "#555")
	}
	mark(r.Default, "stellwerk default", "#e08a00")
	pr("</svg>\n")
	return nil
}
