package bench

import (
	"context"
	"maps"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/stellwerk/stellwerk/internal/config"
)

func TestParseTenants(t *testing.T) {
	for in, want := range map[string]Tenants{"": {}, "1": {}, "200x20": {200, 20}, "3X2": {3, 2}} {
		if got, err := ParseTenants(in); err != nil || got != want {
			t.Errorf("ParseTenants(%q) = %v, %v; want %v", in, got, err, want)
		}
	}
	for _, in := range []string{"200", "0x20", "20x0", "ax2", "1000x1000", "-1x3"} {
		if _, err := ParseTenants(in); err == nil {
			t.Errorf("ParseTenants(%q): no error", in)
		}
	}
}

// TestTenantsConfigLoads: the production shape with tenants is a config
// stellwerk accepts, with every tenant workspace and its budget, and every
// key spec names a workspace (and team) the config has.
func TestTenantsConfigLoads(t *testing.T) {
	root, err := FindRoot(".")
	if err != nil {
		t.Fatal(err)
	}
	ten := Tenants{Workspaces: 6, KeysPer: 2}
	dir := t.TempDir()
	path, _, _, err := writeShape(StackOptions{Root: root, Dir: dir, Shape: ShapeProduction, Ledger: LedgerMemory, Tenants: ten},
		"  grpc: unix://"+filepath.Join(dir, "g.sock"), 2, 3, 4, "")
	if err != nil {
		t.Fatal(err)
	}
	cfg, err := config.Load(path)
	if err != nil {
		b, _ := os.ReadFile(filepath.Join(dir, "stellwerk.yaml"))
		t.Fatalf("%v\n%s", err, b)
	}
	names := map[string]bool{}
	for _, w := range cfg.Workspaces {
		names[w.Name] = true
	}
	for i := range ten.Workspaces {
		if !names[tenantName(i)] {
			t.Errorf("workspace %s missing", tenantName(i))
		}
	}
	found := false
	for _, b := range cfg.Budgets.Limits {
		found = found || b.Name == "each-workspace-monthly" && b.Scope == "workspace" && b.Subject == ""
	}
	if !found {
		t.Error("no budget of each workspace")
	}
}

// TestAttackSpreadsKeys: with Keys, requests take them in turn as their
// bearer token, across calls of attack.
func TestAttackSpreadsKeys(t *testing.T) {
	var mu sync.Mutex
	got := map[string]int{}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		got[r.Header.Get("Authorization")]++
		mu.Unlock()
		w.Write([]byte(`{}`))
	}))
	defer srv.Close()
	tg := newTarget("t", srv.URL, map[string]string{"Authorization": "Bearer one"}, 5*time.Second)
	tg.Keys = []string{"a", "b", "c"}
	defer tg.close()
	rq := request{path: "/", bodies: [][]byte{[]byte(`{}`)}}
	for range 2 {
		attack(context.Background(), tg, 50, 100*time.Millisecond, rq, func(result) {})
	}
	if want := map[string]int{"Bearer a": 4, "Bearer b": 3, "Bearer c": 3}; !maps.Equal(got, want) {
		t.Errorf("keys sent %v, want %v", got, want)
	}
}
