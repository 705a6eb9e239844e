package flowstore

import (
	"context"
	"path/filepath"
	"strings"
	"testing"

	"go.uber.org/zap"
	"go.uber.org/zap/zaptest/observer"

	"github.com/stellwerk/stellwerk/internal/flow"
	"github.com/stellwerk/stellwerk/internal/store"
)

// A version stored before conditions were checked for values that never
// occur keeps serving after the upgrade: the table loads it and logs the
// comparison once, naming the route, the version and the place.
func TestStoredVersionWithNeverValueServes(t *testing.T) {
	ctx := context.Background()
	db, err := store.OpenSQLite(ctx, filepath.Join(t.TempDir(), "state"))
	if err != nil {
		t.Fatal(err)
	}
	s := openOn(t, db)
	src := []byte("route: support\nnodes:\n  - id: c\n    if: classification.task == \"summarize\"\n    then: small\n    else: big\n" +
		"  - {id: small, model: gpt-4o-mini}\n  - {id: big, model: gpt-4o}\n")
	if _, err := flow.LoadNew("new", src, env); err == nil {
		t.Fatal("a new version with the comparison loads")
	}
	v, _, err := s.Create(ctx, mustFlow(t, src), "x", "", "api")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.Deploy(ctx, "support", v.Version, "x"); err != nil {
		t.Fatal(err)
	}
	core, logs := observer.New(zap.WarnLevel)
	tb := NewTable(s, env, zap.New(core))
	if err := tb.Refresh(ctx); err != nil {
		t.Fatal(err)
	}
	if f, err := tb.Resolve("support", 0); err != nil || f.Version != v.Version {
		t.Fatalf("the live version does not serve: %v", err)
	}
	// A new config recompiles it: no second warning.
	tb.SetEnv(env)
	if err := tb.Refresh(ctx); err != nil {
		t.Fatal(err)
	}
	l := logs.All()
	if len(l) != 1 {
		t.Fatalf("logged %+v, want one warning", l)
	}
	fields := l[0].ContextMap()
	if fields["route"] != "support" || fields["version"] != v.Version || fields["line"] != int64(4) || fields["column"] != int64(32) ||
		!strings.Contains(fields["problem"].(string), `never "summarize"`) || !strings.Contains(fields["problem"].(string), "summarization") {
		t.Errorf("the warning %s %v", l[0].Message, fields)
	}
	if b := tb.Broken(); len(b) > 0 {
		t.Errorf("broken %v", b)
	}
}
