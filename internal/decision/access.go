package decision

import (
	"slices"
	"strings"

	"github.com/stellwerk/stellwerk/internal/auth"
	"github.com/stellwerk/stellwerk/internal/catalog"
	"github.com/stellwerk/stellwerk/internal/config"
	"github.com/stellwerk/stellwerk/internal/decide"
)

// Visible is the part of the catalog a caller's access lists (its
// workspace's and its team's allow and deny) let it use. GET /v1/models
// lists it, and a request naming a model outside it gets the same
// model_not_found as a model that does not exist: a caller learns nothing
// of models it may not use. The lists are matched as the shipped policy
// matches them (rego/stellwerk/access.rego); the policy still decides each
// request, this only decides what a caller may know exists.
type Visible struct {
	models []*catalog.Model // catalog order
	ids    map[string]bool
}

// Models are the visible models in catalog order. The slice must not be
// modified.
func (v *Visible) Models() []*catalog.Model { return v.models }

// Has reports whether the model id is visible.
func (v *Visible) Has(id string) bool { return v.ids[id] }

// notFound is the model_not_found answer for a model outside v.
// A store key's own model list narrows what it lists, and so do the
// providers stellwerk cannot send to (sendable).
func (v *Visible) notFound(asked, api string, p auth.Principal, sendable func(*catalog.Provider) bool) error {
	cands := make([]decide.Candidate, 0, len(v.models))
	for _, m := range v.models {
		// The models offered are those the client could name instead: an
		// embeddings request was offered chat models (the peer-switcher probe).
		if keyAllows(p, m) && sendable(m.Provider) && m.Serves(api) {
			cands = append(cands, decide.Candidate{Model: m})
		}
	}
	_, err := decide.Decide(decide.Input{Asked: asked, Candidates: cands})
	return err
}

// scope is a workspace and a team ("" for none) after resolution.
type scope struct{ workspace, team string }

// visibility holds every scope's Visible, computed when the router is
// built. Scopes with the same models share one Visible, so callers can
// precompute per distinct set.
type visibility struct {
	byScope map[scope]*Visible
	sets    []*Visible
}

func newVisibility(cat *catalog.Catalog, workspaces map[string]config.Workspace) *visibility {
	vis := &visibility{byScope: map[scope]*Visible{}}
	bySet := map[string]*Visible{}
	var key strings.Builder
	add := func(sc scope, ws config.Workspace, team *config.Team) {
		key.Reset()
		for _, m := range cat.Models() {
			if visible(ws, team, m) {
				key.WriteString(m.ID)
				key.WriteByte('\n')
			}
		}
		v, ok := bySet[key.String()]
		if !ok {
			v = newVisible(cat, ws, team)
			bySet[key.String()] = v
			vis.sets = append(vis.sets, v)
		}
		vis.byScope[sc] = v
	}
	for name, ws := range workspaces {
		add(scope{workspace: name}, ws, nil)
		for i := range ws.Teams {
			add(scope{workspace: name, team: ws.Teams[i].Name}, ws, &ws.Teams[i])
		}
	}
	return vis
}

func newVisible(cat *catalog.Catalog, ws config.Workspace, team *config.Team) *Visible {
	v := &Visible{ids: map[string]bool{}}
	for _, m := range cat.Models() {
		if visible(ws, team, m) {
			v.models = append(v.models, m)
			v.ids[m.ID] = true
		}
	}
	return v
}

func visible(ws config.Workspace, team *config.Team, m *catalog.Model) bool {
	return permitted(ws.Allow, ws.Deny, m) && (team == nil || permitted(team.Allow, team.Deny, m))
}

// permitted applies one allow and deny pair: an empty allow list allows all.
func permitted(allow, deny []string, m *catalog.Model) bool {
	return (len(allow) == 0 || listed(allow, m)) && !listed(deny, m)
}

// listed reports whether a list names the model, by id or provider:<name>.
func listed(list []string, m *catalog.Model) bool {
	for _, e := range list {
		if e == m.ID || slices.Contains(m.Aliases, e) {
			return true
		}
		if p, ok := strings.CutPrefix(e, "provider:"); ok && p == m.Provider.Name {
			return true
		}
	}
	return false
}

// resolve finds the principal's workspace (an unknown one is the default
// workspace) and team (nil when the workspace has no such team).
func (r *Router) resolve(p auth.Principal) (config.Workspace, *config.Team) {
	ws, ok := r.Workspaces[p.Workspace]
	if !ok {
		ws = r.Workspaces[auth.DefaultWorkspace]
	}
	var team *config.Team
	for i := range ws.Teams {
		if ws.Teams[i].Name == p.Team {
			team = &ws.Teams[i]
		}
	}
	return ws, team
}

// Visible returns what the principal may see of the catalog. It is
// precomputed by New and allocates nothing.
func (r *Router) Visible(p auth.Principal) *Visible {
	ws, team := r.resolve(p)
	sc := scope{workspace: ws.Name}
	if team != nil {
		sc.team = team.Name
	}
	if r.visible != nil {
		if v, ok := r.visible.byScope[sc]; ok {
			return v
		}
	}
	return newVisible(r.Catalog, ws, team) // a router not built by New
}

// VisibleSets lists the distinct visible sets of every workspace and team,
// for callers that precompute an answer per set.
func (r *Router) VisibleSets() []*Visible {
	if r.visible == nil {
		return nil
	}
	return r.visible.sets
}

// keyAllows applies a store key's own model list (internal/keys), which
// narrows its workspace's and team's lists further; empty allows all.
func keyAllows(p auth.Principal, m *catalog.Model) bool {
	return len(p.Models) == 0 || listed(p.Models, m)
}

// KeyAllows reports whether a store key limited to some models may use m
// (every key without such a list may).
func KeyAllows(p auth.Principal, m *catalog.Model) bool { return keyAllows(p, m) }

// keyAllowsID is keyAllows for a model id (false for an unknown id).
func (r *Router) keyAllowsID(p auth.Principal, id string) bool {
	if len(p.Models) == 0 {
		return true
	}
	m, ok := r.Catalog.Lookup(id)
	return ok && keyAllows(p, m)
}
