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
// instruction; in a conversation, the turns before it.
type Prompt struct {
	System, Text string
	History      []Turn // earlier turns, user and assistant in turn (PromptsConversation)
}

// Turn is one earlier message of a conversation.
type Turn struct{ Role, Text string }

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
	// turns before it (each its prompt with notes up to 600 bytes, and an
	// answer of about 200 bytes after it) and ends with its own prompt
	// filled to the request's size. A resent user turn is shorter than
	// when it was the newest (600 bytes, not the size), so the classifier
	// scans it on its first resend and finds it in its memo from the
	// second (internal/classify/memo.go): less than a client that resends
	// its turns as sent gets. The answers are shorter than the memo keeps.
	// Chat only.
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
// user turns (a shorter last one), each turn keeping the ones before it;
// a conversation's system prompt is its first prompt's.
func conversations(prompts []Prompt) []Prompt {
	out := make([]Prompt, 0, len(prompts))
	for start := 0; start < len(prompts); start += ConversationTurns {
		group := prompts[start:min(start+ConversationTurns, len(prompts))]
		var history []Turn
		for k, p := range group {
			out = append(out, Prompt{System: group[0].System, Text: p.Text, History: history})
			user := string(prose(p.Text+"\n\nNotes: ", "", 600))
			answer := string(prose(fmt.Sprintf("Answer %d of conversation %d. ", k+1, start/ConversationTurns+1), "", 200))
			history = append(history[:len(history):len(history)], Turn{"user", user}, Turn{"assistant", answer})
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
