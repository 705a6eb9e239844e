package config

import (
	"bytes"
	"os"
	"testing"

	"gopkg.in/yaml.v3"
)

// routerBenchIDs are the 11 models of RouterBench, under the ids its data set
// uses; the shipped catalog carries them so offline evaluation finds them.
var routerBenchIDs = []string{
	"gpt-4-1106-preview",
	"gpt-3.5-turbo-1106",
	"claude-v2",
	"claude-v1",
	"claude-instant-v1",
	"meta/llama-2-70b-chat",
	"meta/code-llama-instruct-34b-chat",
	"mistralai/mistral-7b-chat",
	"mistralai/mixtral-8x7b-chat",
	"zero-one-ai/Yi-34B-Chat",
	"WizardLM/WizardLM-13B-V1.2",
}

// TestShippedCatalogIsValid decodes examples/catalog.yaml strictly, as a
// stellwerk config with a minimal routing section, and checks it validates
// and holds what the catalog promises.
func TestShippedCatalogIsValid(t *testing.T) {
	data, err := os.ReadFile("../../examples/catalog.yaml")
	if err != nil {
		t.Fatal(err)
	}
	var c Config
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	if err := dec.Decode(&c); err != nil {
		t.Fatalf("decode: %v", cleanYAMLError(err))
	}
	if len(c.Models) == 0 {
		t.Fatal("catalog has no models")
	}
	c.Routing.DefaultModel = c.Models[0].ID
	c.ApplyDefaults()
	if err := c.Validate(); err != nil {
		t.Fatalf("validate:\n%v", err)
	}

	if n := len(c.Models); n < 55 {
		t.Errorf("%d models, want at least 55", n)
	}
	if n := len(c.Providers); n < 12 {
		t.Errorf("%d providers, want at least 12", n)
	}

	residency := map[string]int{}
	providerResidency := map[string]string{}
	for _, p := range c.Providers {
		residency[p.Residency]++
		providerResidency[p.Name] = p.Residency
	}
	for _, r := range []string{"eu", "us", "on_prem"} {
		if residency[r] == 0 {
			t.Errorf("no provider with residency %q", r)
		}
	}

	ids := map[string]bool{}
	perResidency := map[string]int{}
	for _, m := range c.Models {
		ids[m.ID] = true
		perResidency[providerResidency[m.Provider]]++
		if m.Price.Source == "" {
			t.Errorf("model %s: price has no source", m.ID)
		}
		if m.Price.AsOf == "" {
			t.Errorf("model %s: price has no as_of", m.ID)
		}
		if len(m.Quality) == 0 {
			t.Errorf("model %s: no quality scores", m.ID)
		}
		if _, ok := m.Quality["default"]; !ok {
			t.Errorf("model %s: no default quality", m.ID)
		}
		for task, q := range m.Quality {
			if q < 0 || q > 1 {
				t.Errorf("model %s: quality.%s = %v, want within [0,1]", m.ID, task, q)
			}
		}
	}
	for _, id := range routerBenchIDs {
		if !ids[id] {
			t.Errorf("RouterBench model %q missing", id)
		}
	}
	t.Logf("%d models, %d providers; providers per residency %v; models per residency %v",
		len(c.Models), len(c.Providers), residency, perResidency)
}
