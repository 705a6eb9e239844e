package policy

import (
	"context"
	"fmt"
	"reflect"
	"testing"

	"github.com/stellwerk/stellwerk/internal/auth"
	"github.com/stellwerk/stellwerk/internal/classify"
	"github.com/stellwerk/stellwerk/internal/config"
	"github.com/stellwerk/stellwerk/internal/ledger"
)

// tenant is one key of the bench's --tenants shape: its workspace (one of
// four kinds), its user and team, and the budgets a request under it
// finds, its own among them (named key.<id>.month, as ledger.NewKeyLimits
// names it).
type tenant struct {
	ws      *WorkspaceTerm
	cfg     config.Workspace
	team    *config.Team
	p       auth.Principal
	budgets []ledger.BudgetState
}

// tenants are w workspaces of k keys, as the bench makes them: the edge
// reads no budget state then (none is a downgrade budget, docs/policy.md,
// Budgets in the input). With own, every key's own budget is a downgrade
// budget instead, and the edge reads them all; with inForce, every third
// of those is warned or exceeded in turn, and every other workspace
// downgrades from the warning under a price ceiling.
func tenants(in *Input, w, k int, own, inForce bool) []tenant {
	var out []tenant
	for i := range w {
		ws := in.Workspace
		ws.Name, ws.Allow, ws.Deny, ws.Teams = fmt.Sprintf("tenant-%04d", i), nil, nil, nil
		var team *config.Team
		switch i % 4 {
		case 0:
			ws.Objective, ws.RelativeQuality, ws.Secrets = "cost", 0.9, "deny"
		case 1:
			ws.Objective = "balanced"
		case 2:
			ws.Objective, ws.Residency, ws.Secrets = "balanced", "eu", "on_prem_only"
		case 3:
			ws.Objective = "accuracy"
			ws.Teams = []config.Team{{Name: "apps", Deny: []string{"provider:deepseek"}}}
			team = &ws.Teams[0]
		}
		if inForce && i%2 == 1 {
			ws.DowngradeFrom = "warn"
			ws.DowngradeMaxPrice = config.DowngradePrice{InputPerMTok: 1}
		}
		term := NewWorkspaceTerm(ws, team)
		for j := range k {
			id := fmt.Sprintf("%s-k%03d", ws.Name, j)
			t := tenant{ws: term, cfg: ws, team: team}
			if own {
				b := ledger.BudgetState{Name: "key." + id + ".month", Scope: ledger.ScopeKey, Subject: id, Period: ledger.PeriodMonth,
					Limit: 5000e6, Used: ledger.MicroEUR(j * 1000), Ratio: float64(j) / 5e6, Downgrade: true}
				if inForce && j%3 == 0 {
					b.Warn, b.Exceeded = j%2 == 0, j%4 == 0
				}
				t.budgets = []ledger.BudgetState{
					{Name: "each-workspace-monthly", Scope: ledger.ScopeWorkspace, Subject: ws.Name, Period: ledger.PeriodMonth, Limit: 100000e6}, b}
			}
			t.p = auth.Principal{Authenticated: true, KeyID: id, Workspace: ws.Name, User: fmt.Sprintf("u-%04d-%03d", i, j), Roles: []string{}}
			if team != nil {
				t.p.Team = team.Name
			}
			out = append(out, t)
		}
	}
	return out
}

func (t *tenant) request(in *Input, cls *classify.Result) Input {
	req := *in
	req.Principal, req.Workspace, req.Team, req.WorkspaceTerm, req.Budgets = t.p, t.cfg, t.team, t.ws, t.budgets
	req.Classification = cls
	return req
}

// TestMemoAcrossKeys: over workspaces of the bench's four kinds, each key
// with its own user (and in some cases its own downgrade budget), the
// memo's decisions are exactly what an evaluation gives (the downgrade
// budgets in force named in the decision and its reasons included), and
// the keys of a workspace share its decisions unless a budget of theirs
// is in force: a budget's name is read only of downgrade budgets in
// force, so the per-key name of any other stays out of the memo key.
func TestMemoAcrossKeys(t *testing.T) {
	for name, tc := range map[string]struct{ own, inForce bool }{
		"no downgrade budget":            {},
		"own downgrade budgets":          {own: true},
		"own downgrade budgets in force": {own: true, inForce: true},
	} {
		t.Run(name, func(t *testing.T) {
			e, in, ct, st := shippedLive(t)
			const w, k = 16, 6
			ts := tenants(in, w, k, tc.own, tc.inForce)
			prompts := corpus(t)[:12]
			cands := st.candidates("summarization", 500, 512)
			downgraded := 0
			for i := range len(ts) * len(prompts) {
				tn := &ts[(i/w)%k+(i%w)*k] // the keys in turn, workspace by workspace
				req := tn.request(in, prompts[i/len(ts)])
				req.Candidates = cands
				got, err := e.Decide(context.Background(), &req, ct)
				if err != nil {
					t.Fatal(err)
				}
				v, release := req.Value(ct)
				want, err := e.Eval(context.Background(), v)
				release()
				if err != nil || !reflect.DeepEqual(got, want) {
					t.Fatalf("key %s: memo answered %+v, evaluation %+v (%v)", tn.p.KeyID, got, want, err)
				}
				if len(got.Downgrade) > 0 {
					downgraded++
				}
			}
			hits, misses := e.MemoStats()
			t.Logf("%d requests: %d evaluated, %d downgraded", hits+misses, misses, downgraded)
			if !tc.inForce && misses > uint64(w*len(prompts)) {
				t.Errorf("%d evaluations, want at most one per workspace and prompt (%d)", misses, w*len(prompts))
			}
			if tc.inForce && downgraded == 0 {
				t.Error("no decision downgraded: the test does not test downgrade names")
			}
		})
	}
}

