package evalrb

import (
	"fmt"

	"github.com/stellwerk/stellwerk/internal/catalog"
	"github.com/stellwerk/stellwerk/internal/classify/task"
	"github.com/stellwerk/stellwerk/internal/evals"
	"github.com/stellwerk/stellwerk/internal/qpredict"
)

// Router predicts the quality of each model (indexed like the models of the report) for a
// prompt; selection then takes the cheapest model that clears the floor.
type Router interface {
	Qualities(p *Prompt, dst []float64)
}

// Trainer fits a router on fit rows; Given is a router that was fitted elsewhere.
// Variants are named settings of the fit (e.g. regularisation strengths): the evaluation
// chooses one together with the floor, on the fit rows only. Without variants Fit is called
// with variant 0.
type Trainer struct {
	Name     string
	Fit      func(fit []Prompt, models []string, variant int) (Router, error)
	Variants []string
	Given    Router
}

// minGraded: a task with fewer graded prompts than this says nothing about a model.
const minGraded = 20

type taskRouter struct {
	byTask map[string][]float64
	def    []float64
}

func (r *taskRouter) Qualities(p *Prompt, dst []float64) {
	q, ok := r.byTask[p.Task]
	if !ok {
		q = r.def
	}
	copy(dst, q)
}

// Scorecard fits per-model, per-task mean grades (the task as stellwerk's classifier assigns
// it) on the given rows, plus a "default" row per model: the per-task router.
func Scorecard(fit []Prompt, models []string) []evals.Score {
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
	for _, p := range fit {
		for _, m := range models {
			if v, ok := p.Score[m]; ok {
				add(m, p.Task, v)
				add(m, "default", v)
			}
		}
	}
	var out []evals.Score
	for k, a := range by {
		if a.n >= minGraded {
			out = append(out, evals.Score{Model: k[0], Task: k[1], Score: a.sum / float64(a.n), N: a.n, Source: "routerbench-fit"})
		}
	}
	return evals.Merge(out)
}

// TaskScorecard is the per-task router as a Trainer: the scorecard fitted on the fit rows,
// a task it has no row for falling back to the model's default row.
func TaskScorecard() Trainer {
	return Trainer{Name: "per-task scorecard", Fit: func(fit []Prompt, models []string, _ int) (Router, error) {
		r := &taskRouter{byTask: map[string][]float64{}, def: make([]float64, len(models))}
		idx := map[string]int{}
		for i, m := range models {
			idx[m] = i
		}
		for _, s := range Scorecard(fit, models) {
			if s.Task == "default" {
				r.def[idx[s.Model]] = s.Score
			}
		}
		for _, s := range Scorecard(fit, models) {
			if s.Task == "default" {
				continue
			}
			if r.byTask[s.Task] == nil {
				r.byTask[s.Task] = append([]float64(nil), r.def...)
			}
			r.byTask[s.Task][idx[s.Model]] = s.Score
		}
		return r, nil
	}}
}

type catalogRouter struct{ ms []*catalog.Model }

func (r catalogRouter) Qualities(p *Prompt, dst []float64) {
	for i, m := range r.ms {
		dst[i] = m.QualityFor(p.Task)
	}
}

// CatalogScores routes by the catalog's quality for the prompt's task: the scorecards its
// config lists (--scorecard) over its seeds, as live selection reads them.
func CatalogScores(name string, ms []*catalog.Model) Trainer {
	return Trainer{Name: name, Given: catalogRouter{ms}}
}

type learnedRouter struct {
	m    *qpredict.Model
	idx  []int // report model → predictor index, -1 without weights
	seed []*catalog.Model
	buf  []float64
}

func (r *learnedRouter) Qualities(p *Prompt, dst []float64) {
	var fs qpredict.Features
	r.m.Extract(Signals(p), &fs)
	r.m.Predict(&fs, r.buf)
	for i, j := range r.idx {
		switch {
		case j >= 0:
			dst[i] = r.buf[j]
		case r.seed != nil:
			dst[i] = r.seed[i].QualityFor(p.Task)
		default:
			dst[i] = 0
		}
	}
}

// Signals are what the quality predictor reads of a prompt.
func Signals(p *Prompt) qpredict.Signals {
	return qpredict.Signals{Text: p.Text, Task: p.Task, TaskConfidence: p.TaskConfidence}
}

// LearnedRouter wraps a quality predictor; models without weights take their catalog
// quality for the task (seed may be nil: then 0).
func LearnedRouter(m *qpredict.Model, models []string, seed []*catalog.Model) Router {
	r := &learnedRouter{m: m, seed: seed, buf: make([]float64, len(m.Models()))}
	for _, id := range models {
		r.idx = append(r.idx, m.Index(id))
	}
	return r
}

// Examples turns graded prompts into the predictor's training examples.
func Examples(ps []Prompt) []qpredict.Example {
	out := make([]qpredict.Example, len(ps))
	for i := range ps {
		out[i] = qpredict.Example{Signals: Signals(&ps[i]), Scores: ps[i].Score}
	}
	return out
}

// Learned is the learned per-prompt router as a Trainer, one variant per option set.
func Learned(opts ...qpredict.Options) Trainer {
	t := Trainer{Name: "learned per-prompt", Fit: func(fit []Prompt, models []string, v int) (Router, error) {
		o := opts[v]
		if o.Tasks == nil {
			o.Tasks = task.Tasks
		}
		m, err := qpredict.Train(Examples(fit), models, o)
		if err != nil {
			return nil, err
		}
		return LearnedRouter(m, models, nil), nil
	}}
	for _, o := range opts {
		name := fmt.Sprintf("L2 %g", o.L2)
		if o.FixedL2 != 0 && o.FixedL2 != o.L2 {
			name += fmt.Sprintf(" (fixed features %g)", o.FixedL2)
		}
		if o.Rank > 0 {
			name += fmt.Sprintf(", rank %d", o.Rank)
		}
		t.Variants = append(t.Variants, name)
	}
	return t
}
