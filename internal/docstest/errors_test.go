package docstest

import (
	"go/ast"
	"go/parser"
	"go/token"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"testing"
)

// TestEveryErrorCodeDocumented: every error code the code gives a caller
// (the apierr constructors' code argument, an apierr.Error's Code) is in a
// table of docs/api.md (the client API) or docs/security.md (the admin
// API). A code is the one thing a program can branch on: one that is in no
// table is one no caller can write code for, and the error_code label of
// the metrics names it (docs/observability.md).
func TestEveryErrorCodeDocumented(t *testing.T) {
	root := filepath.Join("..", "..")
	codes := errorCodes(t, root)
	if len(codes) < 40 {
		t.Fatalf("found only %d error codes in the code; is the search still finding the constructors?", len(codes))
	}
	var docs strings.Builder
	for _, f := range []string{"docs/api.md", "docs/security.md"} {
		b, err := os.ReadFile(filepath.Join(root, f))
		if err != nil {
			t.Fatal(err)
		}
		docs.Write(b)
	}
	var missing []string
	for code, where := range codes {
		if !strings.Contains(docs.String(), "| `"+code+"`") && !strings.Contains(docs.String(), ", `"+code+"`") {
			missing = append(missing, code+" ("+where+")")
		}
	}
	sort.Strings(missing)
	for _, m := range missing {
		t.Errorf("error code %s is in no error table of docs/api.md or docs/security.md", m)
	}
}

// constructors are the apierr functions whose first argument is the code.
var constructors = map[string]bool{
	"Invalid": true, "NotFound": true, "Conflict": true, "Upstream": true,
	"Denied": true, "Unavailable": true, "Exhausted": true,
}

// errorCodes finds the literal codes in the module's non-test Go files,
// with where the first of each is. The fakes' (mock providers, the bench's
// provider) speak the providers' codes, not stellwerk's, and are skipped.
func errorCodes(t *testing.T, root string) map[string]string {
	codes := map[string]string{}
	fset := token.NewFileSet()
	add := func(e ast.Expr) {
		lit, ok := e.(*ast.BasicLit)
		if !ok || lit.Kind != token.STRING {
			return
		}
		s, err := strconv.Unquote(lit.Value)
		if err != nil || s == "" {
			return
		}
		if _, seen := codes[s]; !seen {
			p := fset.Position(lit.Pos())
			rel, _ := filepath.Rel(root, p.Filename)
			codes[s] = rel + ":" + strconv.Itoa(p.Line)
		}
	}
	err := filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() {
			switch d.Name() {
			case "testdata", "node_modules", ".tools", ".git", "mockllm", "bench", "e2e":
				return filepath.SkipDir
			}
			return nil
		}
		if !strings.HasSuffix(path, ".go") || strings.HasSuffix(path, "_test.go") {
			return nil
		}
		f, err := parser.ParseFile(fset, path, nil, 0)
		if err != nil {
			return err
		}
		inAPIErr := f.Name.Name == "apierr"
		ast.Inspect(f, func(n ast.Node) bool {
			switch n := n.(type) {
			case *ast.CallExpr:
				if sel, ok := n.Fun.(*ast.SelectorExpr); ok && len(n.Args) > 0 {
					if x, ok := sel.X.(*ast.Ident); ok && x.Name == "apierr" && constructors[sel.Sel.Name] {
						add(n.Args[0])
					}
				}
			case *ast.CompositeLit:
				if isAPIError(n.Type, inAPIErr) {
					for _, el := range n.Elts {
						if kv, ok := el.(*ast.KeyValueExpr); ok {
							if k, ok := kv.Key.(*ast.Ident); ok && k.Name == "Code" {
								add(kv.Value)
							}
						}
					}
				}
			case *ast.AssignStmt:
				for i, l := range n.Lhs {
					if sel, ok := l.(*ast.SelectorExpr); ok && sel.Sel.Name == "Code" && i < len(n.Rhs) {
						add(n.Rhs[i])
					}
				}
			}
			return true
		})
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return codes
}

func isAPIError(e ast.Expr, inAPIErr bool) bool {
	switch e := e.(type) {
	case *ast.SelectorExpr:
		x, ok := e.X.(*ast.Ident)
		return ok && x.Name == "apierr" && e.Sel.Name == "Error"
	case *ast.Ident:
		return inAPIErr && e.Name == "Error"
	}
	return false
}
