package console

import (
	"io/fs"
	"net/http"
	"net/http/httptest"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/stellwerk/stellwerk/internal/spend"
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

// TestTabsAndStatusRegions: the page's markup gives assistive technology
// what the probe found missing (WCAG 4.1.2, 4.1.3): each tab is an ARIA
// tab controlling a tabpanel labelled by it, the results and state lines
// are status regions, and the decision stream is not a live region (a
// decision a second would drown everything else). TestConsoleAccessibility
// (e2e) checks the same in Chromium, with the keyboard.
func TestTabsAndStatusRegions(t *testing.T) {
	b, err := files.ReadFile("static/index.html")
	if err != nil {
		t.Fatal(err)
	}
	page := string(b)
	if !strings.Contains(page, `<div id="tabs" role="tablist"`) {
		t.Error("the tabs are not in a tablist")
	}
	tab := regexp.MustCompile(`<button id="tab-([a-z]+)" data-tab="([a-z]+)"[^>]* role="tab" aria-controls="panel-([a-z]+)" aria-selected="(true|false)"`)
	tabs := tab.FindAllStringSubmatch(page, -1)
	if len(tabs) != 8 {
		t.Fatalf("%d ARIA tabs, want 8", len(tabs))
	}
	for _, m := range tabs {
		if m[1] != m[2] || m[1] != m[3] {
			t.Errorf("tab %s controls panel-%s", m[1], m[3])
		}
		if !strings.Contains(page, `<section id="panel-`+m[1]+`" class="panel" role="tabpanel" aria-labelledby="tab-`+m[1]+`"`) {
			t.Errorf("panel-%s is not a tabpanel labelled by its tab", m[1])
		}
	}
	for _, id := range []string{"stream-state", "live-dropped", "try-result", "try-decision-status", "spend-status", "budgets-status",
		"key-secret", "keys-status", "routes-status"} {
		if !regexp.MustCompile(`id="` + id + `"[^>]* role="status"`).MatchString(page) {
			t.Errorf("#%s is not a status region", id)
		}
	}
	if regexp.MustCompile(`id="live-list"[^>]*(aria-live|role=)`).MatchString(page) {
		t.Error("the decision stream is a live region")
	}
}

// TestSpendDimensionsAreTheAPIs: the Spend panel offers every dimension a
// report groups by except day (its rows), and nothing the API refuses: the
// end user and the tag, added to the ledger, were missing.
func TestSpendDimensionsAreTheAPIs(t *testing.T) {
	b, err := files.ReadFile("static/index.html")
	if err != nil {
		t.Fatal(err)
	}
	sel := regexp.MustCompile(`(?s)<select id="spend-by">(.*?)</select>`).FindStringSubmatch(string(b))
	if sel == nil {
		t.Fatal("no #spend-by")
	}
	var got []string
	for _, m := range regexp.MustCompile(`<option(?: value="([a-z_]+)")?>([a-z_ ]+)</option>`).FindAllStringSubmatch(sel[1], -1) {
		if m[1] != "" {
			got = append(got, m[1])
		} else {
			got = append(got, m[2])
		}
	}
	var want []string
	for _, d := range spend.Dims {
		if d != spend.DimDay && d != spend.DimStatus && d != spend.DimUser {
			want = append(want, string(d))
		}
	}
	slices.Sort(got)
	slices.Sort(want)
	if !slices.Equal(got, want) {
		t.Errorf("the Spend panel offers %v; the API groups by %v (less day, status and user)", got, want)
	}
}
