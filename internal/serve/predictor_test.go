package serve

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"go.uber.org/zap"

	"github.com/stellwerk/stellwerk/internal/audit"
	"github.com/stellwerk/stellwerk/internal/catalog"
	"github.com/stellwerk/stellwerk/internal/config"
	"github.com/stellwerk/stellwerk/internal/store"
	"github.com/stellwerk/stellwerk/internal/testcert"
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

// TestPredictorVersionKept: a config with a quality predictor names the
// file in force by its content (the config names only its path), and the
// keeper stores the file as it was read under that name, so an auditor can
// see which predictor made a record's predictions; a retrained file is
// another version; without a predictor there is none.
func TestPredictorVersionKept(t *testing.T) {
	ctx := context.Background()
	db, err := store.OpenSQLite(ctx, filepath.Join(t.TempDir(), "state"))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	ast, err := audit.OpenStore(ctx, db)
	if err != nil {
		t.Fatal(err)
	}
	cfg, err := config.Load(filepath.Join("..", "..", "examples", "routerbench.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	env := catalog.Env{Getenv: func(string) string { return "" }, ReadFile: os.ReadFile}
	cat, err := catalog.New(cfg, env)
	if err != nil {
		t.Fatal(err)
	}
	shipped, err := os.ReadFile(filepath.Join("..", "..", "examples", "routers", "routerbench-hash-fit.json"))
	if err != nil {
		t.Fatal(err)
	}
	retrained := append(bytes.TrimRight(slices.Clone(shipped), "\n"), ' ', '\n')
	k := newKeeper(ast, zap.NewNop())
	var seen []string
	for _, file := range [][]byte{shipped, retrained} {
		vb, err := versionsOf(cfg, cat, file)
		if err != nil {
			t.Fatal(err)
		}
		if vb.Predictor != audit.ContentHash(file) {
			t.Fatalf("predictor version %q, want the file's content hash %q", vb.Predictor, audit.ContentHash(file))
		}
		k.keepConfig(ctx, vb)
		kind, body, err := ast.Version(ctx, vb.Predictor)
		if err != nil || kind != audit.VersionPredictor || !bytes.Equal(body, file) {
			t.Fatalf("kept predictor: kind %q, %d bytes (want %d), err %v", kind, len(body), len(file), err)
		}
		seen = append(seen, vb.Predictor)
	}
	if seen[0] == seen[1] {
		t.Error("a retrained file has the same version")
	}
	vb, err := versionsOf(cfg, cat, nil)
	if err != nil || vb.Predictor != "" {
		t.Errorf("without a predictor: version %q, err %v", vb.Predictor, err)
	}
}

// TestCheckLoadsGRPCTLS: config check loads the gRPC listener's
// certificate, key and client CA as serve does — a config naming files
// that do not exist passed check and failed serve (the docs probe) — and
// relative paths are the config file's, as every other path is.
func TestCheckLoadsGRPCTLS(t *testing.T) {
	env := catalog.Env{Getenv: func(string) string { return "" }, ReadFile: os.ReadFile}
	dir := t.TempDir()
	if err := os.Mkdir(filepath.Join(dir, "tls"), 0o700); err != nil {
		t.Fatal(err)
	}
	files, err := testcert.Write(filepath.Join(dir, "tls"))
	if err != nil {
		t.Fatal(err)
	}
	base, err := os.ReadFile(filepath.Join("..", "..", "examples", "stellwerk.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	for name, c := range map[string]struct {
		tls  string
		want string
	}{
		"relative, present": {"{cert: tls/" + filepath.Base(files.ServerCert) + ", key: tls/" + filepath.Base(files.ServerKey) + ", client_ca: tls/" + filepath.Base(files.CA) + "}", ""},
		"missing":           {"{cert: /nonexistent/server.crt, key: /nonexistent/server.key, client_ca: /nonexistent/ca.crt}", "server.grpc: grpc_tls: server certificate"},
	} {
		cfgText := strings.Replace(string(base), "grpc: unix:///run/stellwerk/grpc.sock", "grpc: 127.0.0.1:1\n  grpc_tls: "+c.tls, 1)
		path := filepath.Join(dir, "stellwerk.yaml")
		if err := os.WriteFile(path, []byte(cfgText), 0o600); err != nil {
			t.Fatal(err)
		}
		cfg, err := config.Load(path)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		_, errs := Check(context.Background(), cfg, env)
		var msgs []string
		for _, e := range errs {
			msgs = append(msgs, e.Error())
		}
		got := strings.Join(msgs, "; ")
		if c.want == "" && got != "" {
			t.Errorf("%s: %s", name, got)
		}
		if c.want != "" && !strings.Contains(got, c.want) {
			t.Errorf("%s: errors %q, want one with %q", name, got, c.want)
		}
	}
}

// TestCheckWarnsOfImplausiblePrices (the catalog probe): a price far above
// any model's, as a price per thousand tokens or a slip of three zeros
// makes, is warned about; the shipped catalog's are not.
func TestCheckWarnsOfImplausiblePrices(t *testing.T) {
	env := catalog.Env{Getenv: func(string) string { return "" }, ReadFile: os.ReadFile}
	cfg, err := config.Load(filepath.Join("..", "..", "examples", "production.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	warnings, _ := Check(context.Background(), cfg, env)
	for _, w := range warnings {
		if strings.Contains(w, "far above any listed") {
			t.Errorf("the shipped catalog: %s", w)
		}
	}
	cfg.Models[0].Price.InputPerMTok = 2500
	warnings, _ = Check(context.Background(), cfg, env)
	if !slices.ContainsFunc(warnings, func(w string) bool {
		return strings.Contains(w, "far above any listed") && strings.Contains(w, cfg.Models[0].ID)
	}) {
		t.Errorf("input_per_mtok 2500 not warned about: %v", warnings)
	}
}
