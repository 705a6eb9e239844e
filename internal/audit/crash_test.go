package audit

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stellwerk/stellwerk/internal/store"
)

const crashChildEnv = "STELLWERK_AUDIT_CRASH_CHILD"

// TestCrashLoss measures what a crash loses: a child process records
// about 2,000 requests a second into SQLite with the default 50ms batch
// interval and prints each record as Record returns; it is killed with
// SIGKILL. It logs how long before the kill the oldest lost record was
// handed over (the figure docs/audit.md reports); what it asserts is that
// the stored records are a prefix of those handed over and that the
// crashed writer's chain verifies (its last records unsigned).
func TestCrashLoss(t *testing.T) {
	if dir := os.Getenv(crashChildEnv); dir != "" {
		crashChild(dir)
		return
	}
	if testing.Short() {
		t.Skip("short")
	}
	dir := t.TempDir()
	cmd := exec.Command(os.Args[0], "-test.run=^TestCrashLoss$")
	cmd.Env = append(os.Environ(), crashChildEnv+"="+dir)
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	handed := map[int]int64{} // record → when Record returned (unix nanos)
	lines := bufio.NewScanner(out)
	deadline := time.Now().Add(1500 * time.Millisecond)
	last := -1
	for lines.Scan() {
		f := strings.Fields(lines.Text())
		if len(f) != 2 {
			continue
		}
		i, _ := strconv.Atoi(f[0])
		ns, _ := strconv.ParseInt(f[1], 10, 64)
		handed[i], last = ns, i
		if time.Now().After(deadline) {
			break
		}
	}
	_ = cmd.Process.Signal(syscall.SIGKILL)
	killed := time.Now().UnixNano()
	_ = cmd.Wait()

	db, err := store.OpenSQLite(context.Background(), dir)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	st := openStore(t, db)
	var stored int
	if err := db.SQL.QueryRow(`SELECT COUNT(*) FROM audit_entries`).Scan(&stored); err != nil {
		t.Fatal(err)
	}
	// Commits are in order: the first `stored` records are there.
	lost := last + 1 - stored
	oldestLost := time.Duration(0)
	if lost > 0 {
		oldestLost = time.Duration(killed - handed[stored])
	}
	t.Logf("handed over %d records, %d stored, %d lost; the oldest lost was handed over %s before the kill (batch interval 50ms)",
		last+1, stored, lost, oldestLost.Round(time.Millisecond))
	// How much a crash loses is a measurement (docs/audit.md), not an
	// assertion: a loaded machine stretches the commit in flight. What
	// must hold: records were committed, none appears that was never
	// handed over, and the crashed chain verifies.
	if stored == 0 || lost < 0 {
		t.Errorf("%d records stored of %d handed over", stored, last+1)
	}
	rep := mustVerify(t, st, []PublicKey{testSigner("a").Public()}, VerifyOptions{})
	wantOK(t, rep)
	if len(rep.Writers) != 1 || rep.Writers[0].Closed {
		t.Errorf("crashed writer: %+v", rep.Writers)
	}
}

func crashChild(dir string) {
	ctx := context.Background()
	db, err := store.OpenSQLite(ctx, dir)
	if err != nil {
		panic(err)
	}
	st, err := OpenStore(ctx, db)
	if err != nil {
		panic(err)
	}
	o := Options{Replica: "crash", SpoolDir: filepath.Join(dir, "spool"), Spool: true, CheckpointInterval: 200 * time.Millisecond}
	l, err := Open(ctx, st, testSigner("a"), o, nil)
	if err != nil {
		panic(err)
	}
	w := bufio.NewWriter(os.Stdout)
	for i := 0; ; i++ {
		l.Record(decision(i, "support"))
		fmt.Fprintf(w, "%d %d\n", i, time.Now().UnixNano())
		w.Flush()
		time.Sleep(500 * time.Microsecond)
	}
}
