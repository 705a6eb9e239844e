package decision

import (
	"context"
	"strings"
	"testing"
	"time"

	"go.uber.org/zap"

	"github.com/stellwerk/stellwerk/internal/apierr"
	"github.com/stellwerk/stellwerk/internal/auth"
	"github.com/stellwerk/stellwerk/internal/catalog"
	"github.com/stellwerk/stellwerk/internal/classify"
	"github.com/stellwerk/stellwerk/internal/config"
	"github.com/stellwerk/stellwerk/internal/health"
	"github.com/stellwerk/stellwerk/internal/policy"
)

// libraryRouter is a router over the config doc (YAML), with no provider
// credentials, the default classifier and the shipped Rego library.
func libraryRouter(t testing.TB, doc string) (*Router, *config.Config) {
	t.Helper()
	c, err := config.Decode(strings.NewReader(doc))
	if err != nil {
		t.Fatal(err)
	}
	return routerOver(t, c, catalog.Env{Getenv: func(string) string { return "" }}), c
}

// routerOver is a router over config c with the default classifier and
// the shipped Rego library, its catalog built in env.
func routerOver(t testing.TB, c *config.Config, env catalog.Env) *Router {
	t.Helper()
	cat, err := catalog.New(c, env)
	if err != nil {
		t.Fatal(err)
	}
	cl, err := classify.New(c.Classify)
	if err != nil {
		t.Fatal(err)
	}
	pm, err := policy.NewManager(context.Background(), policy.Source{Library: true}, zap.NewNop())
	if err != nil {
		t.Fatal(err)
	}
	return New(c, cat, cl, pm, zap.NewNop())
}

// TestModelFacts: the per-router table of qualities and prices gives what
// the models themselves say, for every task any scorecard names, a task
// none names, and the empty task, on the shipped catalog (USD and EUR
// prices, scorecards with and without a default row).
func TestModelFacts(t *testing.T) {
	c, err := config.Load("../../examples/production.yaml")
	if err != nil {
		t.Fatal(err)
	}
	cat, err := catalog.New(c, catalog.Env{Getenv: func(string) string { return "" }})
	if err != nil {
		t.Fatal(err)
	}
	r := &Router{Catalog: cat}
	f := r.modelFacts()
	if r.modelFacts() != f {
		t.Error("the table is built more than once")
	}
	tasks := []string{"", "no-such-task", "default"}
	for _, m := range cat.Models() {
		for task := range m.Quality {
			tasks = append(tasks, task)
		}
	}
	if len(tasks) < 8 {
		t.Fatalf("the catalog names only %d tasks", len(tasks))
	}
	for _, task := range tasks {
		q := f.quality(task)
		for i, m := range cat.Models() {
			if q[i] != m.QualityFor(task) {
				t.Errorf("%s, task %q: %v, want %v", m.ID, task, q[i], m.QualityFor(task))
			}
		}
	}
	for i, m := range cat.Models() {
		for _, n := range [][2]int{{0, 0}, {412, 180}, {1 << 20, 7}} {
			if got, want := f.cost[i].EUR(n[0], n[1]), m.CostEUR(n[0], n[1]); got != want {
				t.Errorf("%s %v: %v EUR, want %v", m.ID, n, got, want)
			}
		}
	}
}

