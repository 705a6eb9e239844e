package e2e

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/stellwerk/stellwerk/internal/config"
	"github.com/stellwerk/stellwerk/internal/harness"
	"github.com/stellwerk/stellwerk/internal/testsrv"
)

// TestConsoleShowsHiddenCharacters: strings a client chooses (the OpenAI
// user field, a metadata value, the x-client-app header, quoted by a
// platform policy's denial; a model name as sent) reach the console's live
// stream with their bidi overrides, zero-width and tag characters drawn as
// marked codes (⟦U+202E⟧, named in a tooltip), never as themselves: the
// user "admin\u202Etxt.exe" reads as what it is, not "adminexe.txt", and a
// metadata value of U+200B does not read empty (the non-English probe).
// The text around a value stays in its order on the screen, and copying a
// value gives its real characters back.
func TestConsoleShowsHiddenCharacters(t *testing.T) {
	t.Parallel()
	chromium := testsrv.Chromium(t)
	dir := t.TempDir()
	rule := "package stellwerk\n\ndeny contains sprintf(\"user %s wants ticket [%s] via %s, then the rest\", " +
		"[input.request.user, input.request.metadata.ticket, input.request.headers[\"x-client-app\"]]) if {\n" +
		"\tinput.request.metadata.ticket\n}\n"
	if err := os.WriteFile(filepath.Join(dir, "quote.rego"), []byte(rule), 0o600); err != nil {
		t.Fatal(err)
	}
	s := harness.Start(t, harness.Options{Mutate: func(c *config.Config) { c.Policy.Dir = dir }})

	ctx, run := browser(t, chromium, 2*time.Minute)
	run("sign in",
		chromedp.Navigate(s.AdminURL+"/console/"),
		chromedp.WaitVisible(chromedp.ID("token")),
		chromedp.SendKeys(chromedp.ID("token"), s.AdminToken),
		chromedp.Click(chromedp.ID("login-btn")),
		chromedp.WaitVisible(chromedp.ID("live-list")),
		waitText("#stream-state", "stream: live"),
	)

	// A policy's denial quoting what the client chose.
	resp, b := post(t, s.URL+"/v1/chat/completions",
		`{"model":"auto","user":"admin\u202etxt.exe","metadata":{"ticket":"\u200b"},"messages":[{"role":"user","content":"hi"}]}`,
		map[string]string{"x-client-app": "app\U000E0041\U000E0042"})
	denied := resp.Header.Get("x-stellwerk-decision-id")
	if resp.StatusCode != 403 || denied == "" || !strings.Contains(string(b), "txt.exe") {
		t.Fatalf("the quoting policy: %d %s %s", resp.StatusCode, denied, b)
	}
	// A model name as sent, refused before any model was chosen.
	resp, b = post(t, s.URL+"/v1/chat/completions", `{"model":"alpha-model\u2067\u202e","messages":[{"role":"user","content":"hi"}]}`, nil)
	asked := resp.Header.Get("x-stellwerk-decision-id")
	if resp.StatusCode < 400 || asked == "" {
		t.Fatalf("a model that does not exist: %d %s %s", resp.StatusCode, asked, b)
	}

	card := func(id string) string { return fmt.Sprintf(`article.decision[data-id=%q]`, id) }
	run("the decisions in the live stream",
		chromedp.WaitVisible(chromedp.CSS(card(denied))),
		chromedp.WaitVisible(chromedp.CSS(card(asked))),
	)
	type shown struct {
		Text   string   `json:"text"`   // the card's textContent
		Inner  string   `json:"inner"`  // its innerText (what is drawn)
		Titles []string `json:"titles"` // the marks' tooltips
	}
	read := func(id string) shown {
		t.Helper()
		v, err := chromedp.Run(ctx, chromedp.Evaluate[shown](fmt.Sprintf(`(() => { const c = document.querySelector(%q);
			return {text: c.textContent, inner: c.innerText, titles: [...c.querySelectorAll(".hidden-char")].map((m) => m.title)}; })()`, card(id))))
		if err != nil {
			t.Fatalf("reading the card of %s: %v", id, err)
		}
		return v
	}
	raw := func(s string) bool { return strings.ContainsAny(s, "\u202e\u2067\u200b\U000E0041\U000E0042") }

	d := read(denied)
	for _, want := range []string{"admin⟦U+202E⟧txt.exe", "[⟦U+200B⟧]", "app⟦U+E0041⟧⟦U+E0042⟧"} {
		if !strings.Contains(d.Text, want) || !strings.Contains(d.Inner, want) {
			t.Errorf("the denial's card does not show %q:\n%q", want, d.Inner)
		}
	}
	if raw(d.Text) {
		t.Errorf("the denial's card holds the client's invisible characters as they are:\n%q", d.Text)
	}
	if !strings.Contains(strings.Join(d.Titles, "\n"), "U+202E RIGHT-TO-LEFT OVERRIDE") {
		t.Errorf("no mark's tooltip names the override: %q", d.Titles)
	}
	a := read(asked)
	if !strings.Contains(a.Text, "alpha-model⟦U+2067⟧⟦U+202E⟧") || raw(a.Text) {
		t.Errorf("the refused request's card does not mark the model name as sent:\n%q", a.Text)
	}

	// On the screen, "txt.exe" is drawn left of ", then the rest" and
	// "txt" left of "exe": the override reordered neither the value nor
	// its neighbours (it drew "admin" then "tser eht neht ,exe.txt").
	type order struct {
		Txt, Exe, Rest float64
		Found          bool
	}
	o, err := chromedp.Run(ctx, chromedp.Evaluate[order](fmt.Sprintf(`(() => {
		const c = document.querySelector(%q + " p.error");
		const left = (needle) => {
			const w = document.createTreeWalker(c, NodeFilter.SHOW_TEXT);
			for (let n = w.nextNode(); n; n = w.nextNode()) {
				const i = n.data.indexOf(needle);
				if (i < 0) continue;
				const r = document.createRange(); r.setStart(n, i); r.setEnd(n, i + needle.length);
				return r.getBoundingClientRect().left;
			}
			return NaN;
		};
		const o = {Txt: left("txt."), Exe: left("exe "), Rest: left(", then the rest")};
		o.Found = !isNaN(o.Txt) && !isNaN(o.Exe) && !isNaN(o.Rest);
		return o; })()`, card(denied))))
	if err != nil || !o.Found || o.Txt >= o.Exe || o.Exe >= o.Rest {
		t.Errorf("the denial is drawn out of its order: txt at %.0f, exe at %.0f, the rest at %.0f (%v)", o.Txt, o.Exe, o.Rest, err)
	}

	// The names a screen reader says (aria-label: the spend chart's bars
	// name each group, a client's user or tag among them), the labels the
	// narrow layout shows (data-label) and what is announced mark them too
	// (the red team of the end-user dimension).
	type named struct{ Aria, Data, Said string }
	nv, err := chromedp.Run(ctx, chromedp.Evaluate[named](`(() => {
		const e = el("span", {"aria-label": "legal/admin\u202etxt.exe €0.01", "data-label": "x\u200by"});
		const st = document.getElementById("spend-status");
		announce("spend-status", "app\u{E0041} spent");
		return {Aria: e.getAttribute("aria-label"), Data: e.getAttribute("data-label"), Said: st.textContent}; })()`))
	if err != nil || nv.Aria != "legal/admin⟦U+202E⟧txt.exe €0.01" || nv.Data != "x⟦U+200B⟧y" || nv.Said != "app⟦U+E0041⟧ spent" || raw(nv.Aria+nv.Data+nv.Said) {
		t.Errorf("accessible names and announcements: %+v %v", nv, err)
	}

	// What is stored and served keeps the client's exact characters: the
	// audit record (its deny reason and replay inputs), through the admin
	// API's JSON.
	var rec struct {
		Deny   []string `json:"deny"`
		Replay struct {
			User     string            `json:"user"`
			Metadata map[string]string `json:"metadata"`
			Headers  map[string]string `json:"headers"`
		} `json:"replay"`
	}
	waitFor(t, "the denial's audit record", func() bool {
		p := auditPage(t, s, "decision_id="+denied)
		return len(p.Records) == 1 && json.Unmarshal(p.Records[0].Record, &rec) == nil
	})
	if len(rec.Deny) != 1 || !strings.Contains(rec.Deny[0], "user admin\u202etxt.exe wants ticket [\u200b] via app\U000E0041\U000E0042,") ||
		rec.Replay.User != "admin\u202etxt.exe" || rec.Replay.Metadata["ticket"] != "\u200b" || rec.Replay.Headers["x-client-app"] != "app\U000E0041\U000E0042" {
		t.Errorf("the audit record does not keep the client's characters: %+q", rec)
	}

	// Copying the value gives its real characters back.
	copied, err := chromedp.Run(ctx, chromedp.Evaluate[string](fmt.Sprintf(`(() => {
		const p = document.querySelector(%q + " p.error");
		const r = document.createRange(); r.selectNodeContents(p);
		const sel = document.getSelection(); sel.removeAllRanges(); sel.addRange(r);
		const dt = new DataTransfer();
		document.dispatchEvent(new ClipboardEvent("copy", {clipboardData: dt, bubbles: true, cancelable: true}));
		return dt.getData("text/plain"); })()`, card(denied))))
	if err != nil || !strings.Contains(copied, "admin\u202etxt.exe") || !strings.Contains(copied, "[\u200b]") {
		t.Errorf("copying the denial gives %q (%v), not the client's characters", copied, err)
	}
}
