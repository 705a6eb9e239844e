package task

import (
	"os"
	"testing"
)

// minMacroF1 is the acceptance bar for the held-out test split.
const minMacroF1 = 0.85

func TestEvaluate(t *testing.T) {
	f, err := os.Open("testdata/prompts.jsonl")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	r, err := Evaluate(f)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("\n%s", r.Markdown())
	for _, c := range r.Test.Classes {
		if c.Support < 12 {
			t.Errorf("test split has %d examples of %s, want at least 12", c.Support, c.Task)
		}
	}
	if r.Test.MacroF1 < minMacroF1 {
		t.Errorf("test macro-F1 = %.3f, want >= %.2f", r.Test.MacroF1, minMacroF1)
	}
}
