package cli

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stellwerk/stellwerk/internal/feedback"
	"github.com/stellwerk/stellwerk/internal/store"
)

// TestFeedbackExport: the votes come back with their decision's route, version, arm and
// served model, filtered by route and age, without prompts, a comment that starts like a
// formula kept as text; a bad --since or --format is a usage error. Before it the votes
// were readable only with sqlite3 on the state file (the experimentation probe).
func TestFeedbackExport(t *testing.T) {
	dir := t.TempDir()
	catalogPath, err := filepath.Abs(filepath.Join("..", "..", "examples", "catalog.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	cfgPath := filepath.Join(dir, "stellwerk.yaml")
	if err := os.WriteFile(cfgPath, []byte("catalog: "+catalogPath+"\nrouting: {default_model: gpt-4-1106-preview}\nstate: {dir: state}\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	db, err := store.OpenSQLite(ctx, filepath.Join(dir, "state"))
	if err != nil {
		t.Fatal(err)
	}
	fs, err := feedback.Open(ctx, db)
	if err != nil {
		t.Fatal(err)
	}
	one := 1.0
	for _, e := range []feedback.Entry{
		{DecisionID: "a", Model: "mock-eu-large", Good: true, By: "key:k1", Route: "support", Version: 2, Arm: "canary", Metric: "resolved", Value: &one,
			Prompt: "the prompt", Comment: "=HYPERLINK(\"x\")"},
		{DecisionID: "b", Model: "gpt-4o-mini", Good: false, By: "key:k1", Route: "sales", Version: 1},
		{DecisionID: "old", Model: "gpt-4o-mini", Good: false, By: "key:k1", Route: "support", At: time.Now().Add(-48 * time.Hour)},
	} {
		if _, err := fs.Record(ctx, e); err != nil {
			t.Fatal(err)
		}
	}
	db.Close()
	stdout, _, err := run("feedback", "export", "--config", cfgPath, "--since", "1d", "--route", "support", "--format", "csv")
	want := "at,decision_id,workspace,route,route_version,arm,model,by,good,metric,value,comment\n"
	if err != nil || !strings.HasPrefix(stdout, want) || strings.Count(stdout, "\n") != 2 ||
		!strings.Contains(stdout, ",a,,support,2,canary,mock-eu-large,key:k1,true,resolved,1,\"'=HYPERLINK(\"\"x\"\")\"\n") || strings.Contains(stdout, "the prompt") {
		t.Errorf("export csv: %v\n%s", err, stdout)
	}
	stdout, _, err = run("feedback", "export", "--config", cfgPath)
	if err != nil || strings.Count(stdout, "\n") != 3 || !strings.Contains(stdout, `"arm":"canary"`) || strings.Contains(stdout, "the prompt") {
		t.Errorf("export jsonl: %v\n%s", err, stdout)
	}
	for _, args := range [][]string{{"--since", "yesterday"}, {"--format", "xml"}, {"--since", "-1h"}} {
		if _, _, err := run(append([]string{"feedback", "export", "--config", cfgPath}, args...)...); !errors.Is(err, ErrUsage) {
			t.Errorf("%v: %v, want a usage error", args, err)
		}
	}
}
