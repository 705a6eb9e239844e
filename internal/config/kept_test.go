package config

import (
	"testing"

	"gopkg.in/yaml.v3"
)

// TestDecodeKept: the examples, rendered as the audit log keeps them,
// decode again without reading any file.
func TestDecodeKept(t *testing.T) {
	for _, f := range []string{"../../examples/stellwerk.yaml", "../../examples/production.yaml"} {
		c, err := Load(f)
		if err != nil {
			t.Fatal(err)
		}
		body, err := c.YAML()
		if err != nil {
			t.Fatal(err)
		}
		cat, err := yaml.Marshal(catalogFile{Providers: c.Providers, Models: c.Models})
		if err != nil {
			t.Fatal(err)
		}
		k, err := DecodeKept(body, cat)
		if err != nil {
			t.Fatalf("%s: %v", f, err)
		}
		if len(k.Models) != len(c.Models) || len(k.Workspaces) != len(c.Workspaces) || k.Routing.DefaultModel != c.Routing.DefaultModel {
			t.Fatalf("%s: kept config differs: %d models, %d workspaces", f, len(k.Models), len(k.Workspaces))
		}
	}
}
