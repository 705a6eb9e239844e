package serve

import (
	"context"
	"os"
	"path/filepath"
	"reflect"
	"testing"

	"github.com/stellwerk/stellwerk/internal/audit"
	"github.com/stellwerk/stellwerk/internal/policy"
)

// TestPolicyLoadSaysWhatChanged: a reload's audit record names the
// version it replaced and the modules it added, removed and changed (it
// named the new version alone: the probe's {"action":"load","after":…}).
func TestPolicyLoadSaysWhatChanged(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	write := func(name, src string) {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(src), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	write("residency.rego", "package stellwerk\n\ndeny contains \"eu only\" if input.request.user == \"x\"\n")
	write("old.rego", "package stellwerk\n\ndeny contains \"old\" if input.request.user == \"y\"\n")
	e1, err := policy.Load(ctx, policy.Source{Library: true, Dir: dir})
	if err != nil {
		t.Fatal(err)
	}
	if got, want := policyLoad(nil, e1), (audit.Change{Actor: policyActor, Action: "load", After: e1.Version}); !reflect.DeepEqual(got, want) {
		t.Errorf("at start: %+v, want %+v", got, want)
	}
	write("residency.rego", "package stellwerk\n\ndeny contains \"eu only!\" if input.request.user == \"x\"\n")
	write("new.rego", "package stellwerk\n\ndeny contains \"new\" if input.request.user == \"z\"\n")
	if err := os.Remove(filepath.Join(dir, "old.rego")); err != nil {
		t.Fatal(err)
	}
	e2, err := policy.Load(ctx, policy.Source{Library: true, Dir: dir})
	if err != nil {
		t.Fatal(err)
	}
	want := audit.Change{Actor: policyActor, Action: "load", Before: e1.Version, After: e2.Version,
		Detail: map[string]string{"added": "dir/new.rego", "removed": "dir/old.rego", "changed": "dir/residency.rego"}}
	if got := policyLoad(e1, e2); !reflect.DeepEqual(got, want) {
		t.Errorf("reload: %+v, want %+v", got, want)
	}
}
