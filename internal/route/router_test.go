package route

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
