package policy

import (
	"context"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"
)

// TestBundleRoundTrip: a kept bundle compiles to an engine of the same
// version that decides the same; a bundle whose sources were changed is
// refused.
func TestBundleRoundTrip(t *testing.T) {
	ctx := context.Background()
	e, err := Load(ctx, Source{Library: true})
	if err != nil {
		t.Fatal(err)
	}
	b, err := e.Bundle()
	if err != nil {
		t.Fatal(err)
	}
	e2, err := LoadBundle(ctx, b)
	if err != nil {
		t.Fatal(err)
	}
	if e2.Version != e.Version || strings.Join(e2.Modules, ",") != strings.Join(e.Modules, ",") {
		t.Fatalf("reloaded %s %v, want %s %v", e2.Version, e2.Modules, e.Version, e.Modules)
	}
	d1, err1 := e.Eval(ctx, SampleInput())
	d2, err2 := e2.Eval(ctx, SampleInput())
	if err1 != nil || err2 != nil || d1.Objective != d2.Objective || len(d1.Exclude) != len(d2.Exclude) {
		t.Fatalf("decisions differ: %+v %v / %+v %v", d1, err1, d2, err2)
	}
	tampered := strings.Replace(string(b), "balanced", "cheapest", 1)
	if _, err := LoadBundle(ctx, []byte(tampered)); err == nil || !strings.Contains(err.Error(), "not "+e.Version) {
		t.Fatalf("a changed bundle loaded: %v", err)
	}
}

// TestChangesFrom: a load's audit record names the modules and tests a
// version added, removed and changed (it named the new version alone:
// the probe), and ReadBundle gives `policy show` a kept version's sources.
func TestChangesFrom(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	write := func(name, src string) {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(src), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	write("a.rego", "package stellwerk\n\ndeny contains \"a\" if input.request.user == \"a\"\n")
	write("b.rego", "package stellwerk\n\ndeny contains \"b\" if input.request.user == \"b\"\n")
	e1, err := Load(ctx, Source{Library: true, Dir: dir})
	if err != nil {
		t.Fatal(err)
	}
	write("a.rego", "package stellwerk\n\ndeny contains \"A\" if input.request.user == \"a\"\n")
	if err := os.Remove(filepath.Join(dir, "b.rego")); err != nil {
		t.Fatal(err)
	}
	write("c_test.rego", "package stellwerk_test\n\ntest_c if true\n")
	e2, err := Load(ctx, Source{Library: true, Dir: dir})
	if err != nil {
		t.Fatal(err)
	}
	got := e2.ChangesFrom(e1)
	want := Changes{Added: []string{"dir/c_test.rego"}, Removed: []string{"dir/b.rego"}, Changed: []string{"dir/a.rego"}}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("changes %+v, want %+v", got, want)
	}
	if c := e2.ChangesFrom(e2); len(c.Added)+len(c.Removed)+len(c.Changed) != 0 {
		t.Errorf("a version changed from itself: %+v", c)
	}
	if c := e1.ChangesFrom(nil); !slices.Contains(c.Added, "dir/a.rego") || !slices.Contains(c.Added, "dir/b.rego") || len(c.Added) <= len(e1.Modules) {
		t.Errorf("from nothing: %d added (%v), want every module and test", len(c.Added), c.Added)
	}

	b, err := e2.Bundle()
	if err != nil {
		t.Fatal(err)
	}
	v, srcs, err := ReadBundle(b)
	if err != nil || v != e2.Version || !strings.Contains(srcs["dir/a.rego"], `"A"`) || srcs["dir/c_test.rego"] == "" {
		t.Fatalf("ReadBundle: %s %v (a.rego %q)", v, err, srcs["dir/a.rego"])
	}
	if _, _, err := ReadBundle([]byte(strings.Replace(string(b), `\"A\"`, `\"Z\"`, 1))); err == nil || !strings.Contains(err.Error(), "not "+e2.Version) {
		t.Errorf("a changed bundle read: %v", err)
	}
}
