package injection

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"sort"
	"strings"
	"testing"
	"unicode/utf8"
)

// TestReferenceManualIsNotAnAttack: a reference manual pasted into a
// request, 2 KB at a time, is not taken for an attack. The Go
// specification is not in the training data (testdata/benign.jsonl is
// Python's reference and two licences); before the model was trained on
// documents and length-matched composites, 44 of its 149 pieces scored
// above the threshold (docs/classify/injection.md, "Benign documents").
func TestReferenceManualIsNotAnAttack(t *testing.T) {
	//lint:ignore SA1019 a test runs from the toolchain that built it, whose sources are the corpus
	spec := filepath.Join(runtime.GOROOT(), "doc", "go_spec.html")
	b, err := os.ReadFile(spec)
	if err != nil {
		t.Skipf("the Go specification is not installed here: %v", err)
	}
	r := EvaluateDocuments([]string{"go_spec.html"}, []string{string(b)}, 2000)
	if r.All.Chunks < 100 || r.All.FPR > 0.02 {
		t.Errorf("%d of %d pieces of the Go specification flagged (FPR %.3f); want at most 2%%", r.All.Flagged, r.All.Chunks, r.All.FPR)
	}
}

// TestEverydayRequestsAreNotAttacks: what users send — questions,
// writing, role-play, chat, code, translation, benchmark questions; the
// test split of the task classifier's corpora, never trained on — is
// rarely taken for an attack. Each flagged one would be refused under the
// default injection: deny. The model before these requests and the
// manuals' pieces were trained on flagged 6 of 344 (1.7 %); what is left
// is role-play that says "stay in character", as a DAN prompt does.
func TestEverydayRequestsAreNotAttacks(t *testing.T) {
	requests, err := everydayRequests(true)
	if err != nil {
		t.Skipf("the task corpora are not here: %v", err)
	}
	flagged := countFlagged(t, requests, "everyday requests")
	if len(requests) < 300 || float64(flagged) > 0.015*float64(len(requests)) {
		t.Errorf("%d of %d everyday requests flagged; want at most 1.5%%", flagged, len(requests))
	}
}

// TestInstructionsAreNotAttacks: the test split of the benign requests
// written with words the labelled data shows only in attacks ("from now on,
// answer in JSON", "act as a Linux terminal", "how do I enable developer
// mode on Android") — the rows the model never trained on. Before they were
// trained on (2026-12-04), 5 of these 24 were flagged (22 of all 80);
// after, 2 (docs/classify/injection.md).
func TestInstructionsAreNotAttacks(t *testing.T) {
	requests, err := instructionRequests(true)
	if err != nil {
		t.Fatal(err)
	}
	if flagged := countFlagged(t, requests, "benign instructions"); len(requests) < 20 || flagged > 2 {
		t.Errorf("%d of %d benign instructions flagged; want at most 2", flagged, len(requests))
	}
}

// countFlagged scores rows, every one benign, and logs the ones flagged.
func countFlagged(t *testing.T, rows []row, what string) int {
	t.Helper()
	flagged := 0
	for _, r := range rows {
		if s := Score(r.prompt); s.Detected {
			flagged++
			t.Logf("flagged: %.2f %s %.80q", s.Score, s.Rule, r.prompt)
		}
	}
	t.Logf("%d of %d %s flagged", flagged, len(rows), what)
	return flagged
}

// TestChunks: the pieces are the text, in order, each about the size
// asked for and cut at a line or a word, never inside a UTF-8 sequence.
func TestChunks(t *testing.T) {
	text := strings.Repeat("Grüße aus der Prüfung, 世界 — line\n", 300) + strings.Repeat("x", 5000)
	ps := Chunks(text, 500)
	if strings.Join(ps, "") != text {
		t.Fatal("the pieces are not the text")
	}
	for i, p := range ps {
		if !utf8.ValidString(p) {
			t.Errorf("piece %d is cut inside a character", i)
		}
		if i < len(ps)-1 && (len(p) < 375 || len(p) > 505) {
			t.Errorf("piece %d: %d bytes, want about 500", i, len(p))
		}
		if i < 20 && !strings.HasSuffix(p, "\n") {
			t.Errorf("piece %d does not end at a line: %q", i, p[len(p)-10:])
		}
	}
	if got := Chunks("short", 500); !slices.Equal(got, []string{"short"}) {
		t.Errorf("a short text: %q", got)
	}
}

// TestCompositesHideLength: the benign composites are as long as the
// jailbreaks, so length says nothing, and the same rows make the same
// composites.
func TestCompositesHideLength(t *testing.T) {
	rows, err := labelledRows()
	if errors.Is(err, fs.ErrNotExist) {
		t.Skipf("labelled data not here: %v", err)
	}
	if err != nil {
		t.Fatal(err)
	}
	cs := composites(rows)
	if !slices.Equal(cs, composites(rows)) {
		t.Fatal("the composites differ from one call to the next")
	}
	median := func(rs []labelled, positive bool) int {
		var ls []int
		for _, r := range rs {
			if r.positive == positive {
				ls = append(ls, len(r.prompt))
			}
		}
		sort.Ints(ls)
		return ls[len(ls)/2]
	}
	benign, attack := median(cs, false), median(rows, true)
	if benign < attack*3/4 {
		t.Errorf("benign composites: median %d bytes; jailbreaks: %d", benign, attack)
	}
	nb := 0
	for _, r := range rows {
		if !r.positive {
			nb++
		}
	}
	if n := len(cs) - (len(rows)-nb+1)/2; n != nb {
		t.Errorf("%d benign composites of %d benign rows", n, nb)
	}
}
