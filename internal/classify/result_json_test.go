package classify

import (
	"math/rand/v2"
	"testing"

	"github.com/stellwerk/stellwerk/internal/jsonw/jsonwtest"
)

// resultFields is Result without its methods: encoding/json's own
// encoding of its members, the reference.
type resultFields Result

// TestResultJSON: AppendJSON writes what encoding/json writes, for
// randomly filled results (NaN scores refused by both).
func TestResultJSON(t *testing.T) {
	failed := jsonwtest.Matches(t, rand.New(rand.NewPCG(7, 8)), 3000,
		func(r *Result) any { return (*resultFields)(r) }, (*Result).AppendJSON)
	if failed > 1500 {
		t.Errorf("%d of 3000 could not be encoded", failed)
	}
}

func BenchmarkResultJSON(b *testing.B) {
	r := Result{Task: "summarization", TaskConfidence: 0.9790363625601135, TaskCue: "summarize_verb", Complexity: "low",
		ComplexityDrivers: []string{}, ComplexitySignals: ComplexitySignals{InputTokens: 356, Turns: 2}, Language: "en",
		PII: []Finding{}, PIICounts: map[string]int{}, Secrets: []Finding{}, Injection: Injection{Score: 0.27785034530715164},
		Terms: []TermCount{}, Sensitivity: "public", SensitivityRule: "default", Risk: "low", RiskRule: "default",
		InputTokens: 376, Scan: "complete"}
	b.Run("append", func(b *testing.B) {
		buf := make([]byte, 0, 1024)
		for b.Loop() {
			buf, _ = r.AppendJSON(buf[:0])
		}
	})
	b.Run("encoding_json", func(b *testing.B) {
		for b.Loop() {
			_, _ = jsonwtest.Reflect((*resultFields)(&r))
		}
	})
}
