package docstest

import (
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"unicode"
)

// TestLinksResolve: every relative link in README.md and docs/ points to a
// file that exists and, into a Markdown file, to a heading it has, by the
// anchor GitHub gives that heading. A heading renamed without its links (a
// date in it, one character of punctuation) leaves a reader at the top of a
// 2,000-line page.
func TestLinksResolve(t *testing.T) {
	root := filepath.Join("..", "..")
	files := []string{filepath.Join(root, "README.md")}
	err := filepath.WalkDir(filepath.Join(root, "docs"), func(p string, d os.DirEntry, err error) error {
		if err == nil && !d.IsDir() && strings.HasSuffix(p, ".md") {
			files = append(files, p)
		}
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	anchors := map[string]map[string]bool{}
	anchorsOf := func(path string) map[string]bool {
		if a, ok := anchors[path]; ok {
			return a
		}
		b, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		a := headingAnchors(string(b))
		anchors[path] = a
		return a
	}
	n := 0
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		name, _ := filepath.Rel(root, f)
		for _, l := range links(string(b)) {
			if strings.Contains(l.url, "://") || strings.HasPrefix(l.url, "mailto:") {
				continue
			}
			n++
			path, anchor, _ := strings.Cut(l.url, "#")
			target := f
			if path != "" {
				target = filepath.Join(filepath.Dir(f), path)
				if _, err := os.Stat(target); err != nil {
					t.Errorf("%s:%d: link to %s: no such file", name, l.line, l.url)
					continue
				}
			}
			if anchor != "" && strings.HasSuffix(target, ".md") && !anchorsOf(target)[anchor] {
				t.Errorf("%s:%d: link to %s: no heading with that anchor", name, l.line, l.url)
			}
		}
	}
	if n < 100 {
		t.Errorf("only %d relative links found; the scan is broken", n)
	}
}

type link struct {
	url  string
	line int
}

var (
	mdLink   = regexp.MustCompile(`\]\(([^)\s]+)\)`)
	codeSpan = regexp.MustCompile("`[^`\n]*`")
)

// links returns the targets of the Markdown links outside code.
func links(text string) []link {
	var out []link
	fenced := false
	for i, line := range strings.Split(text, "\n") {
		if strings.HasPrefix(strings.TrimSpace(line), "```") {
			fenced = !fenced
			continue
		}
		if fenced {
			continue
		}
		for _, m := range mdLink.FindAllStringSubmatch(codeSpan.ReplaceAllString(line, ""), -1) {
			out = append(out, link{m[1], i + 1})
		}
	}
	return out
}

// headingAnchors returns the anchors GitHub gives the headings of a
// Markdown text: lower case, letters, digits, '-' and '_' kept, spaces
// made '-', everything else dropped; a repeated anchor gets -1, -2, ….
func headingAnchors(text string) map[string]bool {
	out := map[string]bool{}
	seen := map[string]int{}
	fenced := false
	for _, line := range strings.Split(text, "\n") {
		if strings.HasPrefix(strings.TrimSpace(line), "```") {
			fenced = !fenced
			continue
		}
		h := strings.TrimLeft(line, "#")
		if fenced || len(h) == len(line) || len(line)-len(h) > 6 || !strings.HasPrefix(h, " ") {
			continue
		}
		var b strings.Builder
		for _, r := range strings.TrimSpace(h) {
			switch {
			case unicode.IsLetter(r) || unicode.IsDigit(r) || r == '-' || r == '_':
				b.WriteRune(unicode.ToLower(r))
			case r == ' ':
				b.WriteByte('-')
			}
		}
		a := b.String()
		if k := seen[a]; k > 0 {
			out[a+"-"+strconv.Itoa(k)] = true
		} else {
			out[a] = true
		}
		seen[a]++
	}
	return out
}

// TestDropInPrintedInFull: docs/envoy.md says it prints envoy/drop-in.yaml
// in full, and operators copy it from there: the printed block is the file
// (it had lost the ext_proc cluster's circuit breakers, which cap an Envoy
// at 1,024 requests in flight; a helper found it).
func TestDropInPrintedInFull(t *testing.T) {
	root := filepath.Join("..", "..")
	file, err := os.ReadFile(filepath.Join(root, "envoy", "drop-in.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	doc, err := os.ReadFile(filepath.Join(root, "docs", "envoy.md"))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(doc), "```yaml\n"+string(file)+"```") {
		t.Error("docs/envoy.md does not print envoy/drop-in.yaml as it is")
	}
}
