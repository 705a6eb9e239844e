package policy

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"go.uber.org/zap"
)

func TestManagerReload(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	write := func(name, src string) {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(src), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	write("a.rego", "package stellwerk\n\ndeny contains \"one\" if input.request.user == \"x\"\n")
	m, err := NewManager(ctx, Source{Library: true, Dir: dir}, zap.NewNop())
	if err != nil {
		t.Fatal(err)
	}
	v1 := m.Current().Version
	if changed, err := m.Reload(ctx); changed || err != nil {
		t.Fatalf("unchanged files reloaded: %v %v", changed, err)
	}

	write("b.rego", "package stellwerk\n\ndeny contains msg if { msg := }\n")
	if changed, err := m.Reload(ctx); changed || err == nil || m.Current().Version != v1 || !strings.Contains(m.Status().LastError, "b.rego") {
		t.Fatalf("broken module: changed=%v err=%v status=%+v", changed, err, m.Status())
	}
	os.Remove(filepath.Join(dir, "b.rego"))
	write("a_test.rego", "package stellwerk_test\n\ntest_wrong if { count(data.stellwerk.decision.deny) == 99 with input as {} }\n")
	if changed, err := m.Reload(ctx); changed || err == nil || !strings.Contains(err.Error(), "test_wrong") || m.Current().Version != v1 {
		t.Fatalf("failing test: changed=%v err=%v", changed, err)
	}
	os.Remove(filepath.Join(dir, "a_test.rego"))
	write("a.rego", "package stellwerk\n\ndeny contains \"two\" if input.request.user == \"x\"\n")
	changed, err := m.Reload(ctx)
	if !changed || err != nil || m.Current().Version == v1 || m.Status().LastError != "" {
		t.Fatalf("fixed: changed=%v err=%v status=%+v", changed, err, m.Status())
	}
}
