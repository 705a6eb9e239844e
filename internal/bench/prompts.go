package bench

import (
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"

	"github.com/stellwerk/stellwerk/internal/classify/task"
)

// Prompt is what a request asks before the notes that fill it to its
// size: a system prompt (the Responses API's instructions) and the user's
// instruction.
type Prompt struct{ System, Text string }

// samePrompt is the one prompt of the "same" load.
var samePrompt = Prompt{System: "You are a concise assistant for an operations team.",
	Text: "Summarise the following notes in three bullet points. "}

// The prompt sets a load can send (--prompts).
const (
	// PromptsSame sends one request body over and over: every request is
	// classified alike, the policy memo always answers, and the same
	// model is chosen. The figures before 2026-12-03 were measured so.
	PromptsSame = "same"
	// PromptsVaried sends the 728 prompts of the task classifier's corpus
	// (code, maths, reasoning, questions, writing, chat, translation,
	// extraction, classification, summaries; PromptsFile) in a fixed
	// shuffled order, each followed by the notes up to the request's size:
	// each request is classified anew, its task chooses among the models,
	// and the policy memo meets what it has not seen, as in production.
	PromptsVaried = "varied"
)

// PromptsFile is the corpus PromptsVaried reads, under the repository
// root: one JSON object per line with "text" and "system".
const PromptsFile = "internal/classify/task/testdata/prompts.jsonl"

// LoadPrompts is the prompt set named by mode: none for PromptsSame (the
// endpoints' one prompt), the corpus for PromptsVaried.
func LoadPrompts(root, mode string) ([]Prompt, error) {
	switch mode {
	case "", PromptsSame:
		return nil, nil
	case PromptsVaried:
	default:
		return nil, fmt.Errorf("prompts %q: want %s or %s", mode, PromptsSame, PromptsVaried)
	}
	f, err := os.Open(filepath.Join(root, PromptsFile))
	if err != nil {
		return nil, fmt.Errorf("prompts: %w", err)
	}
	defer f.Close()
	examples, err := task.ReadExamples(f)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", PromptsFile, err)
	}
	var out []Prompt
	for _, e := range examples {
		if e.Text == "" {
			continue
		}
		if e.System == "" {
			e.System = samePrompt.System
		}
		out = append(out, Prompt{System: e.System, Text: e.Text})
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("prompts: %s has none", PromptsFile)
	}
	// The corpus is grouped by source: shuffle it (always alike, so every
	// run and every target sends the same sequence).
	rand.New(rand.NewPCG(12, 3)).Shuffle(len(out), func(i, j int) { out[i], out[j] = out[j], out[i] })
	return out, nil
}

// promptsName is mode as reports name it.
func promptsName(mode string) string {
	if mode == "" {
		return PromptsSame
	}
	return mode
}
