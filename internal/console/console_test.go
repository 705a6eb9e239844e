package console

import (
	"io/fs"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strings"
	"testing"
)

// TestAssets: the page's script and style are served from the binary with
// their types, and no file refers to anything outside this server (no
// CDN, no font, no remote image): the console works air-gapped.
func TestAssets(t *testing.T) {
	h := Handler()
	for path, ctype := range map[string]string{"/console/": "text/html", "/console/app.js": "javascript", "/console/style.css": "text/css"} {
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, path, nil))
		if rec.Code != 200 || !strings.Contains(rec.Header().Get("Content-Type"), ctype) || rec.Body.Len() == 0 {
			t.Errorf("%s: %d %s", path, rec.Code, rec.Header().Get("Content-Type"))
		}
	}
	inline := regexp.MustCompile(`(?i)\sstyle\s*=|style:\s*["'\x60]|<script>|\son[a-z]+\s*=|setAttribute\(\s*["']style`)
	remote := regexp.MustCompile(`(?i)(src|href)\s*=\s*["']?(https?:)?//|@import|url\(\s*["']?(https?:)?//`)
	err := fs.WalkDir(files, "static", func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, _ := files.ReadFile(p)
		if m := remote.Find(b); m != nil {
			t.Errorf("%s loads something from elsewhere: %s", p, m)
		}
		if strings.HasSuffix(p, ".js") && strings.Contains(string(b), "innerHTML") {
			t.Errorf("%s sets innerHTML: text from the server must go in as text", p)
		}
		// The policy refuses inline style attributes and inline script:
		// either would silently do nothing in the browser.
		if m := inline.Find(b); m != nil {
			t.Errorf("%s has an inline style or script the policy refuses: %s", p, m)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}