// BenchmarkDecideTenants is BenchmarkDecideWorkspaces in the shape of the
// bench's --tenants 200x20: 200 workspaces of four kinds, 20 keys each
// with its own user, the requests taking the keys in turn; own: each key's
// own budget is a downgrade budget (not in force), so the edge reads the
// budgets and the policy meets a budget named after the key.
func BenchmarkDecideTenants(b *testing.B) {
	for _, own := range []bool{false, true} {
		b.Run(fmt.Sprintf("own-downgrade=%v", own), func(b *testing.B) {
			e, in, ct, st := shippedLive(b)
			ts := tenants(in, 200, 20, own, false)
			prompts := corpus(b)
			b.ReportAllocs()
			i := 0
			for b.Loop() {
				tn := &ts[(i*104729)%len(ts)]
				cls := prompts[(i*7919)%len(prompts)]
				i++
				st.step()
				req := tn.request(in, cls)
				req.Candidates = st.candidates(cls.Task, cls.InputTokens, 512)
				if _, err := e.Decide(context.Background(), &req, ct); err != nil {
					b.Fatal(err)
				}
			}
			hits, misses := e.MemoStats()
			b.ReportMetric(float64(misses)/float64(hits+misses), "evaluated/op")
		})
	}
}

// TestMemoNameShare: a decision is shared between workspaces only when its
// evaluation never read the workspace's name, however a policy reads it:
// the workspace ws-0003 is denied by a rule on its name, and asked after
// three others whose decisions did not read it (or did, and were kept
// apart), it must get its own; where the name is not read, one
// evaluation serves every workspace.
func TestMemoNameShare(t *testing.T) {
	for name, rule := range map[string]string{
		"by name":              `deny contains "named" if input.workspace.name == "ws-0003"`,
		"in a rule's index":    `_named if input.workspace.name == "ws-0003"` + "\n\n" + `deny contains "named" if _named`,
		"through a function":   `_is(n) if n == "ws-0003"` + "\n\n" + `deny contains "named" if _is(input.workspace.name)`,
		"by a variable key":    `deny contains "named" if { some k; input.workspace[k] == "ws-0003" }`,
		"the workspace whole":  `deny contains "named" if { w := input.workspace; w.name == "ws-0003" }`,
		"with object.get":      `deny contains "named" if object.get(input.workspace, "name", "") == "ws-0003"`,
		"in a comprehension":   `deny contains "named" if { "ws-0003" in [n | n := input.workspace.name] }`,
		"after an else":        `_w := "none" if input.workspace.objective == "none" else := input.workspace.name` + "\n\n" + `deny contains "named" if _w == "ws-0003"`,
		"only for some inputs": `_named if input.workspace.name == "ws-0003"` + "\n\n" + `deny contains "named" if { input.classification.risk == "low"; _named }`,
	} {
		t.Run(name, func(t *testing.T) {
			e, err := Load(context.Background(), Source{Library: true, Dir: policyDir(t, map[string]string{"r.rego": "package stellwerk\n\n" + rule + "\n"})})
			if err != nil {
				t.Fatal(err)
			}
			_, in, ct, st := shippedLive(t)
			in.Candidates = st.candidates("summarization", 500, 512)
			high := *in.Classification
			high.Risk = "high"
			var denied int
			for i := range 10 {
				w := in.Workspace
				w.Name, w.Residency, w.Allow, w.Deny = fmt.Sprintf("ws-%04d", i%5), "", nil, nil
				req := *in
				req.Workspace, req.WorkspaceTerm = w, NewWorkspaceTerm(w, nil)
				if i >= 5 { // what the last rule does not read the name for
					req.Classification = &high
				}
				got, err := e.Decide(context.Background(), &req, ct)
				if err != nil {
					t.Fatal(err)
				}
				v, release := req.Value(ct)
				want, err := e.Eval(context.Background(), v)
				release()
				if err != nil || !reflect.DeepEqual(got, want) {
					t.Fatalf("%s: memo answered %+v, evaluation %+v (%v)", w.Name, got, want, err)
				}
				if len(got.Deny) > 0 {
					denied++
				}
			}
			if want := 2; name == "only for some inputs" {
				if _, misses := e.MemoStats(); denied != 1 || misses != 5+1 {
					t.Errorf("%d denied, %d evaluated, want 1 and 6 (five workspaces at low risk, one decision for all at high)", denied, misses)
				}
			} else if denied != want {
				t.Errorf("%d of 10 requests denied, want %d", denied, want)
			}
		})
	}
}
