package decision

import (
	"context"
	"strings"
	"testing"

	"go.uber.org/zap"

	"github.com/stellwerk/stellwerk/internal/catalog"
	"github.com/stellwerk/stellwerk/internal/classify"
	"github.com/stellwerk/stellwerk/internal/config"
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
	cat, err := catalog.New(c, catalog.Env{Getenv: func(string) string { return "" }})
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
	return New(c, cat, cl, pm, zap.NewNop()), c
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
