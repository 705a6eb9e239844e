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

// TestEditDuringStartIsLoaded (a helper's finding): an edit of the config
// file that lands after stellwerk read it and before it noted what it had
// read was taken for the file it loaded, and never applied (a ConfigMap
// swapped during a rollout). The first check loads it.
func TestEditDuringStartIsLoaded(t *testing.T) {
	dir, err := os.MkdirTemp("", "sw-start-") // short: it holds the socket
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	path := filepath.Join(dir, "stellwerk.yaml")
	cfg := func(model string) []byte {
		return []byte(`routing: {default_model: ` + model + `}
providers: [{name: p, base_url: "http://127.0.0.1:1/v1", residency: eu}]
models:
  - {id: one, provider: p, context_window: 8000}
  - {id: two, provider: p, context_window: 8000}
`)
	}
	if err := os.WriteFile(path, cfg("one"), 0o600); err != nil {
		t.Fatal(err)
	}
	afterLoad = func() {
		if err := os.WriteFile(path, cfg("two"), 0o600); err != nil {
			t.Error(err)
		}
	}
	t.Cleanup(func() { afterLoad = func() {} })
	core, logs := observer.New(zap.InfoLevel)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		done <- Run(ctx, Options{ConfigPath: path, GRPC: "unix://" + filepath.Join(dir, "g.sock"), Admin: "127.0.0.1:0",
			Listen: "127.0.0.1:0", StateDir: dir, Ready: func(net.Addr, net.Addr) {}}, zap.New(core))
	}()
	defer func() { cancel(); <-done }()
	deadline := time.Now().Add(3 * configReloadInterval)
	for time.Now().Before(deadline) {
		if logs.FilterMessage("config reloaded").Len() > 0 {
			return // nothing but the edit changed the file
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatalf("the edit made while starting was never loaded; log: %v", logs.All())
}
