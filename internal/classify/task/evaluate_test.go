package task

import (
	"os"
	"reflect"
	"strings"
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

// minVariedAccuracy is the acceptance bar for the held-out split of the varied prompts.
const minVariedAccuracy = 0.85

func TestEvaluateVaried(t *testing.T) {
	f, err := os.Open("testdata/varied.txt")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	r, err := EvaluateVaried(f)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("\n%s", r.Markdown())
	for _, k := range r.Kinds {
		if k.N < 8 {
			t.Errorf("held-out split has %d prompts of kind %s, want at least 8", k.N, k.Kind)
		}
	}
	if len(r.Kinds) != len(KindTask) {
		t.Errorf("held-out split covers %d kinds, want all %d", len(r.Kinds), len(KindTask))
	}
	if r.Test.Accuracy < minVariedAccuracy {
		t.Errorf("held-out accuracy on varied prompts = %.3f, want >= %.2f", r.Test.Accuracy, minVariedAccuracy)
	}
}

func TestReadVaried(t *testing.T) {
	tests := map[string]struct {
		in      string
		want    []Example
		wantErr string
	}{
		"two prompts, comments, multi-line text": {
			in: "# comment\n\n@stem\nWhy is the sky blue?\n@coding\n\nFix this:\n\n```go\nx := 1\n```\n\n",
			want: []Example{
				{Text: "Why is the sky blue?", Task: KnowledgeQA, Kind: "stem", Source: "varied"},
				{Text: "Fix this:\n\n```go\nx := 1\n```", Task: Code, Kind: "coding", Source: "varied"},
			},
		},
		"unknown kind":       {in: "@poetry\nA poem.\n", wantErr: `line 1: unknown kind "poetry"`},
		"empty prompt":       {in: "@math\n\n@math\n1+1?\n", wantErr: "empty math prompt"},
		"text before a kind": {in: "hello\n@chat\nhi\n", wantErr: "line 1: text before the first @kind line"},
		"roleplay is chat":   {in: "@roleplay\nBe a pirate.\n", want: []Example{{Text: "Be a pirate.", Task: Chat, Kind: "roleplay", Source: "varied"}}},
		"humanities is QA":   {in: "@humanities\nWho was Kant?\n", want: []Example{{Text: "Who was Kant?", Task: KnowledgeQA, Kind: "humanities", Source: "varied"}}},
		"summarisation task": {in: "@summarisation\nTL;DR: …\n", want: []Example{{Text: "TL;DR: …", Task: Summarization, Kind: "summarisation", Source: "varied"}}},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			got, err := ReadVaried(strings.NewReader(tc.in))
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("err = %v, want %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, tc.want) {
				t.Errorf("got %+v\nwant %+v", got, tc.want)
			}
		})
	}
}

// TestKindTaskUsesKnownTasks guards the documented kind → task mapping against a typo.
func TestKindTaskUsesKnownTasks(t *testing.T) {
	for kind, task := range KindTask {
		if classIndex(task) < 0 {
			t.Errorf("kind %s maps to unknown task %q", kind, task)
		}
	}
}
