package decision

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stellwerk/stellwerk/internal/catalog"
	"github.com/stellwerk/stellwerk/internal/classify"
	"github.com/stellwerk/stellwerk/internal/config"
	"github.com/stellwerk/stellwerk/internal/qpredict"
	"github.com/stellwerk/stellwerk/internal/request"
)

// shippedPredictor is the shipped RouterBench quality predictor over the shipped 71-model catalog.
func shippedPredictor(tb testing.TB) (*Router, []*catalog.Model) {
	tb.Helper()
	cfg, err := config.Load(filepath.Join("..", "..", "examples", "production.yaml"))
	if err != nil {
		tb.Fatal(err)
	}
	cat, err := catalog.New(cfg, catalog.Env{Getenv: func(string) string { return "" }, ReadFile: os.ReadFile})
	if err != nil {
		tb.Fatal(err)
	}
	qp, err := qpredict.ReadFile(filepath.Join("..", "..", "examples", "routers", "routerbench-hash-fit.json"))
	if err != nil {
		tb.Fatal(err)
	}
	return &Router{Catalog: cat, Predictor: qp}, cat.Models()
}

func chatOf(tb testing.TB, text string) request.Chat {
	tb.Helper()
	body := `{"model":"auto","messages":[{"role":"system","content":"Be brief."},{"role":"user","content":` + quote(text) + `}]}`
	chat, err := request.ParseChat([]byte(body))
	if err != nil {
		tb.Fatal(err)
	}
	return chat
}

func quote(s string) string {
	return `"` + strings.NewReplacer(`\`, `\\`, `"`, `\"`, "\n", `\n`).Replace(s) + `"`
}

func TestPredictedQualityReplacesScorecardForKnownModels(t *testing.T) {
	r, models := shippedPredictor(t)
	chat := chatOf(t, "Write a python function to reverse a linked list.")
	class := classify.Result{Task: "code", TaskConfidence: 0.9}
	pred := r.predict(&chat, &class)
	known, fallback := 0, 0
	for _, m := range models {
		q := qualityFor(m, class.Task, r.Predictor, pred)
		if i := r.Predictor.Index(m.ID); i >= 0 {
			known++
			if q != pred[i] || q <= 0 || q >= 1 {
				t.Errorf("%s: quality %v, want the predicted probability %v", m.ID, q, pred[i])
			}
		} else {
			fallback++
			if q != m.QualityFor(class.Task) {
				t.Errorf("%s: quality %v, want the scorecard's %v", m.ID, q, m.QualityFor(class.Task))
			}
		}
	}
	if known != 11 || fallback != len(models)-11 {
		t.Errorf("%d models predicted, %d from scorecards; want the 11 RouterBench models predicted", known, fallback)
	}
}

// BenchmarkPredictedQuality71 is the per-request cost the predictor adds on the request path:
// reading the last user message, features, 11 models' probabilities and the quality of each
// of the 71 catalog models.
func BenchmarkPredictedQuality71(b *testing.B) {
	r, models := shippedPredictor(b)
	long := strings.Repeat("The following are multiple choice questions about science, with answers. ", 60) +
		"\n\nQuestion: Which property of a mineral can be determined just by looking at it?\nA. luster\nB. mass\nC. weight\nD. hardness\nAnswer:"
	for name, text := range map[string]string{
		"short": "Write a python function to reverse a linked list.",
		"long":  long,
	} {
		chat := chatOf(b, text)
		class := classify.Result{Task: "knowledge_qa", TaskConfidence: 0.7}
		b.Run(name, func(b *testing.B) {
			b.ReportAllocs()
			var sink float64
			for i := 0; i < b.N; i++ {
				pred := r.predict(&chat, &class)
				for _, m := range models {
					sink += qualityFor(m, class.Task, r.Predictor, pred)
				}
			}
			_ = sink
		})
	}
}

func TestUserContent(t *testing.T) {
	for name, c := range map[string]struct{ raw, want string }{
		"string":         {`{"role":"user","content":"Hi \"there\"\nyou"}`, `Hi \"there\"\nyou`},
		"spaces":         {`{"content" : "a b", "role":"user"}`, `a b`},
		"key in a value": {`{"name":"x\"content\"","content":"real"}`, `real`},
		"parts":          {`{"role":"user","content":[{"type":"text","text":"one"},{"type":"image_url","image_url":{"url":"u"}},{"type":"text","text":"two"}]}`, "one\ntwo\n"},
		"no content":     {`{"role":"user"}`, ""},
	} {
		if got := userContent(c.raw); got != c.want {
			t.Errorf("%s: %q, want %q", name, got, c.want)
		}
	}
}

// qualityFor is what decide gives a model for this request: the predictor's when it has weights for
// the model, the scorecard's for the task otherwise.
func qualityFor(m *catalog.Model, task string, p *qpredict.Model, predicted []float64) float64 {
	if p != nil {
		if i := p.Index(m.ID); i >= 0 {
			return predicted[i]
		}
	}
	return m.QualityFor(task)
}
