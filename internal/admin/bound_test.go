package admin

import (
	"bufio"
	"context"
	"database/sql"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/zap"

	"github.com/stellwerk/stellwerk/internal/audit"
	"github.com/stellwerk/stellwerk/internal/config"
	"github.com/stellwerk/stellwerk/internal/store"
	"github.com/stellwerk/stellwerk/internal/testsrv"
)

// lockTables holds ACCESS EXCLUSIVE locks on tables from a connection of
// its own until the test ends, as an operator's psql did in the probe.
func lockTables(t *testing.T, dsn string, tables ...string) {
	t.Helper()
	db, err := sql.Open("pgx", dsn)
	if err != nil {
		t.Fatal(err)
	}
	tx, err := db.Begin()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = tx.Rollback(); db.Close() })
	for _, table := range tables {
		if _, err := tx.Exec("LOCK TABLE " + table + " IN ACCESS EXCLUSIVE MODE"); err != nil {
			t.Fatal(err)
		}
	}
}

// keyAuditStatus serves the key and audit endpoints.
type keyAuditStatus struct {
	*keyStatus
	st *audit.Store
}

func (a *keyAuditStatus) AuditStore() *audit.Store  { return a.st }
func (a *keyAuditStatus) AuditKey() audit.PublicKey { return audit.PublicKey{} }

// within runs do, failing the test if it has not returned after d (the
// request hung on the database).
func within(t *testing.T, d time.Duration, what string, do func() *httptest.ResponseRecorder) *httptest.ResponseRecorder {
	t.Helper()
	done := make(chan *httptest.ResponseRecorder, 1)
	go func() { done <- do() }()
	select {
	case rec := <-done:
		return rec
	case <-time.After(d):
		t.Errorf("%s: no answer after %v: it waits for the database without a bound", what, d)
		return nil
	}
}

// TestAdminStoreCallsBounded: with a table locked, the endpoints that read
// or change it answer 503 with their *_store_unavailable code within their
// bound (storeTimeout, searchTimeout) instead of waiting for the lock: GET
// and POST /admin/keys and GET /admin/audit waited 69 s (the probe).
func TestAdminStoreCallsBounded(t *testing.T) {
	ctx := context.Background()
	dsn := testsrv.PostgresDSN(t)
	db, err := store.OpenPostgres(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	ks := openKeys(t, db)
	ast, err := audit.OpenStore(ctx, db)
	if err != nil {
		t.Fatal(err)
	}
	// Bounds shorter than the shipped 5 s and 10 s, which every request
	// here waits out.
	defer func(store, search time.Duration) { storeTimeout, searchTimeout = store, search }(storeTimeout, searchTimeout)
	storeTimeout, searchTimeout = 2*time.Second, 3*time.Second
	h := Handler(&keyAuditStatus{keyStatus: &keyStatus{fakeStatus: fakeStatus{tokens: testTokens()}, ks: ks, cfg: keyTestConfig()}, st: ast},
		zap.NewNop())
	if rec := do(t, h, "POST", "/admin/keys", config.RoleAdmin, `{"id":"k","workspace":"legal"}`); rec.Code != 201 {
		t.Fatalf("create: %d %s", rec.Code, rec.Body)
	}
	lockTables(t, dsn, "virtual_keys", "audit_entries")

	var wg sync.WaitGroup
	for _, c := range []struct{ method, path, body, code string }{
		{"GET", "/admin/keys", "", "key_store_unavailable"},
		{"GET", "/admin/keys/k", "", "key_store_unavailable"},
		{"POST", "/admin/keys", `{"workspace":"legal"}`, "key_store_unavailable"},
		{"POST", "/admin/keys/k/revoke", "", "key_store_unavailable"},
		{"GET", "/admin/audit", "", "audit_store_unavailable"},
	} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			rec := within(t, searchTimeout+5*time.Second, c.method+" "+c.path, func() *httptest.ResponseRecorder {
				return do(t, h, c.method, c.path, config.RoleAdmin, c.body)
			})
			if rec == nil {
				return
			}
			if status, code, _ := openAIError(t, rec); status != 503 || code != c.code || rec.Header().Get("Retry-After") != "1" {
				t.Errorf("%s %s with its table locked: %d %s, want 503 %s with Retry-After: 1", c.method, c.path, status, rec.Body, c.code)
			}
		}()
	}
	wg.Wait()
}

