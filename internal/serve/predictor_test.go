package serve

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stellwerk/stellwerk/internal/catalog"
	"github.com/stellwerk/stellwerk/internal/config"
)

// TestCheckLoadsQualityPredictor: config check (and so start and reload) refuses a quality
// predictor file it cannot use, and accepts the shipped one.
func TestCheckLoadsQualityPredictor(t *testing.T) {
	env := catalog.Env{Getenv: func(string) string { return "" }, ReadFile: os.ReadFile}
	bad := filepath.Join(t.TempDir(), "router.json")
	if err := os.WriteFile(bad, []byte(`{"kind":"stellwerk-quality-predictor","version":9}`), 0o644); err != nil {
		t.Fatal(err)
	}
	for name, c := range map[string]struct {
		path string
		want string
	}{
		"shipped":       {filepath.Join("..", "..", "examples", "routers", "routerbench-hash-fit.json"), ""},
		"newer version": {bad, "reads version 1"},
		"missing":       {filepath.Join(t.TempDir(), "none.json"), "routing.quality_predictor"},
	} {
		cfg, err := config.Load(filepath.Join("..", "..", "examples", "routerbench.yaml"))
		if err != nil {
			t.Fatal(err)
		}
		cfg.Routing.QualityPredictor = c.path
		_, errs := Check(context.Background(), cfg, env)
		var msgs []string
		for _, e := range errs {
			msgs = append(msgs, e.Error())
		}
		got := strings.Join(msgs, "; ")
		if c.want == "" && strings.Contains(got, "quality_predictor") {
			t.Errorf("%s: %s", name, got)
		}
		if c.want != "" && !strings.Contains(got, c.want) {
			t.Errorf("%s: errors %q, want one mentioning %q", name, got, c.want)
		}
	}
}
