package e2e

import (
	"context"
	"fmt"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/cdproto/cdp"
	"github.com/chromedp/cdproto/emulation"
	"github.com/chromedp/chromedp"
	"github.com/chromedp/chromedp/kb"

	"github.com/stellwerk/stellwerk/internal/config"
	"github.com/stellwerk/stellwerk/internal/harness"
	"github.com/stellwerk/stellwerk/internal/testsrv"
)

// TestConsoleAccessibility drives the console in headless Chromium with
// the keyboard, as a screen-reader or keyboard-only user would, and reads
// what assistive technology is given (the accessibility probe: WCAG 2.2 AA).
// The tabs are ARIA tabs that say which panel shows (4.1.2); the focus
// never falls to <body> after signing in or out, sending a try-it request,
// loading a route's versions (2.4.3); results and state changes are in
// status regions (4.1.3), the decision stream itself is not.
func TestConsoleAccessibility(t *testing.T) {
	t.Parallel()
	chromium := testsrv.Chromium(t)
	s := harness.Start(t, harness.Options{Mutate: func(c *config.Config) {
		c.Auth.Mode = "keys"
		c.Budgets.Limits = []config.BudgetRule{{Name: "default-daily", Scope: "workspace", Subject: "default",
			AmountEUR: 5, Period: "day", WarnAt: 0.5}}
	}})
	secrets := map[string]string{}
	for _, id := range []string{"a11y-one", "a11y-two"} {
		resp, b := adminDo(t, s, "POST", "/admin/keys", fmt.Sprintf(`{"id":%q,"workspace":"default"}`, id))
		if resp.StatusCode != 201 {
			t.Fatalf("create %s: %d %s", id, resp.StatusCode, b)
		}
		var k struct{ Secret string }
		mustJSON(t, b, &k)
		secrets[id] = k.Secret
		waitFor(t, "the key "+id+" to be known", func() bool { // the key store refreshes every 250ms
			resp, _ := post(t, s.URL+"/v1/chat/completions", `{"model":"auto","messages":[{"role":"user","content":"hi"}]}`,
				map[string]string{"Authorization": "Bearer " + k.Secret})
			return resp.StatusCode == 200
		})
	}
	deployRoute(t, s, "route: support\nnodes:\n  - {id: main, model: alpha-model}\n")

	ctx, run := browser(t, chromium, 3*time.Minute)
	eval := func(what, js string) string {
		t.Helper()
		v, err := chromedp.Run(ctx, chromedp.Evaluate[string](js))
		if err != nil {
			t.Fatalf("%s: %v", what, err)
		}
		return v
	}
	// focused describes the element with the focus: tag#id, or tag in #panel.
	const focused = `(() => { const a = document.activeElement; if (!a) return "none";
		const p = a.closest("section, tr, #tabs, form"); return a.tagName + (a.id ? "#" + a.id : "") + " in " + (p ? (p.id || p.tagName) : "-"); })()`

	// The tabs before signing in: a tablist, each tab controlling its
	// panel, the one shown selected.
	run("open", chromedp.Navigate(s.AdminURL+"/console/"), chromedp.WaitVisible(chromedp.ID("token")))
	tabs := eval("tabs", `(() => { const l = document.getElementById("tabs"); const out = [l.getAttribute("role")];
		for (const b of l.querySelectorAll("button")) { const p = document.getElementById(b.getAttribute("aria-controls"));
			out.push([b.getAttribute("role"), b.dataset.tab, b.getAttribute("aria-selected"), b.tabIndex,
				p ? p.getAttribute("role") + ">" + p.getAttribute("aria-labelledby") : "no panel"].join(" ")); }
		return out.join("\n"); })()`)
	wantTabs := "tablist\ntab live true 0 tabpanel>tab-live\ntab try false -1 tabpanel>tab-try\ntab spend false -1 tabpanel>tab-spend\n" +
		"tab budgets false -1 tabpanel>tab-budgets\ntab keys false -1 tabpanel>tab-keys\ntab routes false -1 tabpanel>tab-routes\n" +
		"tab providers false -1 tabpanel>tab-providers\ntab policy false -1 tabpanel>tab-policy"
	if tabs != wantTabs {
		t.Errorf("the tabs are not ARIA tabs:\n%s\nwant\n%s", tabs, wantTabs)
	}

	// Sign in with the keyboard: the focus goes to the panel's heading,
	// not back to the top of the page.
	run("sign in by keyboard",
		chromedp.SendKeys(chromedp.ID("token"), s.AdminToken+kb.Enter),
		chromedp.WaitVisible(chromedp.ID("live-list")),
		waitJS("the focus on the live panel's heading", `document.activeElement.matches("#panel-live h2")`),
		waitText("#stream-state", "stream: live"),
	)
	live := eval("live regions", `["stream-state", "live-dropped", "live-list"].map((id) => { const e = document.getElementById(id);
		return id + " " + e.getAttribute("role") + " " + e.getAttribute("aria-live"); }).join(", ")`)
	if live != "stream-state status null, live-dropped status null, live-list null null" {
		t.Errorf("the stream's state and the skipped-decisions notice are status regions, the stream is not: %s", live)
	}

	// ←/→ move along the tabs, Enter shows one, which becomes selected
	// and the only tab in the tab order; the page's title names it.
	run("the tabs by keyboard",
		chromedp.Focus(chromedp.ID("tab-live")),
		chromedp.KeyEvent(kb.ArrowRight),
		waitJS("the focus on the Try it tab", `document.activeElement.id === "tab-try"`),
		chromedp.KeyEvent(kb.ArrowLeft+kb.End),
		waitJS("End: the focus on the last tab", `document.activeElement.id === "tab-policy"`),
		chromedp.KeyEvent(kb.Home+kb.ArrowRight+kb.Enter),
		chromedp.WaitVisible(chromedp.ID("try-form")),
	)
	sel := eval("selected", `[...document.querySelectorAll("#tabs [role=tab]")].map((b) => b.dataset.tab + ":" + b.getAttribute("aria-selected") + ":" + b.tabIndex).join(" ") + " | " + document.title`)
	if !strings.Contains(sel, "live:false:-1 try:true:0 spend:false:-1") || !strings.Contains(sel, "| Try it · stellwerk console") {
		t.Errorf("after Enter on Try it: %s", sel)
	}

	// Send with the keyboard: the focus stays on Send while the answer is
	// on its way and after; the answer and the decision are announced.
	run("try it by keyboard",
		chromedp.SetValue(chromedp.ID("try-key"), secrets["a11y-one"]),
		chromedp.Focus(chromedp.ID("try-send")),
		chromedp.KeyEvent(kb.Enter),
		waitText("#try-result", "200"),
		waitText("#try-decision-status", "Its decision: 200"),
	)
	if f := eval("focus", focused); f != "BUTTON#try-send in try-form" {
		t.Errorf("after Send, the focus is on %s, not the Send button", f)
	}
	if r := eval("try regions", `document.getElementById("try-result").getAttribute("role") + " " + document.getElementById("try-decision-status").getAttribute("role")`); r != "status status" {
		t.Errorf("the try-it answer and decision are not status regions: %s", r)
	}

	// Spend, budgets, keys, routes: each panel's result is said in its
	// status line.
	chat := func(key string) {
		resp, b := post(t, s.URL+"/v1/chat/completions", `{"model":"auto","messages":[{"role":"user","content":"hello"}]}`,
			map[string]string{"Authorization": "Bearer " + secrets[key]})
		if resp.StatusCode != 200 {
			t.Fatalf("chat with %s: %d %s", key, resp.StatusCode, b)
		}
	}
	chat("a11y-two")
	chat("a11y-two")
	run("spend per key",
		chromedp.Click(chromedp.ID("tab-spend")),
		chromedp.SetValue(chromedp.ID("spend-by"), "key"),
		untilText("#spend-out", "a11y-two", chromedp.Click(chromedp.CSS("#spend-form button"))), // the ledger flushes every second
		waitText("#spend-status", "Spend shown: 1 day, 2 per key"),
	)
	// The day's amounts per key are text: the bar is an image named with
	// them (its coloured segments hidden), and a table gives day × key.
	bar := eval("the bar", `(() => { const b = document.querySelector("#spend-out .bar");
		return b.getAttribute("role") + "|" + b.getAttribute("aria-label") + "|" +
			[...b.querySelectorAll(".seg")].map((x) => x.getAttribute("aria-hidden")).join(","); })()`)
	if !regexp.MustCompile(`^img\|\d{4}-\d\d-\d\d: a11y-one €[0-9.]+, \d+ requests?; a11y-two €[0-9.]+, \d+ requests?\. Total €[0-9.]+\.\|true,true$`).MatchString(bar) {
		t.Errorf("the day's bar does not say its amounts per key: %q", bar)
	}
	run("the daily table", chromedp.Click(chromedp.CSS("#spend-out details.daily summary")), chromedp.WaitVisible(chromedp.CSS("#spend-out table.daily")))
	daily := eval("the daily table", `[...document.querySelectorAll("#spend-out table.daily tr")].map((r) =>
		[...r.children].map((c) => c.tagName + ":" + (c.getAttribute("scope") || "") + ":" + c.textContent.replace(/^\d{4}-\d\d-\d\d$/, "DAY").replace(/€[0-9.]+/g, "€n")).join(" ")).join("\n")`)
	if want := "TH:col:day TH:col:a11y-one TH:col:a11y-two TH:col:total\nTH:row:DAY TD::€n TD::€n TD::€n"; daily != want {
		t.Errorf("the daily table:\n%s\nwant\n%s", daily, want)
	}
	run("budgets",
		chromedp.Click(chromedp.ID("tab-budgets")),
		chromedp.SendKeys(chromedp.ID("budget-workspace"), "default"),
		chromedp.Click(chromedp.CSS("#budgets-form button")),
		waitText("#budgets-status", "1 budget shown: 0 exceeded"),
		chromedp.Click(chromedp.ID("tab-keys")),
		waitText("#keys-status", "2 keys."),
	)

	// Revoke: each button is named with its key; the question is written
	// and said, stays past the old silent 5 s, Escape withdraws it; once
	// revoked, the key's status cell has the focus.
	names := eval("names", `[...document.querySelectorAll("#keys-out button.revoke")].map((b) => b.getAttribute("aria-label")).join(", ")`)
	if names != "Revoke key a11y-one, Revoke key a11y-two" {
		t.Errorf("the revoke buttons are named %q", names)
	}
	two := `tr[data-key-id="a11y-two"] button.revoke`
	run("ask, and withdraw with Escape",
		chromedp.Focus(chromedp.CSS(two)),
		chromedp.KeyEvent(kb.Enter),
		waitText(two, "Confirm revoke"),
		waitText(`tr[data-key-id="a11y-two"] .revoke-hint`, "Press again to revoke key a11y-two"),
		waitText("#keys-status", "Press again to revoke key a11y-two"),
		chromedp.KeyEvent(kb.Escape),
		waitText(two, "Revoke"),
		waitText("#keys-status", "Key a11y-two not revoked."),
	)
	one := `tr[data-key-id="a11y-one"] button.revoke`
	run("ask", chromedp.Focus(chromedp.CSS(one)), chromedp.KeyEvent(kb.Enter), waitText(one, "Confirm revoke"))
	time.Sleep(5500 * time.Millisecond)
	if got := eval("after 5.5 s", `document.querySelector('`+one+`').textContent + "|" + document.querySelector('`+one+`').getAttribute("aria-label")`); got != "Confirm revoke|Confirm revoke of key a11y-one" {
		t.Errorf("5.5 s after the first press the button reads %q", got)
	}
	run("confirm",
		chromedp.KeyEvent(kb.Enter),
		waitText(`tr[data-key-id="a11y-one"] td[data-label="status"]`, "revoked"),
		waitText("#keys-status", "Key a11y-one revoked."),
		waitJS("the focus on the revoked key's status", `document.activeElement.matches('tr[data-key-id="a11y-one"] td[data-label="status"]')`),
	)
	// Versions: its heading below the table takes the focus.
	run("routes",
		chromedp.Click(chromedp.ID("tab-routes")),
		waitText("#routes-status", "1 route."),
		waitJS("the Versions button named with its route", `document.querySelector('tr[data-route="support"] button').getAttribute("aria-label") === "Versions of route support"`),
		click(`tr[data-route="support"] button`),
		waitJS("the focus on the versions' heading", `document.activeElement.matches("#route-detail h3")`),
	)
	// Every table's header cell has text (the button columns "Action",
	// visually hidden); every scroll region is named and takes the focus;
	// times carry their datetime.
	run("the keys again", chromedp.Click(chromedp.ID("tab-keys")), waitText("#keys-status", "2 keys."), chromedp.Click(chromedp.ID("tab-routes")),
		waitText("#routes-status", "1 route."), click(`tr[data-route="support"] button`), waitText("#route-detail", "Deploys"))
	if bad := eval("tables", `(() => { const bad = [];
		for (const sel of ["#keys-out", "#routes-out", "#route-detail", "#spend-out", "#budgets-out"])
			for (const th of document.querySelectorAll(sel + " th")) if (!th.textContent.trim()) bad.push(sel + " th " + th.cellIndex);
		for (const r of document.querySelectorAll(".scroll"))
			if (r.getAttribute("role") !== "region" || r.tabIndex !== 0 || !r.getAttribute("aria-label")) bad.push("scroll " + r.outerHTML.slice(0, 80));
		for (const sel of ["#keys-out td[data-label=created] time", "#route-detail time", "#live-list article.decision time"]) {
			const tm = document.querySelector(sel); if (!tm || isNaN(Date.parse(tm.getAttribute("datetime")))) bad.push(sel + " has no datetime"); }
		return bad.join("; "); })()`); bad != "" {
		t.Errorf("tables: %s", bad)
	}
	// A field's border stands out from the white panel by 3:1 at least.
	if c, _ := strconv.ParseFloat(eval("field border", `(() => { const lum = (c) => { const v = c.match(/\d+/g).slice(0, 3).map((x) => { x /= 255; return x <= 0.03928 ? x / 12.92 : ((x + 0.055) / 1.055) ** 2.4; });
		return 0.2126 * v[0] + 0.7152 * v[1] + 0.0722 * v[2]; };
		return (1.05 / (lum(getComputedStyle(document.getElementById("keys-filter-team")).borderTopColor) + 0.05)).toFixed(2); })()`), 64); c < 3 {
		t.Errorf("a field's border has %.2f:1 against white", c)
	}

	// Reduced motion: a new decision does not fade in. Forced colours: the
	// budget meter, its warn mark, the spend bars and the legend keep a
	// colour that is not the page's.
	run("reduced motion", media("prefers-reduced-motion", "reduce"), chromedp.Click(chromedp.ID("tab-live")))
	if a := eval("animation", `getComputedStyle(document.querySelector("#live-list article.decision")).animationName`); a != "none" {
		t.Errorf("with prefers-reduced-motion: reduce, a decision is animated: %s", a)
	}
	run("forced colours", media("forced-colors", "active"),
		chromedp.Click(chromedp.ID("tab-budgets")), chromedp.Click(chromedp.CSS("#budgets-form button")), chromedp.WaitVisible(chromedp.CSS("#budgets-out .meter")))
	paint := `(sel) => { const e = document.querySelector(sel); const cs = getComputedStyle(e);
		return sel + " " + cs.backgroundColor + " " + cs.borderTopWidth; }`
	meters := eval("meter", `(`+paint+`)("#budgets-out .meter .fill") + "|" + (`+paint+`)("#budgets-out .meter .mark")`)
	if edge := eval("meter", `getComputedStyle(document.querySelector("#budgets-out .meter")).borderTopWidth`); edge != "1px" {
		t.Errorf("in forced colours the meter has no outline: %q", edge)
	}
	run("forced colours, spend", chromedp.Click(chromedp.ID("tab-spend")), chromedp.WaitVisible(chromedp.CSS("#spend-out .bar .seg")))
	segs := eval("segments", `(`+paint+`)("#spend-out .bar .seg") + "|" + (`+paint+`)("#spend-out .legend i")`)
	for _, p := range strings.Split(meters+"|"+segs, "|") {
		if strings.Contains(p, "rgb(255, 255, 255)") || strings.Contains(p, "rgba(0, 0, 0, 0)") {
			t.Errorf("in forced colours %s: drawn as the background", p)
		}
	}
	run("normal colours", media("forced-colors", "none"))

	for _, id := range []string{"spend-status", "budgets-status", "keys-status", "routes-status", "key-secret"} {
		if r := eval("role", `document.getElementById("`+id+`").getAttribute("role")`); r != "status" {
			t.Errorf("#%s is not a status region: %s", id, r)
		}
	}

	// Sign out by keyboard: the token field takes the focus.
	run("sign out by keyboard",
		chromedp.Focus(chromedp.ID("logout")),
		chromedp.KeyEvent(kb.Enter),
		chromedp.WaitVisible(chromedp.ID("token")),
	)
	if f := eval("focus", focused); f != "INPUT#token in login-form" {
		t.Errorf("after signing out, the focus is on %s, not the token field", f)
	}
}

// media emulates a CSS media feature (forced-colors, prefers-reduced-motion).
func media(name, value string) chromedp.Action[chromedp.Void] {
	return chromedp.Func(func(ctx context.Context, tg *chromedp.Target) error {
		_, err := cdp.Call(ctx, tg, emulation.SetEmulatedMedia, emulation.SetEmulatedMediaParams{Features: []*emulation.MediaFeature{{Name: name, Value: value}}})
		return err
	})
}

// waitJS waits until the expression is true.
func waitJS(what, expr string) chromedp.Action[chromedp.Void] {
	return chromedp.Func(func(ctx context.Context, tg *chromedp.Target) error {
		for {
			ok, err := chromedp.Evaluate[bool](expr)(ctx, tg)
			if err == nil && ok {
				return nil
			}
			select {
			case <-ctx.Done():
				f, _ := chromedp.Evaluate[string](`document.activeElement ? document.activeElement.outerHTML.slice(0, 200) : "none"`)(context.Background(), tg)
				return fmt.Errorf("waiting for %s (%v; focus on %s): %w", what, err, f, ctx.Err())
			case <-time.After(50 * time.Millisecond):
			}
		}
	})
}
