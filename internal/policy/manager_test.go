package policy

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zaptest/observer"
)

// writer writes policy files into a new directory.
func writer(t *testing.T) (dir string, write func(name, src string)) {
	dir = t.TempDir()
	return dir, func(name, src string) {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(src), 0o600); err != nil {
			t.Fatal(err)
		}
	}
}

// startManager loads a policy dir of one module, a.rego, and returns the
// manager and a writer for the dir.
func startManager(t *testing.T) (m *Manager, dir string, write func(name, src string)) {
	dir, write = writer(t)
	write("a.rego", "package stellwerk\n\ndeny contains \"one\" if input.request.user == \"x\"\n")
	m, err := NewManager(context.Background(), Source{Library: true, Dir: dir}, zap.NewNop())
	if err != nil {
		t.Fatal(err)
	}
	return m, dir, write
}

func TestManagerReload(t *testing.T) {
	ctx := context.Background()
	m, dir, write := startManager(t)
	v1 := m.Current().Version
	if changed, err := m.Reload(ctx); changed || err != nil {
		t.Fatalf("unchanged files reloaded: %v %v", changed, err)
	}

	write("b.rego", "package stellwerk\n\ndeny contains msg if { msg := }\n")
	if changed, err := m.Reload(ctx); changed || err == nil || m.Current().Version != v1 || !strings.Contains(m.Status().LastError, "b.rego") {
		t.Fatalf("broken module: changed=%v err=%v status=%+v", changed, err, m.Status())
	}
	os.Remove(filepath.Join(dir, "b.rego"))
	write("a_test.rego", "package stellwerk_test\n\ntest_wrong if { count(data.stellwerk.decision.deny) == 99 with input as {} }\n")
	if changed, err := m.Reload(ctx); changed || err == nil || !strings.Contains(err.Error(), "test_wrong (dir/a_test.rego:3)") || m.Current().Version != v1 {
		t.Fatalf("failing test: changed=%v err=%v", changed, err)
	}
	os.Remove(filepath.Join(dir, "a_test.rego"))
	write("a.rego", "package stellwerk\n\ndeny contains \"two\" if input.request.user == \"x\"\n")
	changed, err := m.Reload(ctx)
	if !changed || err != nil || m.Current().Version == v1 || m.Status().LastError != "" {
		t.Fatalf("fixed: changed=%v err=%v status=%+v", changed, err, m.Status())
	}
}

