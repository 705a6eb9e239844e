package config

import (
	"reflect"
	"slices"
	"strings"
	"testing"

	"github.com/stellwerk/stellwerk/internal/docstest"
)

// TestFieldsDocumented: every field of the failover, routing, providers and
// models sections is named in docs/config.md, in the table of its section.
func TestFieldsDocumented(t *testing.T) {
	var names []string
	for _, s := range docstest.Snippets(t, "../..") {
		if strings.HasPrefix(s.Where, "docs/config.md:") {
			names = append(names, s.Code)
		}
	}
	for section, v := range map[string]any{"failover": Failover{}, "routing": Routing{}, "providers": Provider{}, "models": Model{}} {
		typ := reflect.TypeOf(v)
		for i := range typ.NumField() {
			tag, _, _ := strings.Cut(typ.Field(i).Tag.Get("yaml"), ",")
			if tag == "" || tag == "-" {
				continue
			}
			if !slices.Contains(names, tag) && !slices.ContainsFunc(names, func(n string) bool { return strings.HasPrefix(n, tag+".") }) {
				t.Errorf("%s.%s is not documented in docs/config.md", section, tag)
			}
		}
	}
}
