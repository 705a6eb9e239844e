package serve

import (
	"testing"

	"github.com/stellwerk/stellwerk/internal/config"
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