// A policy dir reached through symbolic links (git-sync's current -> rev)
// is read in full: the root's link and a linked directory inside it; a
// link back up is read once, not in a loop.
func TestDirThroughLinks(t *testing.T) {
	base := t.TempDir()
	rev := filepath.Join(base, "rev1")
	shared := filepath.Join(base, "shared")
	for _, d := range []string{rev, shared} {
		if err := os.Mkdir(d, 0o700); err != nil {
			t.Fatal(err)
		}
	}
	write := func(path, src string) {
		if err := os.WriteFile(path, []byte(src), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	write(filepath.Join(rev, "block.rego"), "package stellwerk\n\ndeny contains \"mallory\" if input.request.user == \"mallory\"\n")
	write(filepath.Join(shared, "eve.rego"), "package stellwerk\n\ndeny contains \"eve\" if input.request.user == \"eve\"\n")
	for link, target := range map[string]string{
		filepath.Join(base, "current"): rev,
		filepath.Join(rev, "shared"):   shared,
		filepath.Join(shared, "up"):    rev,
	} {
		if err := os.Symlink(target, link); err != nil {
			t.Fatal(err)
		}
	}
	f, err := Source{Dir: filepath.Join(base, "current")}.collect()
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for n := range f.modules {
		names = append(names, n)
	}
	slices.Sort(names)
	if want := []string{"dir/block.rego", "dir/shared/eve.rego"}; !slices.Equal(names, want) {
		t.Fatalf("modules %v, want %v", names, want)
	}
}

// TestRunawayPolicyRefused (a helper's finding): a rule that runs away on
// the sample input had hung the reload for good, /policy with it (the
// status waited on the reload's lock), and a later fix of the file was
// never read. The sample's decision is bounded; the status answers while
// a reload checks; the fix loads; a reload cut short by stopping records
// no refusal.
func TestRunawayPolicyRefused(t *testing.T) {
	defer func(d time.Duration) { sampleTimeout = d }(sampleTimeout)
	sampleTimeout = 300 * time.Millisecond
	ctx := context.Background()
	m, dir, write := startManager(t)
	var refusals int
	m.OnChange(func(e *Engine, refused error) {
		if refused != nil {
			refusals++
		}
	})
	v1 := m.Current().Version
	write("slow.rego", "package stellwerk\n\ndeny contains \"never\" if {\n\tsome i in numbers.range(1, 100000)\n\tsome j in numbers.range(1, 100000)\n\ti * j == -1\n}\n")
	done := make(chan error, 1)
	go func() { _, err := m.Reload(ctx); done <- err }()
	status := make(chan Status, 1)
	go func() { time.Sleep(50 * time.Millisecond); status <- m.Status() }()
	select {
	case <-status:
	case <-time.After(5 * time.Second):
		t.Fatal("the status waited on the reload")
	}
	select {
	case err := <-done:
		if err == nil || !strings.Contains(err.Error(), "took longer than 300ms") || m.Current().Version != v1 || refusals != 1 {
			t.Fatalf("runaway policy: %v (refusals %d)", err, refusals)
		}
	case <-time.After(60 * time.Second):
		t.Fatal("the reload never ended")
	}
	os.Remove(filepath.Join(dir, "slow.rego"))
	write("a.rego", "package stellwerk\n\ndeny contains \"two\" if input.request.user == \"x\"\n")
	if changed, err := m.Reload(ctx); !changed || err != nil {
		t.Fatalf("the fix: %v %v", changed, err)
	}
	// Stopping mid-check is no verdict on the policy.
	write("slow.rego", "package stellwerk\n\ndeny contains \"never\" if {\n\tsome i in numbers.range(1, 100000)\n\tsome j in numbers.range(1, 100000)\n\ti * j == -2\n}\n")
	cctx, cancel := context.WithTimeout(ctx, 50*time.Millisecond)
	defer cancel()
	if _, err := m.Reload(cctx); err == nil || refusals != 1 || m.Status().LastError != "" {
		t.Errorf("a reload cut short: %v, %d refusals, status %+v", err, refusals, m.Status())
	}
}

// TestUnreadableDirIsLogged: a policy dir that vanishes (an unmounted
// ConfigMap) is logged once, not every reload, the last good policy kept;
// back with the same files, /policy's error clears (the policy-author
// probe: only /policy said so).
func TestUnreadableDirIsLogged(t *testing.T) {
	ctx := context.Background()
	dir, write := writer(t)
	write("a.rego", "package stellwerk\n\ndeny contains \"one\" if input.request.user == \"x\"\n")
	core, logs := observer.New(zap.InfoLevel)
	m, err := NewManager(ctx, Source{Library: true, Dir: dir}, zap.New(core))
	if err != nil {
		t.Fatal(err)
	}
	v1 := m.Current().Version
	if err := os.Rename(dir, dir+".bak"); err != nil {
		t.Fatal(err)
	}
	for range 3 {
		if _, err := m.Reload(ctx); err == nil {
			t.Fatal("a missing dir read")
		}
	}
	if n := logs.FilterMessage("policy files cannot be read; keeping the last good policy").Len(); n != 1 || m.Current().Version != v1 || m.Status().LastError == "" {
		t.Fatalf("%d log lines, version %s, status %+v", n, m.Current().Version, m.Status())
	}
	if err := os.Rename(dir+".bak", dir); err != nil {
		t.Fatal(err)
	}
	if changed, err := m.Reload(ctx); changed || err != nil || m.Status().LastError != "" || logs.FilterMessage("policy files readable again").Len() != 1 {
		t.Fatalf("back: changed=%v err=%v status=%+v", changed, err, m.Status())
	}
}

// TestEmptiedDir: a policy.dir emptied (an empty ConfigMap mount) loads
// with the library alone, and UserModules (the gauge
// stellwerk_policy_user_modules) says so; with RequireDir it is refused,
// at a reload (the last good policy keeps serving), at start-up and by
// config check (Check).
func TestEmptiedDir(t *testing.T) {
	ctx := context.Background()
	for _, require := range []bool{false, true} {
		dir, write := writer(t)
		write("a.rego", "package stellwerk\n\ndeny contains \"one\" if input.request.user == \"x\"\n")
		write("b.rego", "package stellwerk\n\ndeny contains \"two\" if input.request.user == \"y\"\n")
		src := Source{Library: true, Dir: dir, RequireDir: require}
		m, err := NewManager(ctx, src, zap.NewNop())
		if err != nil {
			t.Fatal(err)
		}
		if n := m.UserModules(); n != 2 {
			t.Errorf("require=%v: %d user modules, want 2", require, n)
		}
		v1 := m.Current().Version
		for _, name := range []string{"a.rego", "b.rego"} {
			if err := os.Remove(filepath.Join(dir, name)); err != nil {
				t.Fatal(err)
			}
		}
		write("a_test.rego", "package stellwerk_test\n\ntest_t if true\n") // a test is no module
		changed, err := m.Reload(ctx)
		if !require {
			if !changed || err != nil || m.UserModules() != 0 {
				t.Errorf("emptied dir: changed=%v err=%v user modules %d, want loaded with 0", changed, err, m.UserModules())
			}
			continue
		}
		if changed || !errors.Is(err, ErrNoDirModules) || m.Current().Version != v1 || m.UserModules() != 2 ||
			!strings.Contains(m.Status().LastError, "require_dir_modules") {
			t.Errorf("emptied dir with RequireDir: changed=%v err=%v status %+v", changed, err, m.Status())
		}
		if _, err := NewManager(ctx, src, zap.NewNop()); !errors.Is(err, ErrNoDirModules) {
			t.Errorf("start-up with an empty dir and RequireDir: %v", err)
		}
		if _, errs := Check(ctx, src); len(errs) != 1 || !errors.Is(errs[0], ErrNoDirModules) {
			t.Errorf("Check: %v", errs)
		}
	}
}
