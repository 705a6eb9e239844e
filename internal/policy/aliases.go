package policy

import (
	"fmt"
	"sort"
	"strings"

	"github.com/open-policy-agent/opa/v1/ast"
)

// AliasWarnings names the strings of the platform's own modules that are a
// model's alias (config.ModelAliases: alias → id). Everything the policy
// reads names models by id — the request's model, the candidates, the
// lists — so a rule comparing with a retired model's id, once that id is
// its successor's alias, silently stops applying (the catalog probe). The
// shipped library names no model.
func (e *Engine) AliasWarnings(aliases map[string]string) []string {
	return aliasWarnings(e.files.modules, aliases)
}

// CheckAliases is AliasWarnings of a policy not loaded (config check).
func CheckAliases(src Source, aliases map[string]string) []string {
	if len(aliases) == 0 {
		return nil
	}
	f, err := src.collect()
	if err != nil {
		return nil // Check says why
	}
	return aliasWarnings(f.modules, aliases)
}

func aliasWarnings(modules map[string]string, aliases map[string]string) []string {
	if len(aliases) == 0 {
		return nil
	}
	var out []string
	seen := map[string]bool{}
	for name, src := range modules {
		if strings.HasPrefix(name, "library/") {
			continue
		}
		m, err := ast.ParseModuleWithOpts(name, src, ast.ParserOptions{RegoVersion: ast.RegoV1})
		if err != nil {
			continue // it compiled once: not for this check to fail
		}
		ast.WalkTerms(m, func(t *ast.Term) bool {
			s, ok := t.Value.(ast.String)
			if !ok {
				return false
			}
			id, ok := aliases[string(s)]
			if !ok {
				return false
			}
			where := name
			if t.Location != nil {
				where = t.Location.String()
			}
			msg := fmt.Sprintf("%s: %q is an alias of the model %q: the policy sees models by id, so compare with %q", where, string(s), id, id)
			if !seen[msg] {
				seen[msg] = true
				out = append(out, msg)
			}
			return false
		})
	}
	sort.Strings(out)
	return out
}
