package main

import (
	"bufio"
	"os"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// TestCommittedNoticesCurrent fails when THIRD_PARTY_NOTICES names other
// modules or versions than the binary links now (a go.mod change without
// make notices). It compares the module list only: go list is cheap, reading
// seventy licences is not needed to notice a bump.
func TestCommittedNoticesCurrent(t *testing.T) {
	mods, err := linkedModules(mainPkg)
	if err != nil {
		t.Fatal(err)
	}
	var want []string
	for _, m := range mods {
		want = append(want, m.Path+" "+m.Version)
	}
	got := committedModules(t, "../../THIRD_PARTY_NOTICES")
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("THIRD_PARTY_NOTICES is out of date with go.mod; run make notices (-linked +committed):\n%s", diff)
	}
}

// committedModules reads the "Module: path version" line that follows each
// section rule.
func committedModules(t *testing.T, path string) []string {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatalf("%v (make notices writes it)", err)
	}
	defer f.Close()
	var mods []string
	afterRule := false
	sc := bufio.NewScanner(f)
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if afterRule {
			if m, ok := strings.CutPrefix(line, modulePrefix); ok {
				mods = append(mods, m)
			}
		}
		afterRule = strings.Trim(line, "=") == "" && line != ""
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	return mods
}

// TestNoticeFiles keeps the file-name rule honest: NOTICE and third-party
// licence files are picked up, source files that merely start alike are not,
// and a module without a licence is an error.
func TestNoticeFiles(t *testing.T) {
	dir := t.TempDir()
	for _, name := range []string{"LICENSE", "NOTICE.txt", "LICENSE-3RD-PARTY.md", "PATENTS", "License.txt", "licenses.go", "noticeboard.go", "README.md"} {
		if err := os.WriteFile(dir+"/"+name, []byte("x"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	got, err := noticeFiles(dir)
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"LICENSE", "LICENSE-3RD-PARTY.md", "License.txt", "NOTICE.txt", "PATENTS"}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("noticeFiles (-want +got):\n%s", diff)
	}

	bare := t.TempDir()
	if err := os.WriteFile(bare+"/NOTICE", []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := noticeFiles(bare); err == nil {
		t.Error("a module with a NOTICE and no licence passed")
	}
}
