package extproc

import (
	"encoding/json"
	"slices"

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
	for _, v := range r.VisibleSets() {
		st.modelsJSON[v] = modelsList(v.Models())
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

// modelsFor is the /v1/models answer for a principal: only the models its
// access lists let it use.
func (st *State) modelsFor(p auth.Principal) []byte {
	v := st.Router.Visible(p)
	if len(p.Models) > 0 { // a store key narrowed to some models: rendered per request, as rare as such keys
		var ms []*catalog.Model
		for _, m := range v.Models() {
			if decision.KeyAllows(p, m) {
				ms = append(ms, m)
			}
		}
		return modelsList(ms)
	}
	if b, ok := st.modelsJSON[v]; ok {
		return b
	}
	return modelsList(v.Models()) // a router not built by decision.New
}

// modelJSON renders one entry for GET /v1/models/{id}; a model the
// principal may not use is not found, like one that does not exist.
func (st *State) modelJSON(p auth.Principal, id string) ([]byte, bool) {
	var e modelEntry
	if id == decide.Auto {
		e = modelEntry{ID: decide.Auto, Object: "model", OwnedBy: "stellwerk"}
	} else {
		m, ok := st.Router.Catalog.Lookup(id)
		if !ok || !st.Router.Visible(p).Has(id) || !decision.KeyAllows(p, m) {
			return nil, false
		}
		e = modelEntry{ID: m.ID, Object: "model", OwnedBy: m.Provider.Name, ContextWindow: m.ContextWindow, Residency: m.Provider.Residency,
			Endpoints: endpointsOf(m)}
	}
	b, _ := json.Marshal(e)
	return b, true
}
