package decision

import (
	"context"
	"fmt"
	"testing"

	"github.com/stellwerk/stellwerk/internal/auth"
	"github.com/stellwerk/stellwerk/internal/classify"
	"github.com/stellwerk/stellwerk/internal/classify/task"
	"github.com/stellwerk/stellwerk/internal/qpredict"
)

// TestQualityPredictorRoutesPerPrompt (issue 19): with a quality predictor, two prompts of the
// same task go to different models — the cheap one where it is predicted to answer well,
// the strong one where not — which a per-task scorecard cannot do.
func TestQualityPredictorRoutesPerPrompt(t *testing.T) {
	const doc = `
routing: {default_model: big}
currency: {usd_to_eur: 1}
providers:
  - {name: p, base_url: "http://127.0.0.1:9001/v1", residency: eu}
models:
  - {id: big, provider: p, context_window: 8000, price: {input_per_mtok: 3, output_per_mtok: 15}, quality: {default: 0.9}}
  - {id: small, provider: p, context_window: 8000, price: {input_per_mtok: 0.1, output_per_mtok: 0.3}, quality: {default: 0.5}}
workspaces:
  - {name: default, objective: cost, relative_quality: 0.9}
`
	plain, _ := libraryRouter(t, doc)
	cl := plain.Classifier
	var ex []qpredict.Example
	for i := 0; i < 300; i++ {
		text, small := fmt.Sprintf("Write a python function that sorts a list, variant %x", i*7919), 1.0
		if i%2 == 0 {
			text, small = fmt.Sprintf("Write a python function that proves a lock-free queue correct, variant %x", i*7919), 0
		}
		res := cl.Classify(classify.Request{Messages: chatOf(t, text).MessageList})
		ex = append(ex, qpredict.Example{Signals: qpredict.Signals{Text: text, Task: res.Task, TaskConfidence: res.TaskConfidence},
			Scores: map[string]float64{"big": 1, "small": small}})
	}
	qp, err := qpredict.Train(ex, []string{"big", "small"}, qpredict.Options{Tasks: task.Tasks})
	if err != nil {
		t.Fatal(err)
	}
	choose := func(r *Router, text string) string {
		t.Helper()
		res, err := r.Route(context.Background(), Request{Path: "/v1/chat/completions", Principal: auth.Principal{Workspace: "default"},
			Body: []byte(`{"model":"auto","max_tokens":10,"messages":[{"role":"user","content":` + quote(text) + `}]}`)})
		if err != nil {
			t.Fatal(err)
		}
		return res.Selection.Model.ID
	}
	easy, hard := "Write a python function that sorts a list, variant abc", "Write a python function that proves a lock-free queue correct, variant abc"
	if a, b := choose(plain, easy), choose(plain, hard); a != "big" || b != "big" {
		t.Errorf("scorecards only: %s and %s, want big for both (small is below 90%% of big for every prompt)", a, b)
	}
	learned, _ := libraryRouter(t, doc)
	learned.Predictor = qp
	if a, b := choose(learned, easy), choose(learned, hard); a != "small" || b != "big" {
		t.Errorf("with the predictor: %s for the easy prompt, %s for the hard one; want small and big", a, b)
	}

	// Replay has no prompt: it decides again with the recorded predictions,
	// on a router whose predictor would say otherwise for an empty prompt.
	for _, text := range []string{easy, hard} {
		req := Request{Path: "/v1/chat/completions", Principal: auth.Principal{Workspace: "default"}, Record: true, DecisionID: "d",
			Body: []byte(`{"model":"auto","max_tokens":10,"messages":[{"role":"user","content":` + quote(text) + `}]}`)}
		res, err := learned.Route(context.Background(), req)
		if err != nil {
			t.Fatal(err)
		}
		in := res.ReplayInputs(&req)
		if len(in.Quality) != 2 {
			t.Fatalf("recorded predictions %v", in.Quality)
		}
		again, err := learned.Replay(context.Background(), in, false)
		if err != nil || again.Selection.Model != res.Selection.Model || again.Selection.Reason != res.Selection.Reason {
			t.Errorf("replay of %q: %v %v, recorded %s", text, again.Selection.Model, err, res.Selection.Model.ID)
		}
	}
}
