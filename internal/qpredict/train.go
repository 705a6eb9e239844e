package qpredict

import (
	"errors"
	"math"
)

// Example is one graded prompt: the signals the predictor reads and each model's grade
// (0..1; a model missing from Scores is not trained on this prompt).
type Example struct {
	Signals
	Scores map[string]float64
}

// Options are the training settings; zero values take the defaults.
type Options struct {
	Epochs int     // passes over the data (default 30)
	Rate   float64 // AdaGrad learning rate (default 0.2)
	L2     float64 // L2 strength per example on the hashed n-gram weights (default 1e-2)
	// FixedL2 is the L2 strength on the length, task, confidence and bias weights; zero
	// takes L2. A small FixedL2 under a large L2 makes the model a per-task (and length)
	// base rate per model plus a lexical correction that must earn its place.
	FixedL2 float64
	// Rank, when > 0, shares the n-gram weights across models: model m's weight for an
	// n-gram is the dot product of the n-gram's Rank-vector and m's (a factorised model, so
	// every model's grade trains every n-gram). Task, length, confidence and bias weights stay
	// per model. The file stores the product, in the same layout.
	Rank    int
	Buckets int // hashed n-gram buckets, a power of two (default 4096)
	Tasks   []string
	Trained string // description stored in the file
}

// Train fits one logistic regression per model with AdaGrad and L2, visiting the examples
// in a fixed pseudo-random order so that the same data gives the same file.
func Train(ex []Example, models []string, opt Options) (*Model, error) {
	if len(ex) == 0 || len(models) == 0 {
		return nil, errors.New("quality predictor: nothing to train on")
	}
	if opt.Epochs == 0 {
		opt.Epochs = 30
	}
	if opt.Rate == 0 {
		opt.Rate = 0.2
	}
	if opt.L2 == 0 {
		opt.L2 = 1e-2
	}
	if opt.Buckets == 0 {
		opt.Buckets = defaultBuckets
	}
	if opt.FixedL2 == 0 {
		opt.FixedL2 = opt.L2
	}
	nf := numFeatures(opt.Buckets, len(opt.Tasks))
	nm := len(models)
	m, err := New(File{Kind: Kind, Version: Version, Trained: opt.Trained, Buckets: opt.Buckets, Tasks: opt.Tasks,
		Models: models, Weights: make([]float32, nf*nm)})
	if err != nil {
		return nil, err
	}
	feats := make([]Features, len(ex))
	for i := range ex {
		m.Extract(ex[i].Signals, &feats[i])
	}
	w := make([]float64, nf*nm)
	g2 := make([]float64, nf*nm)
	// Start each model's bias at its base rate.
	for j, id := range models {
		var s, n float64
		for _, e := range ex {
			if v, ok := e.Scores[id]; ok {
				s += v
				n++
			}
		}
		if n > 0 {
			p := min(max((s+1)/(n+2), 1e-3), 1-1e-3)
			w[m.biasF*nm+j] = math.Log(p / (1 - p))
		}
	}
	order := make([]int, len(ex))
	for i := range order {
		order[i] = i
	}
	if opt.Rank > 0 {
		trainFactored(ex, feats, models, opt, order, w)
		for i, v := range w {
			m.f.Weights[i] = float32(v)
		}
		return m, nil
	}
	rng := uint64(42)
	z := make([]float64, nm)
	for ep := 0; ep < opt.Epochs; ep++ {
		for i := len(order) - 1; i > 0; i-- {
			rng = rng*6364136223846793005 + 1442695040888963407
			j := int((rng >> 33) % uint64(i+1))
			order[i], order[j] = order[j], order[i]
		}
		for _, n := range order {
			fs := &feats[n]
			for j := range z {
				z[j] = 0
			}
			for k := 0; k < fs.n; k++ {
				f := int(fs.idx[k]) * nm
				v := float64(fs.val[k])
				for j := 0; j < nm; j++ {
					z[j] += w[f+j] * v
				}
			}
			for j, id := range models {
				y, ok := ex[n].Scores[id]
				if !ok {
					continue
				}
				d := 1/(1+math.Exp(-z[j])) - y
				for k := 0; k < fs.n; k++ {
					l2 := opt.L2
					if int(fs.idx[k]) >= opt.Buckets {
						l2 = opt.FixedL2
					}
					i := int(fs.idx[k])*nm + j
					g := d*float64(fs.val[k]) + l2*w[i]
					g2[i] += g * g
					w[i] -= opt.Rate * g / (math.Sqrt(g2[i]) + 1e-8)
				}
			}
		}
	}
	for i, v := range w {
		m.f.Weights[i] = float32(v)
	}
	return m, nil
}

