package flow

import (
	"context"
	"fmt"
	"os"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stellwerk/stellwerk/internal/auth"
	"github.com/stellwerk/stellwerk/internal/classify"
	"github.com/stellwerk/stellwerk/internal/ledger"
	"github.com/stellwerk/stellwerk/internal/request"
)

var testEnv = &Env{
	Models:     []string{"gpt-4o", "gpt-4o-mini", "claude-sonnet", "mistral-small"},
	Providers:  []string{"openai", "anthropic", "mistral"},
	Budgets:    []string{"support-month", "eng-day"},
	Workspaces: []string{"default", "acme"},
}

func loadFile(t testing.TB, path string) *Flow {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	f, err := Load(path, data, testEnv)
	if err != nil {
		t.Fatal(err)
	}
	return f
}

// countLimiter is an in-memory Limiter: limit requests per node, then Over.
type countLimiter struct {
	mu    sync.Mutex
	n     map[string]int64
	fails bool
}

func (c *countLimiter) Take(_ context.Context, l *RateLimit, _ *Input) (Verdict, error) {
	if c.fails {
		return Unavailable, fmt.Errorf("store down")
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.n == nil {
		c.n = map[string]int64{}
	}
	if c.n[l.Counter()] >= l.RequestsPerMinute {
		return Over, nil
	}
	c.n[l.Counter()]++
	return Under, nil
}

func TestSupportExample(t *testing.T) {
	f := loadFile(t, "testdata/support.yaml")
	if !f.NeedsBudgets() || len(f.RateLimits()) != 1 || f.RateLimits()[0].Counter() != "route.support.free-tier" {
		t.Fatalf("needs budgets %v, rate limits %v", f.NeedsBudgets(), f.RateLimits())
	}
	ctx := context.Background()
	paid := map[string]string{"plan": "paid"}
	tests := map[string]struct {
		in      Input
		path    string
		targets string
		arm     string
		end     int
		fired   string
	}{
		"paid, control arm": {in: Input{RequestID: "r1", Metadata: paid, Principal: &auth.Principal{User: "ana"}},
			path: "plan budget rollout strong", targets: "gpt-4o", arm: "rollout/control"},
		"paid, near the budget": {in: Input{RequestID: "r1", Metadata: paid, Budgets: []ledger.BudgetState{{Name: "support-month", Ratio: 0.93}}},
			path: "plan budget economy", targets: "auto", fired: "budget"},
		"free, under the limit": {in: Input{RequestID: "r2", Metadata: map[string]string{"plan": "free"}, Limiter: &countLimiter{}},
			path: "plan free-tier economy", targets: "auto"},
		"no metadata at all": {in: Input{RequestID: "r2", Limiter: &countLimiter{}},
			path: "plan free-tier economy", targets: "auto"},
		"free, store down, fail open": {in: Input{RequestID: "r2", Limiter: &countLimiter{fails: true}},
			path: "plan free-tier economy", targets: "auto"},
		"free, no limiter": {in: Input{RequestID: "r2"}, path: "plan free-tier economy", targets: "auto"},
		"free, over the limit": {in: Input{RequestID: "r3", Limiter: &countLimiter{n: map[string]int64{"route.support.free-tier": 100}}},
			path: "plan free-tier busy", end: 429, fired: "free-tier"},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			o := f.Evaluate(ctx, &tc.in)
			if got := strings.Join(o.Path, " "); got != tc.path {
				t.Errorf("path %q, want %q", got, tc.path)
			}
			var ts []string
			for _, x := range o.Targets {
				ts = append(ts, x.Model)
			}
			if got := strings.Join(ts, " "); got != tc.targets {
				t.Errorf("targets %q, want %q", got, tc.targets)
			}
			if tc.arm != "" && o.Arm != tc.arm {
				t.Errorf("arm %q, want %q", o.Arm, tc.arm)
			}
			if (o.End == nil) != (tc.end == 0) || (o.End != nil && o.End.Status != tc.end) {
				t.Errorf("end %+v, want status %d", o.End, tc.end)
			}
			l, fired := o.Fired()
			if (tc.fired == "") == fired || (fired && l.Node != tc.fired) {
				t.Errorf("fired %v %+v, want %q", fired, l, tc.fired)
			}
		})
	}
	// The economy target carries its auto settings; the challenger chain
	// its order.
	o := f.Evaluate(ctx, &Input{RequestID: "x", Limiter: &countLimiter{}})
	if e := o.Targets[0]; e.Objective != "cost" || e.MinQuality != 0.6 || !slices.Equal(e.Deny, []string{"gpt-4o", "provider:anthropic"}) {
		t.Errorf("economy target %+v", e)
	}
}

