package cli

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/stellwerk/stellwerk/internal/audit"
	"github.com/stellwerk/stellwerk/internal/classify"
	"github.com/stellwerk/stellwerk/internal/config"
	"github.com/stellwerk/stellwerk/internal/decision"
	"github.com/stellwerk/stellwerk/internal/store"
)

// whatIfStack is a state directory of decision records and a config file
// per policy: writeConfig(name, rule) writes a config beside the others
// with rule as its one policy module ("" for the library alone).
type whatIfStack struct {
	t   *testing.T
	dir string
}

func newWhatIfStack(t *testing.T) *whatIfStack {
	return &whatIfStack{t: t, dir: t.TempDir()}
}

func (s *whatIfStack) writeConfig(name, rule string) string {
	s.t.Helper()
	pol := filepath.Join(s.dir, name+"-policy")
	if err := os.MkdirAll(pol, 0o755); err != nil {
		s.t.Fatal(err)
	}
	if rule != "" {
		if err := os.WriteFile(filepath.Join(pol, "rule.rego"), []byte("package stellwerk\n\n"+rule+"\n"), 0o644); err != nil {
			s.t.Fatal(err)
		}
	}
	path := filepath.Join(s.dir, name+".yaml")
	if err := os.WriteFile(path, []byte(fmt.Sprintf(`
routing: {default_model: m1}
providers:
  - {name: p1, base_url: "http://127.0.0.1:8081/v1", residency: eu}
models:
  - {id: m1, provider: p1, context_window: 100000, quality: {default: 0.9}, price: {input_per_mtok: 1, output_per_mtok: 1}}
  - {id: m2, provider: p1, context_window: 100000, quality: {default: 0.8}, price: {input_per_mtok: 2, output_per_mtok: 2}}
  - {id: m3, provider: p1, context_window: 100000, quality: {default: 0.7}, price: {input_per_mtok: 3, output_per_mtok: 3}}
policy: {dir: %s}
state: {dir: %s}
`, pol, filepath.Join(s.dir, "state"))), 0o600); err != nil {
		s.t.Fatal(err)
	}
	return path
}

// record is one decision as the log keeps it: what was chosen, and the
// request's user as the record keeps it.
type whatIfRecord struct {
	chosen, user string
}

func (s *whatIfStack) write(cfgPath string, recs []whatIfRecord) {
	s.t.Helper()
	cfg, err := config.Load(cfgPath)
	if err != nil {
		s.t.Fatal(err)
	}
	ctx := context.Background()
	db, err := store.Open(ctx, cfg.State, os.Getenv)
	if err != nil {
		s.t.Fatal(err)
	}
	defer db.Close()
	signer, _, err := audit.LoadSigner(cfg.Audit, cfg.State.Dir, os.Getenv)
	if err != nil {
		s.t.Fatal(err)
	}
	st, err := audit.OpenStore(ctx, db)
	if err != nil {
		s.t.Fatal(err)
	}
	l, err := audit.Open(ctx, st, signer, audit.OptionsFrom(cfg.Audit, cfg.State.Dir), nil)
	if err != nil {
		s.t.Fatal(err)
	}
	for i, r := range recs {
		id := fmt.Sprintf("d%02d", i)
		l.Record(&audit.Record{Kind: audit.KindDecision, ID: id, Workspace: "default", Chosen: r.chosen, Status: 200,
			Replay: &decision.Inputs{V: decision.InputsVersion, DecisionID: id, Path: "/v1/chat/completions", Model: "auto", Messages: 1,
				User: r.user, Now: time.Now(), Classification: classify.Result{Task: "chat", Scan: classify.ScanComplete}}})
	}
	if err := l.Close(ctx); err != nil {
		s.t.Fatal(err)
	}
}

// period runs the what-if over every record of the stack.
func whatIf(t *testing.T, args ...string) string {
	t.Helper()
	out, stderr, err := run(append([]string{"replay", "--from", "2026-01-01", "--to", "2100-01-01"}, args...)...)
	t.Logf("replay %v:\n%s%s", args, out, stderr)
	if err != nil {
		t.Fatalf("replay %v: %v", args, err)
	}
	return out
}

// TestWhatIfAgainstLive: compared with the records, an unchanged config
// counts the changes made during the period (the probe: 28.4 % of a
// window "would be decided differently" by the config in force);
// --against counts only what the candidate changes relative to it.
func TestWhatIfAgainstLive(t *testing.T) {
	t.Parallel()
	s := newWhatIfStack(t)
	live := s.writeConfig("live", "")
	candidate := s.writeConfig("candidate", `excluded contains ["m1", "retired"] if true`)
	// Four decided by an older policy (m2), two as the library decides.
	s.write(live, []whatIfRecord{{"m2", ""}, {"m1", ""}, {"m2", ""}, {"m2", ""}, {"m1", ""}, {"m2", ""}})

	if out := whatIf(t, "--config", live); !strings.Contains(out, "4 would be decided differently than recorded (66.7%)") {
		t.Errorf("unchanged config against the records: want the period's own changes counted")
	}
	if out := whatIf(t, "--config", live, "--against", live); !strings.Contains(out, "0 would be decided differently than "+live+" decides them (0.0%)") {
		t.Errorf("unchanged config --against itself: want no change")
	}
	out := whatIf(t, "--config", candidate, "--against", live)
	if !strings.Contains(out, "6 decisions from") || !strings.Contains(out, "6 would be decided differently than "+live+" decides them (100.0%)") ||
		!regexp.MustCompile(`(?m)^\s+6  m1 → m2   e\.g\. d00$`).MatchString(out) {
		t.Errorf("candidate --against live: want every decision, m1 → m2")
	}
	var im impact
	if err := json.Unmarshal([]byte(whatIf(t, "--config", candidate, "--against", live, "--json")), &im); err != nil ||
		im.Changed != 6 || im.Transitions["m1 → m2"] != 6 || im.Against != live {
		t.Errorf("--json: %+v %v", im, err)
	}
}

