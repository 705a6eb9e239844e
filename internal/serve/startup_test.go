package serve

import (
	"context"
	"database/sql"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zaptest/observer"

	"github.com/stellwerk/stellwerk/internal/spend"
	"github.com/stellwerk/stellwerk/internal/store"
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
			// The first check comes an interval after the start, however
			// long the start took (a loaded machine took over 5 s).
			for start := time.Now(); logs.FilterMessage("stellwerk serving").Len() == 0; time.Sleep(20 * time.Millisecond) {
				if time.Since(start) > time.Minute {
					t.Fatalf("not serving after a minute: %v", logs.All())
				}
			}
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

// TestFailedStartSaysItMigrated: a start that migrates the state's schema
// and then fails (its gRPC socket held by another process) says it
// migrated — an older stellwerk refuses the database from then on, and
// the warning came only once both listeners were up (the operator probe).
func TestFailedStartSaysItMigrated(t *testing.T) {
	dir := oneModelDir(t)
	// The state as an older stellwerk left it: the spend ledger at its
	// first schema version.
	db, err := store.OpenSQLite(context.Background(), dir)
	if err != nil {
		t.Fatal(err)
	}
	if err := db.Migrate(context.Background(), spend.Component, spend.Migrations[:1]); err != nil {
		t.Fatal(err)
	}
	db.Close()
	// A socket another process listens on.
	sock := filepath.Join(dir, "g.sock")
	ln, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	core, logs := observer.New(zap.InfoLevel)
	err = Run(context.Background(), Options{ConfigPath: filepath.Join(dir, "stellwerk.yaml"), GRPC: "unix://" + sock,
		Admin: "127.0.0.1:0", Listen: "127.0.0.1:0", StateDir: dir}, zap.New(core))
	if err == nil {
		t.Fatal("the start did not fail")
	}
	if logs.FilterMessageSnippet("state schema migrated").Len() != 1 {
		t.Errorf("start failed with %v, and the migration was not said: %v", err, logs.All())
	}
}

// TestLossAtShutdownFailsTheRun (the container probe): records a close on
// the way out could not write — the database taken by another process
// here, a full disk there — were logged and the process exited 0: a
// service manager showed a clean stop. The run fails now, naming what was
// lost.
func TestLossAtShutdownFailsTheRun(t *testing.T) {
	dir := oneModelDir(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	ready, done := make(chan struct{}), make(chan error, 1)
	go func() {
		done <- Run(ctx, Options{ConfigPath: filepath.Join(dir, "stellwerk.yaml"), GRPC: "unix://" + filepath.Join(dir, "g.sock"),
			Admin: "127.0.0.1:0", Listen: "127.0.0.1:0", StateDir: dir, Ready: func(net.Addr, net.Addr) { close(ready) }}, zap.NewNop())
	}()
	select {
	case <-ready:
	case err := <-done:
		t.Fatalf("the start failed: %v", err)
	}
	// Another process holds the database's write lock: the audit log's
	// shutdown checkpoint cannot be written.
	db, err := sql.Open("sqlite", "file:"+filepath.Join(dir, "stellwerk.db")+"?_pragma=busy_timeout(1000)")
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	conn, err := db.Conn(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := conn.ExecContext(context.Background(), "BEGIN EXCLUSIVE"); err != nil {
		t.Fatal(err)
	}
	cancel()
	err = <-done
	_, _ = conn.ExecContext(context.Background(), "ROLLBACK")
	conn.Close()
	if err == nil || !strings.Contains(err.Error(), "closing the audit log on shutdown") {
		t.Errorf("the run ended with %v; want the audit log's loss", err)
	}
}

// oneModelDir is a state directory with a stellwerk.yaml of one model; its
// path is short, for the gRPC socket it will hold.
func oneModelDir(t *testing.T) string {
	t.Helper()
	dir, err := os.MkdirTemp("", "sw-run-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	cfg := []byte("routing: {default_model: one}\nproviders: [{name: p, base_url: \"http://127.0.0.1:1/v1\", residency: eu}]\n" +
		"models: [{id: one, provider: p, context_window: 8000}]\n")
	if err := os.WriteFile(filepath.Join(dir, "stellwerk.yaml"), cfg, 0o600); err != nil {
		t.Fatal(err)
	}
	return dir
}
