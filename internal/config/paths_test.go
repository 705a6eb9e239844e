package config

import (
	"os"
	"path/filepath"
	"testing"
)

// TestPathsResolveAgainstTheConfigFile (issue 18): policy.dir and credential
// files are relative to the config file, like catalog and evals, not to
// the directory stellwerk was started in.
func TestPathsResolveAgainstTheConfigFile(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "stellwerk.yaml")
	if err := os.WriteFile(path, []byte(`
routing: {default_model: m, quality_predictor: routers/r.json}
providers:
  - {name: p, base_url: "https://p.example.com/v1", residency: eu, credential: {file: secrets/p.key}}
models:
  - {id: m, provider: p, context_window: 8000}
policy: {dir: ./policies}
server: {grpc_stream_token: {file: secrets/stream-token}}
envoy: {mode: clusters}
`), 0o600); err != nil {
		t.Fatal(err)
	}
	c, err := Load(path)
	if err != nil {
		t.Fatal(err)
	}
	if c.Policy.Dir != filepath.Join(dir, "policies") || c.Providers[0].Credential.File != filepath.Join(dir, "secrets", "p.key") {
		t.Errorf("policy.dir %q, credential file %q", c.Policy.Dir, c.Providers[0].Credential.File)
	}
	if c.Server.GRPCStreamToken.File != filepath.Join(dir, "secrets", "stream-token") {
		t.Errorf("server.grpc_stream_token.file %q", c.Server.GRPCStreamToken.File)
	}
	if c.Routing.QualityPredictor != filepath.Join(dir, "routers", "r.json") {
		t.Errorf("routing.quality_predictor %q", c.Routing.QualityPredictor)
	}
}