// TestWhatIfExampleForEachKind: every kind of change has an example id,
// not only the first five changes' kinds (the probe: a rare change had
// none).
func TestWhatIfExampleForEachKind(t *testing.T) {
	t.Parallel()
	s := newWhatIfStack(t)
	live := s.writeConfig("live", "")
	s.write(live, []whatIfRecord{{"m2", ""}, {"m2", ""}, {"m2", ""}, {"m2", ""}, {"m2", ""}, {"m2", ""}, {"m3", ""}})
	out := whatIf(t, "--config", live)
	for _, line := range []string{`6  m2 → m1   e.g. d00`, `1  m3 → m1   e.g. d06`} {
		if !strings.Contains(out, line) {
			t.Errorf("no line %q", line)
		}
	}
	var im impact
	if err := json.Unmarshal([]byte(whatIf(t, "--config", live, "--json")), &im); err != nil ||
		!slices.Equal(im.Examples, []string{"d00", "d06"}) || im.ExampleOf["m3 → m1"] != "d06" {
		t.Errorf("--json examples: %+v %v", im, err)
	}
}

// TestWhatIfWarnsOfRedactedReads: a policy reading a value the records
// keep redacted is told of, with how many records hold it redacted (the
// probe: 0 changes predicted, 5 of 10 denied live); one that does not read
// it is not.
func TestWhatIfWarnsOfRedactedReads(t *testing.T) {
	t.Parallel()
	s := newWhatIfStack(t)
	live := s.writeConfig("live", "")
	byUser := s.writeConfig("by-user", `deny contains "blocked user" if input.request.user == "bob@example.com"`)
	s.write(live, []whatIfRecord{{"m1", "[EMAIL]"}, {"m1", "svc-7"}, {"m1", "[EMAIL]"}, {"m1", "[EMAIL] [PHONE]"}})

	warning := "warning: the policy reads input.request.user, which the audit record keeps redacted in 3 records: their replayed decisions may differ"
	if out := whatIf(t, "--config", byUser, "--against", live); !strings.Contains(out, warning) {
		t.Errorf("policy reading the user: no warning")
	}
	if out := whatIf(t, "--config", live); strings.Contains(out, "warning:") {
		t.Errorf("the library reads no user: a warning")
	}
	var im impact
	if err := json.Unmarshal([]byte(whatIf(t, "--config", byUser, "--json")), &im); err != nil || im.RedactedRead["input.request.user"] != 3 {
		t.Errorf("--json redacted_read: %+v %v", im.RedactedRead, err)
	}
	// One decision replayed: the difference is explained.
	out, stderr, err := run("replay", "--config", byUser, "d00", "--with-current")
	t.Logf("replay d00 --with-current:\n%s%s", out, stderr)
	if err == nil || !strings.Contains(out, "the policy reads input.request.user, which the audit record keeps redacted") {
		t.Errorf("replay of one decision: no note (%v)", err)
	}
}

// TestReplayNamesTheMissingFlag: a period's missing end, and the other
// misuses, say which flag (the probe read the bare usage).
func TestReplayNamesTheMissingFlag(t *testing.T) {
	for name, tc := range map[string]struct {
		args []string
		want []string
	}{
		"--from without --to":        {[]string{"--from", "1h"}, []string{"replay: --from needs --to"}},
		"--to without --from":        {[]string{"--to", "now"}, []string{"replay: --to needs --from"}},
		"nothing":                    {nil, []string{"replay: name a decision id, or a period"}},
		"an id and a period":         {[]string{"d1", "--from", "1h", "--to", "now", "--with-current"}, []string{"not both", "--with-current is for one decision"}},
		"--against without a period": {[]string{"d1", "--against", "x.yaml"}, []string{"replay: --against needs a period"}},
	} {
		t.Run(name, func(t *testing.T) {
			_, stderr, err := run(append([]string{"replay"}, tc.args...)...)
			if !errors.Is(err, ErrUsage) {
				t.Errorf("err %v, want usage", err)
			}
			for _, w := range tc.want {
				if !strings.Contains(stderr, w) {
					t.Errorf("stderr lacks %q:\n%s", w, stderr)
				}
			}
		})
	}
}

// TestReplayDiffersSaysWhy: a replay with the record's own versions that
// differs, whose policy read a redacted value, says so beside DIFFERS (the
// probe read DIFFERS with no explanation).
func TestReplayDiffersSaysWhy(t *testing.T) {
	o := replayed{ID: "d1", Recorded: replayExplanation{Error: "policy_denied", Deny: []string{"blocked user"}},
		Replayed: replayExplanation{Chosen: "m1"}, RedactedRead: []string{"input.request.user"}}
	var b strings.Builder
	printReplay(&b, &o)
	if !regexp.MustCompile(`DIFFERS:\n\s+the policy reads input\.request\.user, which the audit record keeps redacted`).MatchString(b.String()) {
		t.Errorf("no note under DIFFERS:\n%s", b.String())
	}
	o.RedactedRead = nil
	b.Reset()
	printReplay(&b, &o)
	if strings.Contains(b.String(), "redacted") {
		t.Errorf("a note without a redacted read:\n%s", b.String())
	}
}