func TestChainAndExplain(t *testing.T) {
	f := loadFile(t, "testdata/support.yaml")
	f.Version = 7
	// Find a user on the challenger arm.
	for i := range 1000 {
		in := Input{RequestID: "r", Metadata: map[string]string{"plan": "paid"}, Principal: &auth.Principal{User: fmt.Sprint("user", i)}}
		o := f.Evaluate(context.Background(), &in)
		if o.Arm != "rollout/challenger" {
			continue
		}
		if len(o.Targets) != 2 || o.Targets[0].Model != "claude-sonnet" || o.Targets[1].Model != "gpt-4o" || o.Targets[0].Node != "sonnet" {
			t.Fatalf("chain targets %+v", o.Targets)
		}
		if got, want := o.Explain(), "support@7: plan → budget → rollout[challenger] → challenger"; got != want {
			t.Errorf("explain %q, want %q", got, want)
		}
		if o.Label() != "support@7" {
			t.Errorf("label %q", o.Label())
		}
		return
	}
	t.Fatal("no user of 1000 on the 10% arm")
}

func TestSplitShareAndStickiness(t *testing.T) {
	f := loadFile(t, "testdata/support.yaml")
	paid := map[string]string{"plan": "paid"}
	const n = 20000
	challenger := 0
	for i := range n {
		// Per request (no user): the request id decides.
		in := Input{RequestID: fmt.Sprintf("req-%d", i), Metadata: paid}
		if f.Evaluate(context.Background(), &in).Arm == "rollout/challenger" {
			challenger++
		}
	}
	if share := float64(challenger) / n; share < 0.09 || share > 0.11 {
		t.Errorf("challenger share %.4f over %d requests, want 0.10±0.01", share, n)
	}
	// Sticky per user: every request of one user lands on one arm,
	// whatever its request id.
	for u := range 200 {
		p := &auth.Principal{User: fmt.Sprint("user-", u)}
		first := ""
		for r := range 20 {
			in := Input{RequestID: fmt.Sprint("r", r), Metadata: paid, Principal: p}
			arm := f.Evaluate(context.Background(), &in).Arm
			if first == "" {
				first = arm
			} else if arm != first {
				t.Fatalf("user %d moved from %s to %s", u, first, arm)
			}
		}
	}
}

func TestStickyKinds(t *testing.T) {
	doc := func(sticky string) string {
		return `route: s
nodes:
  - id: s
    split:
      sticky: ` + sticky + `
      arms:
        - {name: a, weight: 50, next: m}
        - {name: b, weight: 50, next: m}
  - id: m
    model: gpt-4o
`
	}
	for _, sticky := range []string{"key", "metadata.org", "user"} {
		f, err := Load("t", []byte(doc(sticky)), testEnv)
		if err != nil {
			t.Fatal(err)
		}
		arms := map[string]bool{}
		for r := range 50 {
			in := Input{RequestID: fmt.Sprint(r), Principal: &auth.Principal{KeyID: "k1"}, Metadata: map[string]string{"org": "acme"},
				Chat: &request.Chat{User: "body-user"}}
			arms[f.Evaluate(context.Background(), &in).Arm] = true
		}
		if len(arms) != 1 {
			t.Errorf("sticky %s: %d arms for one subject", sticky, len(arms))
		}
	}
	// Without the sticky subject the request id decides (both arms seen).
	f, _ := Load("t", []byte(doc("metadata.org")), testEnv)
	arms := map[string]bool{}
	for r := range 50 {
		arms[f.Evaluate(context.Background(), &Input{RequestID: fmt.Sprint(r)}).Arm] = true
	}
	if len(arms) != 2 {
		t.Errorf("no sticky subject: arms %v", arms)
	}
}

