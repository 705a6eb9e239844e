package flow

import (
	"github.com/stellwerk/stellwerk/internal/catalog"
	"github.com/stellwerk/stellwerk/internal/config"
)

// EnvFor is the Env of a config in force: its catalog's models and
// providers, its budgets and workspaces, the default headers.
func EnvFor(cfg *config.Config, cat *catalog.Catalog) *Env {
	e := &Env{Models: []string{}, Providers: []string{}, Budgets: []string{}, Workspaces: []string{"default"}}
	for _, w := range cfg.Workspaces {
		if w.Name != "default" {
			e.Workspaces = append(e.Workspaces, w.Name)
		}
	}
	for _, m := range cat.Models() {
		e.Models = append(e.Models, m.ID)
		e.Models = append(e.Models, m.Aliases...)
	}
	for _, p := range cat.Providers() {
		e.Providers = append(e.Providers, p.Name)
	}
	for _, b := range cfg.Budgets.Limits {
		e.Budgets = append(e.Budgets, b.Name)
	}
	return e
}
