package extproc

import (
	"bytes"
	"encoding/json"
	"slices"
	"strings"

	"github.com/stellwerk/stellwerk/internal/auth"
	"github.com/stellwerk/stellwerk/internal/catalog"
	"github.com/stellwerk/stellwerk/internal/decide"
	"github.com/stellwerk/stellwerk/internal/decision"
	"github.com/stellwerk/stellwerk/internal/request"
)

// NewState builds the per-config state, precomputing what every request of
// that config would otherwise rebuild: the /v1/models answer of each
// distinct set of models callers may see (workspaces and teams without
// access lists share one).
func NewState(r *decision.Router, keys *auth.Keys, maxRequestBytes int64) *State {
	st := &State{Router: r, Keys: keys, MaxRequestBytes: maxRequestBytes, modelsJSON: map[*decision.Visible][]byte{}}
	for _, prov := range r.Catalog.Providers() {
		if !prov.HasCredential() {
			st.uncredentialed = append(st.uncredentialed, prov.Name)
		}
	}
	for _, v := range r.VisibleSets() {
		st.modelsJSON[v] = modelsList(st.listed(v.Models(), ""))
	}
	for _, prov := range r.Catalog.Providers() {
		for _, h := range prov.ForwardHeaders() {
			if !slices.Contains(st.forwardable, h) {
				st.forwardable = append(st.forwardable, h)
			}
		}
	}
	return st
}

type modelEntry struct {
	ID            string `json:"id"`
	Object        string `json:"object"`
	Created       int64  `json:"created"`
	OwnedBy       string `json:"owned_by"`
	ContextWindow int    `json:"context_window,omitempty"`
	Residency     string `json:"residency,omitempty"`
	// Endpoints are the APIs the model serves: chat, responses, messages,
	// embeddings, completions (docs/api.md).
	Endpoints []string `json:"endpoints,omitempty"`
	// AliasOf is the model's id when GET /v1/models/{id} asked by one of
	// its aliases (the entry is the model's, under the name asked).
	AliasOf string `json:"alias_of,omitempty"`
}

// endpointsOf lists the APIs a model serves, in a fixed order.
func endpointsOf(m *catalog.Model) []string {
	var out []string
	for _, api := range [...]string{request.APIChat, request.APIResponses, request.APIMessages, request.APIEmbeddings, request.APICompletions} {
		if m.Serves(api) {
			out = append(out, api)
		}
	}
	return out
}

// modelsList renders the OpenAI "list models" answer: `auto` first, then the
// models sorted by id.
func modelsList(models []*catalog.Model) []byte {
	data := []modelEntry{{ID: decide.Auto, Object: "model", OwnedBy: "stellwerk"}}
	for _, m := range models {
		data = append(data, modelEntry{ID: m.ID, Object: "model", OwnedBy: m.Provider.Name,
			ContextWindow: m.ContextWindow, Residency: m.Provider.Residency, Endpoints: endpointsOf(m)})
	}
	b, _ := json.Marshal(struct {
		Object string       `json:"object"`
		Data   []modelEntry `json:"data"`
	}{"list", data})
	return b
}

// sendable reports whether stellwerk can send to m for workspace ws: its
// provider's credential is configured (or it needs none), or the workspace
// brings its own key for it.
func (st *State) sendable(m *catalog.Model, ws string) bool {
	return m.Provider.HasCredential() || st.workspaceCluster(ws, m.Provider.Name) != ""
}

// listed keeps the models stellwerk can send to for workspace ws: one
// without a credential answers 502 provider_credential_missing when it is
// pinned, and listing it had SDK model pickers offer it.
func (st *State) listed(ms []*catalog.Model, ws string) []*catalog.Model {
	if len(st.uncredentialed) == 0 {
		return ms
	}
	out := make([]*catalog.Model, 0, len(ms))
	for _, m := range ms {
		if st.sendable(m, ws) {
			out = append(out, m)
		}
	}
	return out
}

// ownKeyFor reports whether workspace ws brings its own key for a provider
// without a configured credential: its models list differs from its
// visible set's.
func (st *State) ownKeyFor(ws string) bool {
	for _, name := range st.uncredentialed {
		if st.workspaceCluster(ws, name) != "" {
			return true
		}
	}
	return false
}

// modelsFor is the /v1/models answer for a principal: only the models its
// access lists let it use, and stellwerk can send to, then the routes it
// may use as route:<name> (routeEntry).
func (st *State) modelsFor(p auth.Principal) []byte {
	list := st.modelsOnly(p)
	routes := st.Router.RoutesFor(p)
	if len(routes) == 0 || !bytes.HasSuffix(list, []byte("]}")) {
		return list
	}
	// The routes change with every deploy, the models with the config:
	// the cached list is copied with the routes written before its end.
	out := append(make([]byte, 0, len(list)+64*len(routes)), list[:len(list)-2]...)
	for _, name := range routes {
		b, _ := json.Marshal(routeEntry(name))
		out = append(append(out, ','), b...)
	}
	return append(out, "]}"...)
}

// routeEntry is a named route's entry in the model list.
func routeEntry(name string) modelEntry {
	return modelEntry{ID: request.RoutePrefix + name, Object: "model", OwnedBy: "stellwerk", Endpoints: []string{"chat", "responses", "messages"}}
}

// modelsOnly is the models part of the /v1/models answer.
func (st *State) modelsOnly(p auth.Principal) []byte {
	v := st.Router.Visible(p)
	if len(p.Models) > 0 || st.ownKeyFor(p.Workspace) {
		// A store key narrowed to some models, a workspace's own key for a
		// provider without one: rendered per request, as rare as they are.
		var ms []*catalog.Model
		for _, m := range v.Models() {
			if decision.KeyAllows(p, m) {
				ms = append(ms, m)
			}
		}
		return modelsList(st.listed(ms, p.Workspace))
	}
	if b, ok := st.modelsJSON[v]; ok {
		return b
	}
	return modelsList(st.listed(v.Models(), "")) // a router not built by decision.New
}

// usable is catalog model id if the principal may use it and stellwerk can
// send to it.
func (st *State) usable(p auth.Principal, id string) (*catalog.Model, bool) {
	m, ok := st.Router.Catalog.Lookup(id)
	if !ok || !st.Router.Visible(p).Has(m.ID) || !decision.KeyAllows(p, m) || !st.sendable(m, p.Workspace) {
		return nil, false
	}
	return m, true
}

// modelJSON renders one entry for GET /v1/models/{id}; a model the
// principal may not use is not found, like one that does not exist.
func (st *State) modelJSON(p auth.Principal, id string) ([]byte, bool) {
	var e modelEntry
	switch {
	case id == decide.Auto:
		e = modelEntry{ID: decide.Auto, Object: "model", OwnedBy: "stellwerk"}
	case strings.HasPrefix(id, request.RoutePrefix):
		if !slices.Contains(st.Router.RoutesFor(p), id[len(request.RoutePrefix):]) {
			return nil, false
		}
		e = routeEntry(id[len(request.RoutePrefix):])
	default:
		m, ok := st.usable(p, id)
		if !ok {
			return nil, false
		}
		e = modelEntry{ID: m.ID, Object: "model", OwnedBy: m.Provider.Name, ContextWindow: m.ContextWindow, Residency: m.Provider.Residency,
			Endpoints: endpointsOf(m)}
		if id != m.ID {
			e.ID, e.AliasOf = id, m.ID
		}
	}
	b, _ := json.Marshal(e)
	return b, true
}
