package task

import (
	"hash/fnv"
	"io"
	"slices"
	"strings"
)

// InLabelledSet reports whether text is one of the RouterBench prompts in the classifier's
// labelled set (testdata/prompts.jsonl), or a few-shot prompt whose final question is one.
// The weights were fitted on part of that set, so a routing evaluation that measures the
// classifier's signal must leave these rows out (internal/evalrb). The list holds hashes of
// every RouterBench-sourced text of the set, tune and test split alike: the conservative choice.
func InLabelledSet(text string) bool {
	if _, ok := slices.BinarySearch(labelledRouterBench[:], textHash(text)); ok {
		return true
	}
	if q := LastQuestion(text); q != text && q != "" {
		_, ok := slices.BinarySearch(labelledRouterBench[:], textHash(q))
		return ok
	}
	return false
}

// LastQuestion is the final, unanswered question of a few-shot prompt without its
// answer-format line: how testdata/assemble/assemble.py derived the zero-shot form of some
// labelled rows.
func LastQuestion(prompt string) string {
	blocks := strings.Split(strings.TrimRight(prompt, " \t\r\n"), "\n\n")
	var keep []string
	for _, l := range strings.Split(blocks[len(blocks)-1], "\n") {
		if strings.HasPrefix(l, "Print only") || strings.TrimSpace(l) == "Answer:" {
			continue
		}
		keep = append(keep, l)
	}
	return strings.TrimSpace(strings.Join(keep, "\n"))
}

func textHash(s string) uint64 {
	h := fnv.New64a()
	_, _ = io.WriteString(h, s)
	return h.Sum64()
}