// TestStickyRequestUser: sticky: request.user follows the body's user
// only, so a service key with a user of its own does not put every end
// user of its app on one arm (sticky: user does: the key's user wins).
func TestStickyRequestUser(t *testing.T) {
	doc := func(sticky string) string {
		return "route: s\nnodes:\n  - id: s\n    split:\n      sticky: " + sticky +
			"\n      arms:\n        - {name: a, weight: 50, next: m}\n        - {name: b, weight: 50, next: m}\n  - {id: m, model: gpt-4o}\n"
	}
	for sticky, want := range map[string]int{"user": 1, "request.user": 2} {
		f, err := Load("t", []byte(doc(sticky)), testEnv)
		if err != nil {
			t.Fatal(err)
		}
		arms := map[string]bool{}
		for u := range 50 {
			for r := range 3 { // each body user keeps its arm
				in := Input{RequestID: fmt.Sprint(u, "-", r), Principal: &auth.Principal{KeyID: "svc", User: "svc-user"},
					Chat: &request.Chat{User: fmt.Sprint("end-user-", u)}}
				arms[f.Evaluate(context.Background(), &in).Arm+fmt.Sprint(u)] = true
			}
		}
		seen := map[string]bool{}
		for k := range arms {
			seen[k[:3]] = true
		}
		if len(arms) != 50 || len(seen) != want {
			t.Errorf("sticky %s: %d (user, arm) pairs for 50 users, %d arms; want 50 and %d", sticky, len(arms), len(seen), want)
		}
	}
}

// TestRampMovesOnlyToTheGrowingArm: the bucket does not depend on the
// weights, so ramping the second arm from 10 to 50 (order kept) moves
// users only from the first arm to the second; swapping the arms'
// order reshuffles them (docs/routes.md, Splits).
func TestRampMovesOnlyToTheGrowingArm(t *testing.T) {
	doc := func(arms string) string {
		return "route: s\nnodes:\n  - id: s\n    split:\n      sticky: user\n      arms:\n" + arms + "  - {id: m, model: gpt-4o}\n"
	}
	load := func(arms string) *Flow {
		f, err := Load("t", []byte(doc(arms)), testEnv)
		if err != nil {
			t.Fatal(err)
		}
		return f
	}
	v10 := load("        - {name: control, weight: 90, next: m}\n        - {name: challenger, weight: 10, next: m}\n")
	v50 := load("        - {name: control, weight: 50, next: m}\n        - {name: challenger, weight: 50, next: m}\n")
	swapped := load("        - {name: challenger, weight: 50, next: m}\n        - {name: control, weight: 50, next: m}\n")
	arm := func(f *Flow, u int) string {
		return f.Evaluate(context.Background(), &Input{RequestID: "r", Principal: &auth.Principal{User: fmt.Sprint("u", u)}}).Arm
	}
	moved, back, swappedMoved := 0, 0, 0
	for u := range 2000 {
		a, b := arm(v10, u), arm(v50, u)
		switch {
		case a == "s/challenger" && b != a:
			back++
		case a == "s/control" && b == "s/challenger":
			moved++
		}
		if arm(swapped, u) != b {
			swappedMoved++
		}
	}
	if back != 0 || moved < 600 || moved > 1000 { // ≈ 40% of 2000
		t.Errorf("10→50: %d challenger users moved back, %d control users moved (want 0 and ≈800)", back, moved)
	}
	if swappedMoved < 800 { // ≈ half change arm
		t.Errorf("swapping the arms moved %d of 2000 users; want about half", swappedMoved)
	}
}