// TestAdminCannotStarveWriters: admin requests waiting on a locked table
// hold at most storeSlots of the pool's connections; a writer of another
// table still gets one. In the probe 20 waiting GET /admin/keys?limit=1
// took all 16, and the audit and spend writers and the key and route
// polls failed for 30 s.
func TestAdminCannotStarveWriters(t *testing.T) {
	ctx := context.Background()
	dsn := testsrv.PostgresDSN(t)
	db, err := store.OpenPostgres(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	if _, err := db.SQL.ExecContext(ctx, "CREATE TABLE other (n int)"); err != nil {
		t.Fatal(err)
	}
	ks := openKeys(t, db)
	h := Handler(&keyStatus{fakeStatus: fakeStatus{tokens: testTokens()}, ks: ks, cfg: keyTestConfig()}, zap.NewNop())
	lockTables(t, dsn, "virtual_keys")

	const waiting = 20
	answers := make(chan *httptest.ResponseRecorder, waiting)
	for range waiting {
		go func() { answers <- do(t, h, "GET", "/admin/keys?limit=1", config.RoleViewer, "") }()
	}
	// Let the admin requests take what connections they can.
	deadline := time.Now().Add(3 * time.Second)
	for db.SQL.Stats().InUse < storeSlots && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	time.Sleep(300 * time.Millisecond)

	// A writer of another table, with the audit writer's patience.
	wctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	werr := db.Tx(wctx, func(tx *sql.Tx) error {
		_, err := tx.ExecContext(wctx, "INSERT INTO other VALUES (1)")
		return err
	})
	if werr != nil {
		t.Errorf("a writer of another table, while %d admin requests wait on a locked one (%d connections in use): %v",
			waiting, db.SQL.Stats().InUse, werr)
	}
	timeout := time.After(storeTimeout + 5*time.Second)
	for range waiting {
		select {
		case rec := <-answers:
			if status, code, _ := openAIError(t, rec); status != 503 || code != "key_store_unavailable" {
				t.Errorf("GET /admin/keys with its table locked: %d %s", status, rec.Body)
			}
		case <-timeout:
			t.Fatalf("GET /admin/keys with its table locked: no answer after %v", storeTimeout+5*time.Second)
		}
	}
}

// stalledProviders is a server whose key store does not answer: a change
// of a provider's cluster waits for it until its context ends, and fails
// as the server's does (the store's error inside ErrInvalidCluster).
type stalledProviders struct{ providerStatus }

func (p *stalledProviders) SetProviderCluster(ctx context.Context, _ string, _ config.ClusterSettings, _ string) (ProviderCluster, error) {
	<-ctx.Done()
	return ProviderCluster{}, fmt.Errorf("%w: workspace provider keys: %w", ErrInvalidCluster, store.Classify(ctx.Err()))
}

// TestProviderChangeBounded: PUT /admin/providers/{name} reads the
// provider keys; with the key store not answering it answers 503
// key_store_unavailable within its bound. It waited as long as the store
// did, holding the reload lock, and then answered 400 invalid_cluster.
func TestProviderChangeBounded(t *testing.T) {
	defer func(d time.Duration) { providerChangeTimeout = d }(providerChangeTimeout)
	providerChangeTimeout = time.Second
	h := Handler(&stalledProviders{providerStatus{fakeStatus: fakeStatus{tokens: testTokens()}}}, zap.NewNop())
	rec := within(t, 10*time.Second, "PUT /admin/providers/vllm", func() *httptest.ResponseRecorder {
		return do(t, h, "PUT", "/admin/providers/vllm", config.RoleAdmin, `{"connect_timeout":"2s"}`)
	})
	if rec == nil {
		return
	}
	if status, code, _ := openAIError(t, rec); status != 503 || code != "key_store_unavailable" || rec.Header().Get("Retry-After") != "1" {
		t.Errorf("PUT /admin/providers/vllm with the key store stalled: %d %s", status, rec.Body)
	}
}

// TestAdminStoreCallsBoundedPaused: with PostgreSQL stopped by SIGSTOP
// (connections open, nothing answers) the key endpoints answer 503
// key_store_unavailable within storeTimeout, and give their connections
// back: a second round is answered as well.
func TestAdminStoreCallsBoundedPaused(t *testing.T) {
	pg := testsrv.StartPostgres(t)
	db, err := store.OpenPostgres(context.Background(), pg.NewDatabase(t))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	ks := openKeys(t, db)
	h := Handler(&keyStatus{fakeStatus: fakeStatus{tokens: testTokens()}, ks: ks, cfg: keyTestConfig()}, zap.NewNop())
	if rec := do(t, h, "POST", "/admin/keys", config.RoleAdmin, `{"id":"k","workspace":"legal"}`); rec.Code != 201 {
		t.Fatalf("create: %d %s", rec.Code, rec.Body)
	}
	pg.Pause()
	t.Cleanup(pg.Resume)
	for round := range 2 {
		for _, c := range [][3]string{{"GET", "/admin/keys", ""}, {"POST", "/admin/keys", `{"workspace":"legal"}`}} {
			rec := within(t, storeTimeout+5*time.Second, c[0]+" "+c[1], func() *httptest.ResponseRecorder {
				return do(t, h, c[0], c[1], config.RoleAdmin, c[2])
			})
			if rec == nil {
				return
			}
			if status, code, _ := openAIError(t, rec); status != 503 || code != "key_store_unavailable" {
				t.Errorf("round %d: %s %s with PostgreSQL paused: %d %s", round, c[0], c[1], status, rec.Body)
			}
		}
	}
}

// TestSlowBodiesHoldNoSlot (the red-team probe): callers that send their
// bodies a byte at a time do not hold the store's slots while they do;
// the other admins' requests are answered. Four such POSTs (an operator's
// to /admin/routes in the probe) held every slot, and the admins got 503
// as long as they went on.
func TestSlowBodiesHoldNoSlot(t *testing.T) {
	db, err := store.OpenSQLite(context.Background(), t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	ks := openKeys(t, db)
	srv := httptest.NewServer(Handler(&keyStatus{fakeStatus: fakeStatus{tokens: testTokens()}, ks: ks, cfg: keyTestConfig()}, zap.NewNop()))
	t.Cleanup(srv.Close)
	defer func(d time.Duration) { storeTimeout = d }(storeTimeout)
	storeTimeout = time.Second
	addr := strings.TrimPrefix(srv.URL, "http://")
	stop := make(chan struct{})
	var conns []net.Conn
	for range storeSlots + 2 {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		conns = append(conns, c)
		fmt.Fprintf(c, "POST /admin/keys HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer %s\r\nContent-Type: application/json\r\nContent-Length: 60000\r\n\r\n{",
			roleTokens[config.RoleAdmin])
	}
	var wg sync.WaitGroup
	wg.Add(1)
	go func() { // a byte every 200 ms on each
		defer wg.Done()
		for {
			select {
			case <-stop:
				return
			case <-time.After(200 * time.Millisecond):
				for _, c := range conns {
					_, _ = c.Write([]byte(" "))
				}
			}
		}
	}()
	defer func() {
		close(stop)
		wg.Wait()
		for _, c := range conns {
			c.Close()
		}
	}()
	time.Sleep(3 * storeTimeout / 2) // past the bound: the trickling bodies are cut off
	for _, path := range []string{"/admin/keys?limit=1", "/admin/keys"} {
		req, _ := http.NewRequest("GET", srv.URL+path, nil)
		req.Header.Set("Authorization", "Bearer "+roleTokens[config.RoleAdmin])
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 {
			t.Errorf("GET %s while bodies trickle in: %d %s", path, resp.StatusCode, b)
		}
	}
	// The server has given up on a trickling body once its bound is past:
	// it answers 400 or closes the connection.
	_ = conns[0].SetReadDeadline(time.Now().Add(5 * time.Second))
	line, err := bufio.NewReader(conns[0]).ReadString('\n')
	if !strings.Contains(line, " 400 ") && err != io.EOF {
		t.Errorf("a body that did not arrive within the bound: %q %v, want 400 or the connection closed", line, err)
	}
}
