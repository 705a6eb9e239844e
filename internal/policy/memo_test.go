package policy

import (
	"context"
	"os"
	"path/filepath"
	"reflect"
	"testing"
	"time"

	"go.uber.org/zap"
)

// TestMemoKeysOnWhatTheLibraryReads: the shipped library reads no value
// that changes with every request, so its decisions are memoised, and the
// key holds no per-request candidate value.
func TestMemoKeysOnWhatTheLibraryReads(t *testing.T) {
	e, err := Load(context.Background(), Source{Library: true})
	if err != nil {
		t.Fatal(err)
	}
	if e.memo == nil {
		t.Fatal("the shipped library is not memoised")
	}
	if e.memo.cands != 0 {
		t.Errorf("the key holds per-request candidate fields: %b", e.memo.cands)
	}
	for _, unread := range []string{"time", "principal", "budget"} {
		if e.memo.root.get(unread) != nil {
			t.Errorf("input.%s is read", unread)
		}
	}
}

// TestDecideMatchesEval: whatever the memo answers is what an evaluation
// answers, for a policy that also reads candidates' health, the time and
// the request's metadata, over requests and live state that change.
func TestDecideMatchesEval(t *testing.T) {
	dir := t.TempDir()
	mod := `package stellwerk

excluded contains [input.candidates[i].id, "ops: provider unhealthy"] if {
	input.workspace.name == "support"
	input.candidates[i].healthy == false
}

deny contains "weekend" if {
	input.request.metadata.team == "finance"
	input.time.weekday == "Sunday"
}
`
	if err := os.WriteFile(filepath.Join(dir, "ops.rego"), []byte(mod), 0o600); err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	m, err := NewManager(ctx, Source{Library: true, Dir: dir}, zap.NewNop())
	if err != nil {
		t.Fatal(err)
	}
	e := m.Current()
	if e.memo == nil || e.memo.cands != readsHealthy {
		t.Fatalf("memo %+v: want health in the key", e.memo)
	}
	c, cat := production(t)
	ct := NewCatalogTerms(cat)
	st := newLiveState(cat, "openai")
	sunday := time.Date(2026, 11, 22, 12, 0, 0, 0, time.UTC)
	hits := 0
	for i := range 200 {
		in := shippedRequest(c, i%2 == 1)
		in.Request.Metadata = map[string]string{"team": []string{"finance", "support"}[i%3%2]}
		in.Now = sunday.Add(time.Duration(i%5) * 11 * time.Hour)
		in.Classification.Injection.Score = float64(i%4) / 4
		in.Classification.InputTokens = 100 + i
		if i == 100 {
			st.health.Failed("anthropic", "503", time.Hour)
		}
		st.step()
		in.Candidates = st.candidates(in.Classification.Task, in.Classification.InputTokens, 512)
		before := len(e.memo.cur) + len(e.memo.prev)
		got, err := e.Decide(ctx, in, ct)
		if err != nil {
			t.Fatal(err)
		}
		if len(e.memo.cur)+len(e.memo.prev) == before {
			hits++
		}
		v, release := in.Value(ct)
		want, err := e.Eval(ctx, v)
		release()
		if err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(got, want) {
			t.Fatalf("request %d: memo %+v\nevaluation %+v", i, got, want)
		}
	}
	if hits < 100 {
		t.Errorf("%d of 200 requests answered from the memo", hits)
	}
}
