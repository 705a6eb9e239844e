// Package docstest reads the README and docs/*.md for the tests that check
// the documentation against the binary: every endpoint, header and CLI
// verb the docs name must exist (internal/admin, internal/header and
// internal/cli each test their part).
package docstest

import (
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// Snippet is a piece of code the docs show: a `code span` or one line of a
// fenced code block, with where it is and the prose line around it.
type Snippet struct {
	Where string // file:line
	Code  string
	Line  string // the whole line the snippet is on
}

var span = regexp.MustCompile("`([^`\n]+)`")

// Snippets returns the code of README.md and docs/*.md; root is the
// repository root relative to the test's directory (e.g. "../..").
func Snippets(t testing.TB, root string) []Snippet {
	t.Helper()
	files, err := filepath.Glob(filepath.Join(root, "docs", "*.md"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no docs under %s: %v", root, err)
	}
	files = append(files, filepath.Join(root, "README.md"))
	var out []Snippet
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		name, _ := filepath.Rel(root, f)
		fenced := false
		for i, line := range strings.Split(string(b), "\n") {
			where := name + ":" + itoa(i+1)
			if strings.HasPrefix(strings.TrimSpace(line), "```") {
				fenced = !fenced
				continue
			}
			if fenced {
				out = append(out, Snippet{Where: where, Code: line, Line: line})
				continue
			}
			for _, m := range span.FindAllStringSubmatch(line, -1) {
				out = append(out, Snippet{Where: where, Code: m[1], Line: line})
			}
		}
	}
	return out
}

func itoa(n int) string {
	var b [20]byte
	i := len(b)
	for {
		i--
		b[i] = byte('0' + n%10)
		n /= 10
		if n == 0 {
			return string(b[i:])
		}
	}
}
