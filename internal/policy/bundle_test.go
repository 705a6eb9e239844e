package policy

import (
	"context"
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