// TestOnUnavailable: a model or chain node's on_unavailable: refuse is in
// the outcome, for selection to refuse rather than fall back.
func TestOnUnavailable(t *testing.T) {
	f, err := Load("t", []byte(`route: r
nodes:
  - id: s
    split:
      arms:
        - {name: a, weight: 1, next: c}
        - {name: b, weight: 1, next: m}
  - {id: c, chain: [m, n], on_unavailable: refuse}
  - {id: m, model: gpt-4o, on_unavailable: fallback}
  - {id: n, model: gpt-4o-mini}
`), testEnv)
	if err != nil {
		t.Fatal(err)
	}
	for r := range 50 {
		o := f.Evaluate(context.Background(), &Input{RequestID: fmt.Sprint(r)})
		if want := o.Arm == "s/a"; o.Refuse != want {
			t.Fatalf("arm %s: refuse %v", o.Arm, o.Refuse)
		}
	}
}

func TestZeroWeightArm(t *testing.T) {
	f, err := Load("t", []byte(`route: z
nodes:
  - id: s
    split:
      arms:
        - {name: off, weight: 0, next: a}
        - {name: on, weight: 1, next: b}
        - {name: later, weight: 0, next: a}
  - {id: a, model: gpt-4o}
  - {id: b, model: gpt-4o-mini}
`), testEnv)
	if err != nil {
		t.Fatal(err)
	}
	for r := range 500 {
		if o := f.Evaluate(context.Background(), &Input{RequestID: fmt.Sprint(r)}); o.Arm != "s/on" {
			t.Fatalf("request %d took %s", r, o.Arm)
		}
	}
}

func TestConditionVariables(t *testing.T) {
	in := &Input{
		RequestID: "r",
		Chat:      &request.Chat{Model: "route:x", MaxTokens: 900, Stream: true, Tools: true, Messages: 3, User: "u1", ResponseFormat: "json_object", Audio: true, Files: true},
		Principal: &auth.Principal{Authenticated: true, KeyID: "k1", Workspace: "legal", Team: "contracts", User: "ana"},
		Class: &classify.Result{Task: "code", Complexity: "high", Risk: "low", Sensitivity: "internal", Language: "de",
			PII: []classify.Finding{{Type: "email"}}, InputTokens: 1234, Scan: classify.ScanComplete},
		Headers:  map[string]string{"x-client-app": "helpdesk"},
		Metadata: map[string]string{"plan": "paid", "org": "acme"},
		Budgets:  []ledger.BudgetState{{Name: "eng-day", Ratio: 0.5, Warn: false}},
	}
	for name, expr := range map[string]string{
		"request":        `request.model.startsWith("route:") && request.max_tokens == 900 && request.stream && request.tools && request.messages == 3 && request.user == "u1" && request.response_format == "json_object" && !request.vision`,
		"media":          `request.audio && request.files && !request.vision`,
		"principal":      `principal.key == "k1" && principal.workspace == "legal" && principal.team == "contracts" && principal.user == "ana" && principal.authenticated`,
		"classification": `classification.task == "code" && classification.complexity == "high" && classification.risk == "low" && classification.sensitivity == "internal" && classification.language == "de" && classification.pii && !classification.secrets && !classification.injection && classification.input_tokens > 1000 && classification.scan_complete`,
		"headers":        `headers["x-client-app"] == "helpdesk" && !("user-agent" in headers)`,
		"metadata":       `metadata.plan == "paid" && metadata.org in ["acme", "globex"] && metadata.size() == 2`,
		"budgets":        `budgets["eng-day"].ratio == 0.5 && !budgets["eng-day"].exceeded && !("support-month" in budgets)`,
		"now":            `now > timestamp("2020-01-01T00:00:00Z")`,
		"strings ext":    `metadata.org.upperAscii() == "ACME"`,
	} {
		t.Run(name, func(t *testing.T) {
			src := fmt.Sprintf("route: v\nnodes:\n  - {id: c, if: %q, then: yes, else: no}\n  - {id: yes, model: gpt-4o}\n  - {id: no, model: gpt-4o-mini}\n", expr)
			f, err := Load("t", []byte(src), testEnv)
			if err != nil {
				t.Fatal(err)
			}
			in.Now = mustTime("2026-03-01T10:00:00Z")
			o := f.Evaluate(context.Background(), in)
			if len(o.ConditionErrors) > 0 || o.Targets[0].Model != "gpt-4o" {
				t.Errorf("took %v, errors %v", o.Path, o.ConditionErrors)
			}
		})
	}
}

