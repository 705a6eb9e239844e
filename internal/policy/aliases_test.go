package policy

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestAliasWarnings: a platform module that compares with a model's alias
// is named, file and line, with the id to use; the shipped library and a
// config without aliases draw nothing.
func TestAliasWarnings(t *testing.T) {
	dir := t.TempDir()
	src := "package stellwerk\n\ntags[\"legacy\"] := \"yes\" if input.request.model == \"gpt-4-turbo\"\n\ndeny contains \"no\" if input.request.model == \"gpt-4.1\"\n"
	if err := os.WriteFile(filepath.Join(dir, "legacy.rego"), []byte(src), 0o600); err != nil {
		t.Fatal(err)
	}
	s := Source{Library: true, Dir: dir}
	aliases := map[string]string{"gpt-4-turbo": "gpt-4.1"}
	got := CheckAliases(s, aliases)
	if len(got) != 1 || !strings.Contains(got[0], "legacy.rego:3") || !strings.Contains(got[0], `"gpt-4-turbo" is an alias of the model "gpt-4.1"`) {
		t.Errorf("warnings %q", got)
	}
	if w := CheckAliases(s, nil); w != nil {
		t.Errorf("without aliases: %q", w)
	}
	if w := CheckAliases(Source{Library: true}, aliases); w != nil {
		t.Errorf("the library alone: %q", w)
	}
}
