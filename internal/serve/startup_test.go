package serve

import (
	"context"
	"net"
	"os"
	"path/filepath"
	"testing"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zaptest/observer"
)

// TestEditDuringStartIsLoaded (a helper's finding): an edit that lands
// after stellwerk read its files and before it noted what it had read was
// taken for what it loaded, and never applied (a ConfigMap swapped during
// a rollout): the config file, or a file it names (the verification
// helper's catalog). The first check loads it; a start without an edit
// reloads nothing.
func TestEditDuringStartIsLoaded(t *testing.T) {
	config := func(model string) []byte {
		return []byte("routing: {default_model: " + model + "}\ncatalog: cat.yaml\n")
	}
	catalog := func(upstream string) []byte {
		return []byte(`providers: [{name: p, base_url: "http://127.0.0.1:1/v1", residency: eu}]
models:
  - {id: one, provider: p, provider_model: ` + upstream + `, context_window: 8000}
  - {id: two, provider: p, context_window: 8000}
`)
	}
	for name, tc := range map[string]struct {
		edit     func(dir string) error
		reloaded bool
	}{
		"the config file": {edit: func(dir string) error {
			return os.WriteFile(filepath.Join(dir, "stellwerk.yaml"), config("two"), 0o600)
		}, reloaded: true},
		"a file it names": {edit: func(dir string) error { return os.WriteFile(filepath.Join(dir, "cat.yaml"), catalog("v2"), 0o600) }, reloaded: true},
		"nothing":         {edit: func(string) error { return nil }},
	} {
		t.Run(name, func(t *testing.T) {
			dir, err := os.MkdirTemp("", "sw-start-") // short: it holds the socket
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { os.RemoveAll(dir) })
			if err := os.WriteFile(filepath.Join(dir, "stellwerk.yaml"), config("one"), 0o600); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(filepath.Join(dir, "cat.yaml"), catalog("v1"), 0o600); err != nil {
				t.Fatal(err)
			}
			afterLoad = func() {
				if err := tc.edit(dir); err != nil {
					t.Error(err)
				}
			}
			t.Cleanup(func() { afterLoad = func() {} })
			core, logs := observer.New(zap.InfoLevel)
			ctx, cancel := context.WithCancel(context.Background())
			done := make(chan error, 1)
			go func() {
				done <- Run(ctx, Options{ConfigPath: filepath.Join(dir, "stellwerk.yaml"), GRPC: "unix://" + filepath.Join(dir, "g.sock"),
					Admin: "127.0.0.1:0", Listen: "127.0.0.1:0", StateDir: dir, Ready: func(net.Addr, net.Addr) {}}, zap.New(core))
			}()
			defer func() { cancel(); <-done }()
			deadline := time.Now().Add(5 * configReloadInterval / 2)
			for time.Now().Before(deadline) && logs.FilterMessage("config reloaded").Len() == 0 {
				time.Sleep(50 * time.Millisecond)
			}
			if got := logs.FilterMessage("config reloaded").Len() > 0; got != tc.reloaded {
				t.Fatalf("reloaded %v, want %v; log: %v", got, tc.reloaded, logs.All())
			}
		})
	}
}
