package extproc

import (
	"encoding/json"
	"slices"

	"github.com/stellwerk/stellwerk/internal/auth"
	"github.com/stellwerk/stellwerk/internal/catalog"
	"github.com/stellwerk/stellwerk/internal/decide"
	"github.com/stellwerk/stellwerk/internal/route"
)

// NewState builds the per-config state, precomputing what every request of
// that config would otherwise rebuild (the /v1/models answer).
func NewState(r *route.Router, keys *auth.Keys, maxRequestBytes int64) *State {
	st := &State{Router: r, Keys: keys, MaxRequestBytes: maxRequestBytes, modelsJSON: modelsList(r.Catalog)}
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
}

// modelsList renders the OpenAI "list models" answer: `auto` first, then the
// catalog sorted by id.
func modelsList(cat *catalog.Catalog) []byte {
	data := []modelEntry{{ID: decide.Auto, Object: "model", OwnedBy: "stellwerk"}}
	for _, m := range cat.Models() {
		data = append(data, modelEntry{ID: m.ID, Object: "model", OwnedBy: m.Provider.Name,
			ContextWindow: m.ContextWindow, Residency: m.Provider.Residency})
	}
	b, _ := json.Marshal(struct {
		Object string       `json:"object"`
		Data   []modelEntry `json:"data"`
	}{"list", data})
	return b
}

// modelJSON renders one entry for GET /v1/models/{id}.
func (st *State) modelJSON(id string) ([]byte, bool) {
	var e modelEntry
	if id == decide.Auto {
		e = modelEntry{ID: decide.Auto, Object: "model", OwnedBy: "stellwerk"}
	} else {
		m, ok := st.Router.Catalog.Lookup(id)
		if !ok {
			return nil, false
		}
		e = modelEntry{ID: m.ID, Object: "model", OwnedBy: m.Provider.Name, ContextWindow: m.ContextWindow, Residency: m.Provider.Residency}
	}
	b, _ := json.Marshal(e)
	return b, true
}
