package serve

import (
	"context"
	"strings"
	"testing"

	"github.com/redis/go-redis/v9"
	"go.uber.org/zap"
	"go.uber.org/zap/zaptest/observer"

	"github.com/stellwerk/stellwerk/internal/config"
	"github.com/stellwerk/stellwerk/internal/ledger"
	"github.com/stellwerk/stellwerk/internal/testsrv"
)

// TestFleetFingerprint: what differs per replica by design leaves the
// fingerprint alone; what decides a request changes it.
func TestFleetFingerprint(t *testing.T) {
	base := func() *config.Config {
		return &config.Config{
			Workspaces: []config.Workspace{{Name: "default"}},
			Budgets:    config.Budgets{Limits: []config.BudgetRule{{Name: "b", Scope: "workspace", Subject: "default", AmountEUR: 5, Period: "day"}}},
		}
	}
	want := fleetFingerprint(base(), "sha256:cat", "pol1")
	same := base()
	same.Server.Admin, same.State.Dir, same.Audit.Writer, same.Envoy.Listener = "127.0.0.1:9999", "/other/state", "replica-b", "0.0.0.0:10001"
	if got := fleetFingerprint(same, "sha256:cat", "pol1"); got != want {
		t.Errorf("per-replica settings changed the fingerprint: %s, want %s", got, want)
	}
	budget := base()
	budget.Budgets.Limits[0].AmountEUR = 50
	for name, got := range map[string]string{
		"budget":  fleetFingerprint(budget, "sha256:cat", "pol1"),
		"catalog": fleetFingerprint(base(), "sha256:other", "pol1"),
		"policy":  fleetFingerprint(base(), "sha256:cat", "pol2"),
	} {
		if got == want {
			t.Errorf("another %s left the fingerprint as it was", name)
		}
	}
}

// TestFleetDriftNamesTheBuild: replicas of two builds with one config
// differ (a build's library and catalog defaults are in the fingerprint),
// and the status and the log say it is the build, not "deploy one config"
// (the upgrade probe); a replica of an older build, which shares its
// fingerprint alone, reads as one.
func TestFleetDriftNamesTheBuild(t *testing.T) {
	srv := testsrv.Redis(t)
	client := redis.NewClient(&redis.Options{Addr: srv.Addr})
	t.Cleanup(func() { client.Close() })
	led := ledger.New(ledger.NewRedis(client, "{fleet}:"), nil, ledger.Options{})
	ctx := context.Background()
	// Another replica, of another build, same config; one of an older
	// build, with another config.
	if _, err := led.ShareFingerprint(ctx, "b/1", "fp-1@v2.0.0", fleetFresh); err != nil {
		t.Fatal(err)
	}
	if _, err := led.ShareFingerprint(ctx, "c/1", "fp-2", fleetFresh); err != nil {
		t.Fatal(err)
	}
	core, logs := observer.New(zap.InfoLevel)
	w := &fleetWatch{replica: "a/1", fp: func() string { return "fp-9" }}
	w.check(ctx, led, zap.New(core))
	st := w.Status()
	if st.Replicas != 3 || len(st.Differ) != 2 || !strings.Contains(strings.Join(st.Differ, " "), "build v2.0.0") ||
		!strings.Contains(strings.Join(st.Differ, " "), "build older") {
		t.Errorf("status %+v", st)
	}
	if logs.FilterMessageSnippet("run other builds").Len() != 1 || logs.FilterMessageSnippet("deploy one config to every replica").Len() != 0 {
		t.Errorf("log %v", logs.All())
	}
}
