package archtest

import (
	"go/ast"
	"go/parser"
	"go/token"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
)

// edges are the packages under internal/ that speak to the outside: HTTP
// servers and clients, the CLI, the fake providers, the bench, Envoy's
// codecs. Everything else under internal/ is the decision core.
var edges = []string{
	"admin", "apierr", "archtest", "bench", "cli", "console", "docstest", "harness",
	"mockllm", "notify", "protocodec", "serve", "telemetry", "testcert", "testsrv",
}

// forbidden are the imports the core must not have: Envoy's types, gRPC and
// net/http (whose status constants would let it choose a status).
func forbidden(path string) bool {
	return path == "net/http" || strings.HasPrefix(path, "github.com/envoyproxy/") ||
		path == "google.golang.org/grpc" || strings.HasPrefix(path, "google.golang.org/grpc/")
}

// edgeOnly are the apierr functions that turn a kind into an HTTP status.
var edgeOnly = []string{"HTTPStatus", "ServerSide"}

func TestCoreChoosesNoStatusAndKnowsNoEnvoy(t *testing.T) {
	root := filepath.Join("..")
	fset := token.NewFileSet()
	seen := map[string]bool{}
	err := filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(root, path)
		top := strings.Split(filepath.ToSlash(rel), "/")[0]
		if d.IsDir() {
			if slices.Contains(edges, top) || d.Name() == "testdata" {
				return filepath.SkipDir
			}
			return nil
		}
		if !strings.HasSuffix(path, ".go") || strings.HasSuffix(path, "_test.go") {
			return nil
		}
		f, err := parser.ParseFile(fset, path, nil, parser.SkipObjectResolution)
		if err != nil {
			return err
		}
		seen[filepath.ToSlash(filepath.Dir(rel))] = true
		apierrName := ""
		for _, im := range f.Imports {
			p, _ := strconv.Unquote(im.Path.Value)
			if forbidden(p) {
				t.Errorf("%s imports %s: the core is free of Envoy, gRPC and HTTP (ARCHITECTURE.md)", rel, p)
			}
			if strings.HasSuffix(p, "/internal/apierr") {
				apierrName = "apierr"
				if im.Name != nil {
					apierrName = im.Name.Name
				}
			}
		}
		if apierrName == "" {
			return nil
		}
		ast.Inspect(f, func(n ast.Node) bool {
			sel, ok := n.(*ast.SelectorExpr)
			if !ok {
				return true
			}
			if x, ok := sel.X.(*ast.Ident); ok && x.Name == apierrName && slices.Contains(edgeOnly, sel.Sel.Name) {
				t.Errorf("%s: %s calls apierr.%s: HTTP statuses are chosen at the edge (STYLE.md); return a kind", fset.Position(sel.Pos()), rel, sel.Sel.Name)
			}
			return true
		})
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	// The walk must have reached the core, or it proves nothing.
	for _, want := range []string{"decision", "decide", "classify", "policy", "request", "translate", "flow", "audit", "ledger"} {
		if !seen[want] {
			t.Errorf("the walk did not reach internal/%s (saw %d packages)", want, len(seen))
		}
	}
	if _, err := os.Stat(filepath.Join(root, "apierr", "apierr.go")); err != nil {
		t.Fatalf("not run from internal/archtest: %v", err)
	}
}
