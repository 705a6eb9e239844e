package task

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"sort"
	"strings"
)

// KindTask maps each kind of prompt of the varied set (testdata/varied.txt) to the task the
// classifier names. The kinds are the ones a new user's traffic is described by (writing,
// role-play, STEM and humanities questions, …); the tasks are the fixed label set the policy
// and the router are configured with, so several kinds share a task: role-play is `chat`
// (the model is to be a character in a conversation), STEM and humanities questions are
// `knowledge_qa`.
var KindTask = map[string]string{
	"writing":        CreativeWriting,
	"roleplay":       Chat,
	"chat":           Chat,
	"reasoning":      Reasoning,
	"math":           Math,
	"coding":         Code,
	"extraction":     Extraction,
	"stem":           KnowledgeQA,
	"humanities":     KnowledgeQA,
	"translation":    Translation,
	"summarisation":  Summarization,
	"classification": Classification,
}

// ReadVaried decodes the varied prompt set: a line "@kind" starts a prompt, the lines after
// it up to the next "@" line are its text (surrounding blank lines trimmed); lines starting
// with "#" before the first prompt are comments. Each prompt becomes an Example with its
// kind, the kind's task and source "varied".
func ReadVaried(r io.Reader) ([]Example, error) {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 64<<10), 16<<20)
	var (
		out   []Example
		errs  []error
		cur   *Example
		lines []string
	)
	flush := func() {
		if cur == nil {
			return
		}
		cur.Text = strings.TrimSpace(strings.Join(lines, "\n"))
		if cur.Text == "" {
			errs = append(errs, fmt.Errorf("empty %s prompt", cur.Kind))
		} else {
			out = append(out, *cur)
		}
		cur, lines = nil, nil
	}
	for n := 1; sc.Scan(); n++ {
		line := sc.Text()
		switch {
		case strings.HasPrefix(line, "@"):
			flush()
			kind := strings.TrimSpace(line[1:])
			t, ok := KindTask[kind]
			if !ok {
				errs = append(errs, fmt.Errorf("line %d: unknown kind %q", n, kind))
				continue
			}
			cur = &Example{Task: t, Kind: kind, Source: "varied"}
		case cur == nil:
			if strings.TrimSpace(line) != "" && !strings.HasPrefix(line, "#") {
				errs = append(errs, fmt.Errorf("line %d: text before the first @kind line", n))
			}
		default:
			lines = append(lines, line)
		}
	}
	flush()
	if err := sc.Err(); err != nil {
		errs = append(errs, fmt.Errorf("read varied prompts: %w", err))
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	return out, nil
}

// EvaluateVaried classifies every prompt of the varied set and reports the held-out split
// (Test: the prompts IsTest puts there, never trained on), the training split, and the
// held-out accuracy per kind.
func EvaluateVaried(r io.Reader) (*Report, error) {
	exs, err := ReadVaried(r)
	if err != nil {
		return nil, err
	}
	return evaluate(exs, "held-out")
}

// KindScore is the accuracy on the prompts of one kind of the varied set.
type KindScore struct {
	Kind     string  `json:"kind"`
	Task     string  `json:"task"`
	N        int     `json:"n"`
	Correct  int     `json:"correct"`
	Accuracy float64 `json:"accuracy"`
}

func kindScores(exs []Example, test bool) []KindScore {
	by := map[string]*KindScore{}
	for _, e := range exs {
		if e.Kind == "" || e.IsTest() != test {
			continue
		}
		k := by[e.Kind]
		if k == nil {
			k = &KindScore{Kind: e.Kind, Task: e.Task}
			by[e.Kind] = k
		}
		k.N++
		if Classify(e.System, e.Text).Task == e.Task {
			k.Correct++
		}
	}
	out := make([]KindScore, 0, len(by))
	for _, k := range by {
		k.Accuracy = float64(k.Correct) / float64(k.N)
		out = append(out, *k)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Kind < out[j].Kind })
	return out
}
