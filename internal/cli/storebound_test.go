package cli

import (
	"crypto/rand"
	"database/sql"
	"encoding/base64"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stellwerk/stellwerk/internal/testsrv"
)

// TestStoreVerbsBounded: with the tables they need locked (as an
// operator's psql held virtual_keys in the probe), the verbs that read or
// change the state store fail within storeTimeout, saying the store did
// not answer, instead of waiting as long as the lock is held.
func TestStoreVerbsBounded(t *testing.T) {
	dsn := testsrv.PostgresDSN(t)
	cfgPath := postgresConfig(t, dsn)
	// The tables are made by a first use of each store.
	for _, args := range [][]string{{"keys", "list"}, {"spend", "--since", "1d"}, {"routes", "list"}} {
		if _, stderr, err := run(append(args, "--config", cfgPath)...); err != nil {
			t.Fatalf("%v before the lock: %v %s", args, err, stderr)
		}
	}
	lock, err := sql.Open("pgx", dsn)
	if err != nil {
		t.Fatal(err)
	}
	tx, err := lock.Begin()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = tx.Rollback(); lock.Close() })
	for _, table := range []string{"virtual_keys", "spend_requests", "routes"} {
		if _, err := tx.Exec("LOCK TABLE " + table + " IN ACCESS EXCLUSIVE MODE"); err != nil {
			t.Fatal(err)
		}
	}

	defer func(d time.Duration) { storeTimeout = d }(storeTimeout)
	storeTimeout = 2 * time.Second
	verbsGiveUp(t, cfgPath, "with its table locked", [][]string{
		{"keys", "list"},
		{"keys", "create", "--workspace", "legal"},
		{"keys", "revoke", "k"},
		{"spend", "--since", "1d"},
		{"routes", "list"},
	})
}

// verbsGiveUp runs each verb on cfgPath's store and checks it gives up
// within storeTimeout (2 s) saying so, not after the test's 10 s.
func verbsGiveUp(t *testing.T, cfgPath, while string, verbs [][]string) {
	t.Helper()
	for _, args := range verbs {
		done := make(chan error, 1)
		go func() {
			_, _, err := run(append(args, "--config", cfgPath)...)
			done <- err
		}()
		select {
		case err := <-done:
			if err == nil || !strings.Contains(err.Error(), "the state store did not answer within 2s") {
				t.Errorf("%v %s: %v, want: the state store did not answer within 2s", args, while, err)
			}
		case <-time.After(10 * time.Second):
			t.Fatalf("%v %s: still waiting after 10 s", args, while)
		}
	}
}

// TestStoreVerbsBoundedPaused: with PostgreSQL stopped by SIGSTOP (it
// accepts connections and never answers) the verbs fail within
// storeTimeout; `keys create` waited 35 s and on (the probe). The DSN has
// no connect_timeout, as the probe's had none: that would bound connecting
// by itself.
func TestStoreVerbsBoundedPaused(t *testing.T) {
	pg := testsrv.StartPostgres(t)
	dsn := strings.Replace(pg.NewDatabase(t), "&connect_timeout=2", "", 1)
	cfgPath := postgresConfig(t, dsn)
	pg.Pause()
	t.Cleanup(pg.Resume)
	defer func(d time.Duration) { storeTimeout = d }(storeTimeout)
	storeTimeout = 2 * time.Second
	verbsGiveUp(t, cfgPath, "with PostgreSQL paused", [][]string{
		{"keys", "create", "--workspace", "legal"},
		{"keys", "list"},
		{"spend", "--since", "1d"},
		{"routes", "list"},
		{"audit", "verify"},
		{"audit", "export", "--from", "1d", "--to", "now"},
	})
}

// postgresConfig writes a config on the PostgreSQL database dsn names, its
// DSN and a hash key into a directory of the test's own, and returns the
// config's path.
func postgresConfig(t *testing.T, dsn string) string {
	t.Helper()
	dir := t.TempDir()
	hashKey := make([]byte, 32)
	_, _ = rand.Read(hashKey)
	for name, body := range map[string]string{
		"pg.dsn":   dsn,
		"hash.key": base64.StdEncoding.EncodeToString(hashKey),
		"stellwerk.yaml": `
routing: {default_model: m1}
providers:
  - {name: p1, base_url: "http://127.0.0.1:19601/v1", residency: eu}
models:
  - {id: m1, provider: p1, context_window: 1000}
workspaces:
  - {name: legal}
audit: {enabled: false}
state:
  postgres: {dsn_file: pg.dsn}
  hash_key: {file: hash.key}
`,
	} {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(body), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	return filepath.Join(dir, "stellwerk.yaml")
}
