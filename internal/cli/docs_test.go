package cli

import (
	"bytes"
	"context"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/stellwerk/stellwerk/internal/docstest"
)

// invocation is `stellwerk VERB [SUB]` as the docs write it: at the start
// of a code span or a code line (after a shell prompt), or anywhere as
// bin/stellwerk; not "stellwerk answers" in a diagram or comment.
var invocation = regexp.MustCompile(`(?:^\s*(?:\$\s+)?(?:(?:\./)?bin/)?|(?:^|[\s(|&;])(?:\./)?bin/)stellwerk ([a-z][a-z-]*)(?: ([a-z][a-z-]*[a-z]))?(?:[\s)]|$)`)

// answer is what Run says to args + "-h", with the word under test
// replaced, so that two unknown words give the same answer.
func answer(word string, args ...string) string {
	var out, errb bytes.Buffer
	err := Run(context.Background(), append(args, "-h"), strings.NewReader(""), &out, &errb)
	s := out.String() + errb.String()
	if err != nil {
		s += err.Error()
	}
	w := regexp.MustCompile(`(^|[^a-z0-9-])` + regexp.QuoteMeta(word) + `([^a-z0-9-]|$)`)
	lines := strings.Split(w.ReplaceAllString(s, "${1}WORD${2}"), "\n")
	slices.Sort(lines) // some usage texts list a map's keys, in no fixed order
	return strings.Join(lines, "\n")
}

// TestDocumentedVerbsExist (issue 18): every `stellwerk VERB` and
// `stellwerk VERB SUB` the README and docs show is a command the binary
// knows. Run itself is the command table: a verb exists when Run answers it
// (with -h, which does nothing) otherwise than a made-up verb; a sub-verb
// exists when its answer differs from a made-up sub-verb's. A verb that
// takes arguments rather than sub-verbs (explain FILE) is not held to the
// second word unless another documented second word proves it has
// sub-verbs.
func TestDocumentedVerbsExist(t *testing.T) {
	const madeUp = "zz-no-such-word"
	unknownVerb := answer(madeUp, madeUp)
	type use struct{ where, verb, sub string }
	var uses []use
	for _, s := range docstest.Snippets(t, "../..") {
		for _, m := range invocation.FindAllStringSubmatch(s.Code, -1) {
			uses = append(uses, use{s.Where, m[1], m[2]})
		}
	}
	if len(uses) < 30 {
		t.Fatalf("only %d invocations found in the docs: is the parser still reading them?", len(uses))
	}
	verbs := map[string]bool{}
	hasSubs := map[string]bool{}
	isSub := map[[2]string]bool{}
	for _, u := range uses {
		if _, seen := verbs[u.verb]; !seen {
			verbs[u.verb] = answer(u.verb, u.verb) != unknownVerb
		}
		if u.sub != "" && verbs[u.verb] {
			k := [2]string{u.verb, u.sub}
			if _, seen := isSub[k]; !seen {
				isSub[k] = answer(u.sub, u.verb, u.sub) != answer(madeUp, u.verb, madeUp)
				hasSubs[u.verb] = hasSubs[u.verb] || isSub[k]
			}
		}
	}
	for _, u := range uses {
		switch {
		case !verbs[u.verb]:
			t.Errorf("%s: the docs show `stellwerk %s`, which is not a command", u.where, u.verb)
		case u.sub != "" && hasSubs[u.verb] && !isSub[[2]string{u.verb, u.sub}]:
			t.Errorf("%s: the docs show `stellwerk %s %s`, which is not a %s command", u.where, u.verb, u.sub, u.verb)
		}
	}
	t.Logf("%d invocations, %d verbs, %d verb+sub pairs checked", len(uses), len(verbs), len(isSub))
}