// trainFactored fits the n-gram weights as U·Vᵀ (buckets × Rank, models × Rank) and the
// fixed features per model, then writes the product into w (feature-major, as the file).
func trainFactored(ex []Example, feats []Features, models []string, opt Options, order []int, w []float64) {
	nm, k := len(models), opt.Rank
	u := make([]float64, opt.Buckets*k)
	v := make([]float64, nm*k)
	gu := make([]float64, len(u))
	gv := make([]float64, len(v))
	gw := make([]float64, len(w))
	rng := uint64(7)
	for i := range v { // a fixed small start; U starts at zero
		rng = rng*6364136223846793005 + 1442695040888963407
		v[i] = 0.1 + 0.4*float64(rng>>40)/float64(1<<24)
	}
	h := make([]float64, k)
	d := make([]float64, nm)
	z := make([]float64, nm)
	rng = 42
	for ep := 0; ep < opt.Epochs; ep++ {
		for i := len(order) - 1; i > 0; i-- {
			rng = rng*6364136223846793005 + 1442695040888963407
			j := int((rng >> 33) % uint64(i+1))
			order[i], order[j] = order[j], order[i]
		}
		for _, n := range order {
			fs := &feats[n]
			clear(h)
			clear(z)
			for q := 0; q < fs.n; q++ {
				f, x := int(fs.idx[q]), float64(fs.val[q])
				if f < opt.Buckets {
					for r := 0; r < k; r++ {
						h[r] += u[f*k+r] * x
					}
					continue
				}
				for j := 0; j < nm; j++ {
					z[j] += w[f*nm+j] * x
				}
			}
			graded := false
			for j, id := range models {
				d[j] = 0
				y, ok := ex[n].Scores[id]
				if !ok {
					continue
				}
				for r := 0; r < k; r++ {
					z[j] += h[r] * v[j*k+r]
				}
				d[j] = 1/(1+math.Exp(-z[j])) - y
				graded = true
			}
			if !graded {
				continue
			}
			adagrad := func(p, g2 []float64, i int, g float64) {
				g2[i] += g * g
				p[i] -= opt.Rate * g / (math.Sqrt(g2[i]) + 1e-8)
			}
			for q := 0; q < fs.n; q++ {
				f, x := int(fs.idx[q]), float64(fs.val[q])
				if f < opt.Buckets {
					for r := 0; r < k; r++ {
						var g float64
						for j := 0; j < nm; j++ {
							g += d[j] * v[j*k+r]
						}
						adagrad(u, gu, f*k+r, g*x+opt.L2*u[f*k+r])
					}
					continue
				}
				for j, id := range models {
					if _, ok := ex[n].Scores[id]; ok {
						adagrad(w, gw, f*nm+j, d[j]*x+opt.FixedL2*w[f*nm+j])
					}
				}
			}
			for j, id := range models {
				if _, ok := ex[n].Scores[id]; !ok {
					continue
				}
				for r := 0; r < k; r++ {
					adagrad(v, gv, j*k+r, d[j]*h[r]+opt.L2*v[j*k+r])
				}
			}
		}
	}
	for f := 0; f < opt.Buckets; f++ {
		for j := 0; j < nm; j++ {
			var s float64
			for r := 0; r < k; r++ {
				s += u[f*k+r] * v[j*k+r]
			}
			w[f*nm+j] = s
		}
	}
}
