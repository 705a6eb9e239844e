// Package decide picks the model for a request and says why. It is pure: the
// same request and catalog give the same decision. Policy and selection
// extend it; for now `auto` resolves to the configured default and a catalog
// id is pinned.
package decide

import (
	"slices"
	"strings"

	"github.com/stellwerk/stellwerk/internal/apierr"
	"github.com/stellwerk/stellwerk/internal/catalog"
	"github.com/stellwerk/stellwerk/internal/request"
)

// Auto is the model name that asks stellwerk to choose.
const Auto = "auto"

// Decision is the outcome for one request.
type Decision struct {
	Model  *catalog.Model
	Reason string
}

// Decide resolves the requested model against the catalog.
func Decide(req request.Chat, cat *catalog.Catalog) (Decision, error) {
	if req.Model == Auto {
		return Decision{Model: cat.Default, Reason: "auto: workspace default model"}, nil
	}
	if strings.HasPrefix(req.Model, "route:") {
		return Decision{}, apierr.NotFound("route_not_found", "model", "named routes are not configured; use \"auto\" or one of: %s", strings.Join(cat.IDs(), ", "))
	}
	m, ok := cat.Lookup(req.Model)
	if !ok {
		ids := append(slices.Clone(cat.IDs()), Auto)
		return Decision{}, apierr.NotFound("model_not_found", "model", "the model %q does not exist; available: %s", truncate(req.Model, 128), strings.Join(ids, ", "))
	}
	return Decision{Model: m, Reason: "pinned by request"}, nil
}

// truncate bounds echoed client input so an error message stays small.
func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "…"
}