// TestNothingEligibleWhileCooling: when the providers' cooldowns leave no
// model eligible, the 503 says when the first of them takes requests again
// (Retry-After); without it the SDKs retried within a second and gave up
// (a helper's finding). A replay reads no live health and says nothing.
func TestNothingEligibleWhileCooling(t *testing.T) {
	r := routeRouter(t)
	r.Health = health.New(health.Policy{FailuresBeforeCooldown: 1, Cooldown: 20 * time.Second, MaxCooldown: time.Minute, Reopen: 10 * time.Second})
	// Both providers asked to wait (Retry-After): nothing is probed.
	r.Health.Failed(health.Target{Provider: "eu"}, "boom", 20*time.Second)
	r.Health.Failed(health.Target{Provider: "us"}, "boom", 40*time.Second)
	body := []byte(`{"model":"auto","messages":[{"role":"user","content":"where is my parcel?"}]}`)
	_, err := r.Route(context.Background(), Request{Body: body, DecisionID: "d", Principal: auth.Principal{Workspace: "default"}})
	e, ok := err.(*apierr.Error)
	if !ok || e.Code != "no_eligible_model" || e.Final || e.RetryAfter < 15 || e.RetryAfter > 20 {
		t.Fatalf("%#v", err)
	}
	// A route's request too (its targets were chosen apart: a helper found
	// no Retry-After on them).
	routed := []byte(`{"model":"route:support","metadata":{"plan":"paid"},"messages":[{"role":"user","content":"where is my parcel?"}]}`)
	_, err = r.Route(context.Background(), Request{Body: routed, DecisionID: "d", Principal: auth.Principal{Workspace: "default"}})
	if e, ok := err.(*apierr.Error); !ok || e.Final || e.RetryAfter < 15 || e.RetryAfter > 20 {
		t.Fatalf("a route: %#v", err)
	}
	// A 403 (a pinned model the request's residency excludes) has no
	// Retry-After: waiting does not change it (it had one, of 20 s).
	pinned := []byte(`{"model":"sonnet","policy":{"residency":"eu"},"messages":[{"role":"user","content":"where is my parcel?"}]}`)
	_, err = r.Route(context.Background(), Request{Body: pinned, DecisionID: "d", Principal: auth.Principal{Workspace: "default"}})
	if e, ok := err.(*apierr.Error); !ok || e.Code != "model_not_allowed" || e.RetryAfter != 0 {
		t.Fatalf("a pinned model not allowed: %#v", err)
	}
	// Past eu's cooldown it reopens (a share of requests gets through),
	// and then it is open.
	eu := []policy.Candidate{{Model: r.Catalog.Models()[0]}}
	if got := r.reopensIn(eu, "default", time.Now().Add(21*time.Second)); got != 1 {
		t.Errorf("while eu reopens: retry after %d s", got)
	}
	if got := r.reopensIn(eu, "default", time.Now().Add(time.Hour)); got != 0 {
		t.Errorf("eu long open: retry after %d s", got)
	}
}

// TestProbeWhenNothingElse: when a cooldown of stellwerk's own counting
// holds back every model a request may use (a self-hosted box overloaded
// or loading), the request goes to one of them as a probe, one per second
// per scope, rather than a 503 while the box may be idle; the probe's
// success ends the cooldown. A model the policy excludes (here by the
// request's residency) is never probed. Before, every such request was a
// 503 for the cooldown and most of the reopening (the on-prem probe).
func TestProbeWhenNothingElse(t *testing.T) {
	r := routeRouter(t)
	r.Health = health.New(health.Policy{FailuresBeforeCooldown: 1, Cooldown: time.Minute, MaxCooldown: time.Minute, Reopen: time.Minute})
	r.Health.Failed(health.Target{Provider: "eu"}, "status 503: busy", 0)
	body := []byte(`{"model":"auto","policy":{"residency":"eu"},"messages":[{"role":"user","content":"where is my parcel?"}]}`)
	route := func() (*Result, error) {
		return r.Route(context.Background(), Request{Body: body, DecisionID: "d", Principal: auth.Principal{Workspace: "default"}})
	}
	res, err := route()
	if err != nil {
		t.Fatalf("the first request while eu cools: %v", err)
	}
	if m := res.Selection.Model; m.Provider.Name != "eu" || !strings.HasSuffix(res.Selection.Reason, ProbeReason) {
		t.Fatalf("probe sent to %s (%s), reason %q", m.ID, m.Provider.Name, res.Selection.Reason)
	}
	for _, m := range res.Selection.Plan(3) {
		if m.Provider.Name != "eu" {
			t.Errorf("the probe's plan has %s of %s, which the request's residency excludes", m.ID, m.Provider.Name)
		}
	}
	// A second one within the second: eu's probe is out; us is excluded.
	_, err = route()
	if e, ok := err.(*apierr.Error); !ok || e.Code != "no_eligible_model" || e.RetryAfter != 1 {
		t.Fatalf("a second probe within a second: %#v", err)
	}
	// The probe answered: eu reopens, and takes the requests nothing
	// else may serve.
	r.Health.Succeeded(health.Target{Provider: "eu", Model: res.Selection.Model.ID})
	for range 3 {
		if _, err := route(); err != nil {
			t.Fatalf("after the probe's success: %v", err)
		}
	}
}
