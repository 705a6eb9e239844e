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
// instruction; in a conversation, the user's earlier prompts.
type Prompt struct {
	System, Text string
	// Earlier are the conversation's earlier user prompts
	// (PromptsConversation): each is resent as it was sent, its answer
	// after it.
	Earlier []Prompt
}

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
	// PromptsConversation sends the same corpus as conversations of
	// ConversationTurns user turns: the request of turn k resends the k-1
	// turns before it as they were sent (each its prompt filled to the
	// request's size, and an answer of about 200 bytes after it, shorter
	// than the classifier's memo keeps) and ends with its own prompt
	// filled to the size. The classifier finds the resent user turns in
	// its memo (internal/classify/memo.go). Chat only.
	PromptsConversation = "conversation"
)

// ConversationTurns is the number of user turns of a conversation of
// PromptsConversation.
const ConversationTurns = 8

// PromptSets are the values of --prompts.
var PromptSets = []string{PromptsSame, PromptsVaried, PromptsConversation}

// PromptsFile is the corpus PromptsVaried reads, under the repository
// root: one JSON object per line with "text" and "system".
const PromptsFile = "internal/classify/task/testdata/prompts.jsonl"

// LoadPrompts is the prompt set named by mode: none for PromptsSame (the
// endpoints' one prompt), the corpus for PromptsVaried.
func LoadPrompts(root, mode string) ([]Prompt, error) {
	switch mode {
	case "", PromptsSame:
		return nil, nil
	case PromptsVaried, PromptsConversation:
	default:
		return nil, fmt.Errorf("prompts %q: want %s, %s or %s", mode, PromptsSame, PromptsVaried, PromptsConversation)
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
	if mode == PromptsConversation {
		out = conversations(out)
	}
	return out, nil
}

// conversations groups prompts into conversations of ConversationTurns
// user turns (a shorter last one), each turn with the ones before it; a
// conversation's system prompt is its first prompt's.
func conversations(prompts []Prompt) []Prompt {
	out := make([]Prompt, 0, len(prompts))
	for start := 0; start < len(prompts); start += ConversationTurns {
		group := prompts[start:min(start+ConversationTurns, len(prompts))]
		for k, p := range group {
			earlier := make([]Prompt, k)
			for j, e := range group[:k] {
				earlier[j] = Prompt{System: group[0].System, Text: e.Text}
			}
			out = append(out, Prompt{System: group[0].System, Text: p.Text, Earlier: earlier})
		}
	}
	return out
}

// promptsName is mode as reports name it.
func promptsName(mode string) string {
	if mode == "" {
		return PromptsSame
	}
	return mode
}
