package extproc

import (
	"context"
	"fmt"
	"testing"

	"go.uber.org/zap"

	"github.com/stellwerk/stellwerk/internal/auth"
	"github.com/stellwerk/stellwerk/internal/catalog"
	"github.com/stellwerk/stellwerk/internal/classify"
	"github.com/stellwerk/stellwerk/internal/config"
	"github.com/stellwerk/stellwerk/internal/decision"
)

// BenchmarkModels is GET /v1/models and /v1/models/{id} through the
// request-headers phase, per kind of key, on the shipped catalog.
func BenchmarkModels(b *testing.B) {
	st := productionState(b)
	for _, key := range []string{"open", "narrow", "team"} {
		for _, path := range []string{"/v1/models", "/v1/models/gpt-4o-mini"} {
			b.Run(key+path, func(b *testing.B) {
				hm := headersMsg("GET", path, true, "authorization", "Bearer sk-"+key)
				b.ReportAllocs()
				for b.Loop() {
					p := &edge{filter: filter{state: st, log: zap.NewNop(), id: "id"}, ctx: context.Background()}
					if p.handle(hm).GetImmediateResponse() == nil {
						b.Fatal("no answer")
					}
				}
			})
		}
	}
}

// BenchmarkModelsRender is what every GET /v1/models would cost without the
// per-set answers NewState precomputes (the shipped catalog, unfiltered).
func BenchmarkModelsRender(b *testing.B) {
	st := productionState(b)
	models := st.Router.Catalog.Models()
	b.ReportAllocs()
	for b.Loop() {
		_ = modelsList(models)
	}
}

// BenchmarkNewStateWorkspaces is the build cost of a config with 100
// workspaces of 5 teams each, every one with its own lists (paid once per
// config load or reload).
func BenchmarkNewStateWorkspaces(b *testing.B) {
	c, err := config.Load("../examples/production.yaml")
	if err != nil {
		b.Fatal(err)
	}
	ids := make([]string, 0, len(c.Models))
	for _, m := range c.Models {
		ids = append(ids, m.ID)
	}
	for w := range 100 {
		ws := config.Workspace{Name: fmt.Sprintf("ws%03d", w), Allow: ids[w%len(ids):]}
		for t := range 5 {
			ws.Teams = append(ws.Teams, config.Team{Name: fmt.Sprintf("t%d", t), Deny: ids[t : t+1+w%3]})
		}
		c.Workspaces = append(c.Workspaces, ws)
	}
	c.ApplyDefaults()
	if err := c.Validate(); err != nil {
		b.Fatal(err)
	}
	cat, err := catalog.New(c, catalog.Env{Getenv: func(string) string { return "" }})
	if err != nil {
		b.Fatal(err)
	}
	cl, err := classify.New(c.Classify)
	if err != nil {
		b.Fatal(err)
	}
	keys := auth.New(c, func(string) string { return "" })
	b.ReportAllocs()
	for b.Loop() {
		st := NewState(decision.New(c, cat, cl, nil, zap.NewNop()), keys, c.Envoy.MaxRequestBytes)
		if len(st.modelsJSON) < 50 { // equal sets share an answer
			b.Fatalf("%d sets", len(st.modelsJSON))
		}
	}
}
