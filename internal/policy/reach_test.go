package policy

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"
)

// TestUnreachableModules (issue 18): a module outside package stellwerk
// that nothing under it refers to loads with no effect; the load says so,
// and does not say so of a helper package the stellwerk modules import.
func TestUnreachableModules(t *testing.T) {
	dir := t.TempDir()
	for name, src := range map[string]string{
		"acme.rego":     "package acme\n\ndeny contains \"no\" if input.request.user == \"x\"\n",
		"lonely.rego":   "package stellwerk.lonely\n\ndeny contains \"no\" if input.request.user == \"x\"\n",
		"helper.rego":   "package stellwerk.helpers\n\nbad_user if input.request.user == \"mallory\"\n",
		"deep.rego":     "package corp.lists\n\nusers := {\"eve\"}\n",
		"uses.rego":     "package stellwerk\n\nimport data.stellwerk.helpers\n\ndeny contains \"bad user\" if helpers.bad_user\n",
		"indirect.rego": "package stellwerk.helpers\n\nlisted if input.request.user in data.corp.lists.users\n",
	} {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(src), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	core, logs := observer.New(zapcore.WarnLevel)
	m, err := NewManager(context.Background(), Source{Library: true, Dir: dir}, zap.New(core))
	if err != nil {
		t.Fatal(err)
	}
	got := strings.Join(m.Current().Warnings, "\n")
	for _, want := range []string{"dir/acme.rego (package acme) cannot contribute to data.stellwerk.decision",
		"dir/lonely.rego (package stellwerk.lonely) cannot contribute"} {
		if !strings.Contains(got, want) {
			t.Errorf("warnings lack %q:\n%s", want, got)
		}
	}
	for _, reached := range []string{"helper.rego", "indirect.rego", "deep.rego", "uses.rego", "library/"} {
		if strings.Contains(got, reached) {
			t.Errorf("%s contributes, yet is warned about:\n%s", reached, got)
		}
	}
	if n := logs.FilterMessage("policy module has no effect").Len(); n != 2 {
		t.Errorf("%d warnings logged at load, want 2", n)
	}
	w, err := Unreachable(Source{Library: true, Dir: dir})
	if err != nil || strings.Join(w, "\n") != got {
		t.Errorf("Unreachable disagrees with the load: %v\n%s", err, w)
	}
	if w, _ := Unreachable(Source{Library: true}); len(w) != 0 {
		t.Errorf("the shipped library alone: %v", w)
	}
}

// TestUnreadRules: a rule of a platform module in package stellwerk that
// no rule reads and that is no extension point loads with no effect (a
// helper's typos, denny and log_level, passed policy test and config
// check in silence); the warning suggests the extension point it is near.
// Helpers the module reads, and the extension points, are not warned
// about. Emptying policy.dir is logged as a warning.
func TestUnreadRules(t *testing.T) {
	dir := t.TempDir()
	write := func(name, src string) {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(src), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	write("team.rego", "package stellwerk\n\ndenny contains \"no\" if input.request.user == \"x\"\n\n"+
		"log_levels contains \"warn\" if _vip\n\n_vip if input.request.user == \"boss\"\n\ntagz[\"team\"] := \"cx\"\n")
	core, logs := observer.New(zapcore.WarnLevel)
	m, err := NewManager(context.Background(), Source{Library: true, Dir: dir}, zap.New(core))
	if err != nil {
		t.Fatal(err)
	}
	got := strings.Join(m.Current().Warnings, "\n")
	for _, want := range []string{"dir/team.rego:3: rule denny is read by no rule", "it has no effect; did you mean deny?",
		"dir/team.rego:9: rule tagz is read by no rule", "did you mean tags?"} {
		if !strings.Contains(got, want) {
			t.Errorf("warnings lack %q:\n%s", want, got)
		}
	}
	if strings.Contains(got, "rule _vip") || strings.Contains(got, "rule log_levels") || strings.Contains(got, "library/") {
		t.Errorf("warned about what is read:\n%s", got)
	}
	// policy.dir emptied: it loads, with a warning.
	if err := os.Remove(filepath.Join(dir, "team.rego")); err != nil {
		t.Fatal(err)
	}
	if ok, err := m.Reload(context.Background()); !ok || err != nil {
		t.Fatalf("reload: %v %v", ok, err)
	}
	if logs.FilterMessage("policy reloaded without any of policy.dir's modules: only the shipped library decides now").Len() != 1 {
		t.Errorf("no warning when policy.dir was emptied: %v", logs.All())
	}
}

// TestDataFileWarnedAtOnce: a data.json put beside an unchanged policy
// (its version hashes the .rego files only) is warned about at the next
// reload check, not at the next .rego change (a helper's finding).
func TestDataFileWarnedAtOnce(t *testing.T) {
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "team.rego"), []byte("package stellwerk\n\ndeny contains \"no\" if input.request.user == \"x\"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	core, logs := observer.New(zapcore.WarnLevel)
	m, err := NewManager(context.Background(), Source{Library: true, Dir: dir}, zap.New(core))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "data.json"), []byte(`{"blocked":["mallory"]}`), 0o600); err != nil {
		t.Fatal(err)
	}
	for range 2 { // said once
		if changed, err := m.Reload(context.Background()); changed || err != nil {
			t.Fatalf("reload: %v %v", changed, err)
		}
	}
	if n := logs.FilterMessage("policy module has no effect").FilterField(zap.String("warning",
		"dir/data.json: data files are not read (stellwerk loads *.rego only); write the data as a rule, e.g. blocked_users := {\"mallory\"} in a module")).Len(); n != 1 {
		t.Errorf("data file warnings: %d, logs %v", n, logs.All())
	}
}
