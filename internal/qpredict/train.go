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
	Epochs  int     // passes over the data (default 30)
	Rate    float64 // AdaGrad learning rate (default 0.2)
	L2      float64 // L2 strength per example (default 1e-2)
	Buckets int     // hashed n-gram buckets, a power of two (default 4096)
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
					i := int(fs.idx[k])*nm + j
					g := d*float64(fs.val[k]) + opt.L2*w[i]
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
