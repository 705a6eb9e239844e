package header

import (
	"go/ast"
	"go/parser"
	"go/token"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"github.com/stellwerk/stellwerk/internal/docstest"
)

// TestDocumentedHeadersExist (issue 18): every x-stellwerk-* header the
// README and docs name is one this package defines; the constants are read
// from this package's source, not from a list kept by hand.
func TestDocumentedHeadersExist(t *testing.T) {
	f, err := parser.ParseFile(token.NewFileSet(), "header.go", nil, 0)
	if err != nil {
		t.Fatal(err)
	}
	defined := map[string]bool{}
	ast.Inspect(f, func(n ast.Node) bool {
		if lit, ok := n.(*ast.BasicLit); ok && lit.Kind == token.STRING {
			if s, err := strconv.Unquote(lit.Value); err == nil && strings.HasPrefix(s, Prefix) {
				defined[s] = true
			}
		}
		return true
	})
	if !defined[DecisionID] || !defined[Model] {
		t.Fatalf("header.go's constants were not found: %v", defined)
	}
	name := regexp.MustCompile(`x-stellwerk-[a-z0-9-]*[a-z0-9]`)
	checked := 0
	for _, s := range docstest.Snippets(t, "../..") {
		for _, h := range name.FindAllString(strings.ToLower(s.Code), -1) {
			checked++
			if !defined[h] {
				t.Errorf("%s: the docs name header %s, which stellwerk does not define", s.Where, h)
			}
		}
	}
	if checked < 10 {
		t.Errorf("only %d header mentions found in the docs: is the parser still reading them?", checked)
	}
}