func TestConditionErrorTakesElse(t *testing.T) {
	f, err := Load("t", []byte(`route: e
nodes:
  - {id: c, if: 'metadata.plan == "paid"', then: yes, else: no}
  - {id: yes, model: gpt-4o}
  - {id: no, model: gpt-4o-mini}
`), testEnv)
	if err != nil {
		t.Fatal(err)
	}
	o := f.Evaluate(context.Background(), &Input{})
	if o.Targets[0].Model != "gpt-4o-mini" || len(o.ConditionErrors) != 1 || !strings.Contains(o.ConditionErrors[0].Msg, "plan") {
		t.Errorf("outcome %+v", o)
	}
}

func TestFailClosed(t *testing.T) {
	f, err := Load("t", []byte(`route: fc
nodes:
  - id: l
    rate_limit: {requests_per_day: 5, per: route, fail: closed}
    next: a
    fallback: b
  - {id: a, model: gpt-4o}
  - {id: b, model: gpt-4o-mini}
`), testEnv)
	if err != nil {
		t.Fatal(err)
	}
	o := f.Evaluate(context.Background(), &Input{Limiter: &countLimiter{fails: true}})
	if o.Targets[0].Model != "gpt-4o-mini" || o.Limits[0].Verdict != Unavailable || !o.Limits[0].Fired {
		t.Errorf("outcome %+v", o)
	}
	if r := f.RateLimits()[0]; r.Per != PerRoute || !r.FailClosed || r.RequestsPerDay != 5 {
		t.Errorf("rate limit %+v", r)
	}
}

func TestDeterministic(t *testing.T) {
	f := loadFile(t, "testdata/support.yaml")
	in := Input{RequestID: "abc", Metadata: map[string]string{"plan": "paid"}, Principal: &auth.Principal{User: "u"}}
	a := f.Evaluate(context.Background(), &in)
	b := loadFile(t, "testdata/support.yaml").Evaluate(context.Background(), &in)
	if a.Explain() != b.Explain() || a.Targets[0].Model != b.Targets[0].Model {
		t.Errorf("%s vs %s", a.Explain(), b.Explain())
	}
}

func TestParseMetadataHeader(t *testing.T) {
	m, err := ParseMetadataHeader(`{"plan":"paid","org":"acme","ort":"Z\u00fcrich \ud83d\ude00"}`)
	if err != nil || m["plan"] != "paid" || m["ort"] != "Zürich 😀" || len(m) != 3 {
		t.Fatalf("%v %v", m, err)
	}
	for _, bad := range []string{`[]`, `{"a":1}`, `{"a":"b"`, `{"a":"x","a":"y"}`, `{"":"x"}`,
		`{"` + strings.Repeat("k", 65) + `":"v"}`, "{\"projekt\":\"Z\xfcrich\"}", `{"projekt":"Z\ud800rich"}`} {
		if _, err := ParseMetadataHeader(bad); err == nil {
			t.Errorf("%s accepted", bad)
		}
	}
}

func mustTime(s string) (t time.Time) {
	t, err := time.Parse(time.RFC3339, s)
	if err != nil {
		panic(err)
	}
	return t
}

func mustRead(t testing.TB, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// TestRouteWorkspaces: a route that lists workspaces is theirs; one that
// lists none is every workspace's.
func TestRouteWorkspaces(t *testing.T) {
	f, err := Load("t.yaml", []byte("route: r\nworkspaces: [acme]\nnodes:\n  - {id: a, model: gpt-4o}\n"), testEnv)
	if err != nil {
		t.Fatal(err)
	}
	if !f.Allows("acme") || f.Allows("default") || f.Allows("") {
		t.Errorf("listed: acme %v, default %v", f.Allows("acme"), f.Allows("default"))
	}
	if f, err := Load("t.yaml", []byte("route: r\nnodes:\n  - {id: a, model: gpt-4o}\n"), testEnv); err != nil || !f.Allows("default") || !f.Allows("acme") {
		t.Errorf("unlisted: %v", err)
	}
}
