//go:build unix

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

	"github.com/stellwerk/stellwerk/internal/audit"
)

// TestStartWarnsOfExposedState is the supply-chain probe's repro: after
// chmod 0777 on state.dir and 0644 on the audit signing key, serve started
// without a word. It warns now, naming each path, its mode and the chmod
// that closes it; a state as stellwerk made it gets no warning.
func TestStartWarnsOfExposedState(t *testing.T) {
	dir := oneModelDir(t)
	if err := os.Chmod(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	const warning = "group or others can reach this path"
	start := func() *observer.ObservedLogs {
		t.Helper()
		core, logs := observer.New(zap.WarnLevel)
		ctx, cancel := context.WithCancel(context.Background())
		ready, done := make(chan struct{}), make(chan error, 1)
		go func() {
			done <- Run(ctx, Options{ConfigPath: filepath.Join(dir, "stellwerk.yaml"), GRPC: "unix://" + filepath.Join(dir, "g.sock"),
				Admin: "127.0.0.1:0", Listen: "127.0.0.1:0", StateDir: dir, Ready: func(net.Addr, net.Addr) { close(ready) }}, zap.New(core))
		}()
		select {
		case <-ready:
		case err := <-done:
			t.Fatalf("the start failed: %v", err)
		case <-time.After(time.Minute):
			t.Fatal("not serving after a minute")
		}
		cancel()
		if err := <-done; err != nil {
			t.Fatal(err)
		}
		return logs
	}

	// The first start generates the keys and the database, 0600 in 0700.
	if logs := start(); logs.FilterMessageSnippet(warning).Len() != 0 {
		t.Fatalf("a state as stellwerk made it was warned of: %v", logs.All())
	}

	key := filepath.Join(dir, audit.KeyFile)
	if err := os.Chmod(dir, 0o777); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.Chmod(dir, 0o700) })
	if err := os.Chmod(key, 0o644); err != nil {
		t.Fatal(err)
	}
	got := map[string]string{}
	for _, e := range start().FilterMessageSnippet(warning).All() {
		f := e.ContextMap()
		got[f["path"].(string)] = f["mode"].(string) + " " + f["run"].(string)
	}
	want := map[string]string{
		dir: "0777 chmod 700 " + dir,
		key: "0644 chmod 600 " + key,
	}
	if len(got) != len(want) || got[dir] != want[dir] || got[key] != want[key] {
		t.Errorf("warnings %v, want %v", got, want)
	}
}
