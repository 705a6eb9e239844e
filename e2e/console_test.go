package e2e

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/stellwerk/stellwerk/internal/auth"
	"github.com/stellwerk/stellwerk/internal/config"
	"github.com/stellwerk/stellwerk/internal/harness"
	"github.com/stellwerk/stellwerk/internal/mockllm"
	"github.com/stellwerk/stellwerk/internal/testsrv"
)

// ScreenshotsEnv, set to 1, makes TestConsole write the console's
// screenshots into docs/ (docs/console.md shows them); unset, CI leaves
// the tree clean.
const ScreenshotsEnv = "STELLWERK_SCREENSHOTS"

// TestConsole drives the console in headless Chromium against a real
// stack (Envoy, stellwerk with auth.mode keys, fake providers): sign in
// with the admin token, create a virtual key, see requests sent through
// Envoy with it appear in the live decision stream, send one from the
// try-it panel and see its decision, revoke the key in the console and
// see the next request with it refused (401). The admin token is in no
// log: the console never puts it in a URL.
func TestConsole(t *testing.T) {
	t.Parallel()
	chromium := testsrv.Chromium(t)
	const viewer = "view-console-e2e-0123456789"
	s := harness.Start(t, harness.Options{
		Mutate: func(c *config.Config) {
			c.Auth.Mode = "keys"
			c.Admin.Tokens = append(c.Admin.Tokens, config.AdminToken{ID: "dash", Role: config.RoleViewer, SHA256: auth.Hash(viewer)})
			c.Budgets.Limits = []config.BudgetRule{{Name: "default-daily", Scope: "workspace", Subject: "default",
				AmountEUR: 5, Period: "day", WarnAt: 0.5}}
			// A provider whose key is not set where stellwerk runs.
			c.Providers = append(c.Providers, config.Provider{Name: "keyless", BaseURL: "http://127.0.0.1:1/v1", Residency: "us",
				Credential: config.Credential{Env: "STELLWERK_TEST_KEY_NOT_SET"}})
			c.Models = append(c.Models, config.Model{ID: "keyless-model", Provider: "keyless", ContextWindow: 8000})
		},
	})

	ctx, run := browser(t, chromium, 3*time.Minute, chromedp.Flag("hide-scrollbars", true))
	text := func(sel string) string {
		t.Helper()
		step, done := context.WithTimeout(ctx, 30*time.Second)
		defer done()
		v, err := chromedp.Run(step, chromedp.Text(chromedp.CSS(sel)))
		if err != nil {
			t.Fatalf("text of %s: %v", sel, err)
		}
		return v
	}

	// Sign in.
	run("sign in",
		chromedp.Navigate(s.AdminURL+"/console/"),
		chromedp.WaitVisible(chromedp.ID("token")),
		chromedp.SendKeys(chromedp.ID("token"), s.AdminToken),
		chromedp.Click(chromedp.ID("login-btn")),
		chromedp.WaitVisible(chromedp.ID("live-list")),
		waitText("#stream-state", "stream: live"),
	)

	// A named route, live on the edge within a second.
	deployRoute(t, s, "route: support\nnodes:\n  - {id: main, model: alpha-model}\n")

	// Create a key in the Keys panel; its secret is shown once.
	run("create a key",
		chromedp.Click(chromedp.CSS(`#tabs button[data-tab="keys"]`)),
		chromedp.Click(chromedp.CSS("#key-create-box summary")),
		chromedp.SendKeys(chromedp.ID("key-id"), "console-e2e"),
		chromedp.SendKeys(chromedp.ID("key-models"), "alpha-model, beta-model"),
		chromedp.Click(chromedp.ID("key-create-btn")),
		chromedp.WaitVisible(chromedp.CSS(".secret-value")),
		chromedp.WaitVisible(chromedp.CSS(`tr[data-key-id="console-e2e"] button.revoke`)),
	)
	secret := text(".secret-value")
	if !strings.HasPrefix(secret, "sk-sw-") {
		t.Fatalf("secret shown: %q", secret)
	}
	auth := map[string]string{"Authorization": "Bearer " + secret}
	chat := func(body string) (int, string) {
		resp, b := post(t, s.URL+"/v1/chat/completions", body, auth)
		if resp.StatusCode != 200 && resp.StatusCode != 401 {
			t.Fatalf("chat: %d %s", resp.StatusCode, b)
		}
		return resp.StatusCode, resp.Header.Get("x-stellwerk-decision-id")
	}

	// Requests through Envoy appear in the live stream.
	run("live tab", chromedp.Click(chromedp.CSS(`#tabs button[data-tab="live"]`)))
	deadline := time.Now().Add(2 * time.Second) // the key store refreshes every 250ms
	status, id := chat(`{"model":"auto","messages":[{"role":"user","content":"hello"}]}`)
	for status != 200 && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
		status, id = chat(`{"model":"auto","messages":[{"role":"user","content":"hello"}]}`)
	}
	if status != 200 || id == "" {
		t.Fatalf("the console's new key: %d", status)
	}
	_, id2 := chat(`{"model":"auto","messages":[{"role":"user","content":"Write to jane.doe@example.com and call +49 30 1234567 about invoice 7."}]}`)
	_, id3 := chat(`{"model":"beta-model","messages":[{"role":"user","content":"Translate 'good morning' into German."}]}`)
	var id4 string // a deployed route is live on the edge within a second
	for deadline := time.Now().Add(3 * time.Second); id4 == "" && time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		resp, _ := post(t, s.URL+"/v1/chat/completions", `{"model":"route:support","messages":[{"role":"user","content":"Where is my parcel?"}]}`, auth)
		if resp.StatusCode == 200 {
			id4 = resp.Header.Get("x-stellwerk-decision-id")
		}
	}
	if id4 == "" {
		t.Fatal("route:support never answered")
	}
	run("the requests in the live stream",
		chromedp.WaitVisible(chromedp.CSS(fmt.Sprintf(`article.decision[data-id=%q]`, id))),
		chromedp.WaitVisible(chromedp.CSS(fmt.Sprintf(`article.decision[data-id=%q]`, id3))),
		chromedp.WaitVisible(chromedp.CSS(fmt.Sprintf(`article.decision[data-id=%q]`, id2))),
		waitText(fmt.Sprintf(`article.decision[data-id=%q]`, id4), "support@1"),
	)
	card := text(fmt.Sprintf(`article.decision[data-id=%q]`, id2))
	for _, want := range []string{"200", "workspace", "email", "candidates weighed", id2} {
		if !strings.Contains(card, want) {
			t.Errorf("the live card of %s lacks %q:\n%s", id2, want, card)
		}
	}
	if strings.Contains(card, "jane.doe") {
		t.Errorf("the live stream shows prompt text:\n%s", card)
	}
	run("open the candidates", chromedp.Click(chromedp.CSS(fmt.Sprintf(`article.decision[data-id=%q] summary`, id2))))
	// The record writes its candidates by columns; the table shows one row
	// per model, the chosen one marked.
	if v := text(fmt.Sprintf(`article.decision[data-id=%q] td span.verdict.chosen`, id2)); v != "chosen" {
		t.Errorf("the candidates table of %s marks no chosen model: %q", id2, v)
	}
	shoot(t, ctx, "console-desktop.png", 1280, 900)

	// The try-it panel sends a request through Envoy and shows its decision.
	run("try it",
		chromedp.Click(chromedp.CSS(`#tabs button[data-tab="try"]`)),
		chromedp.SendKeys(chromedp.ID("try-key"), secret),
		chromedp.Click(chromedp.ID("try-send")),
		chromedp.WaitVisible(chromedp.CSS("#try-decision article.decision")),
	)
	tried := text("#try-result")
	if !strings.Contains(tried, "200") || !strings.Contains(tried, "-model") {
		t.Errorf("try-it answer: %s", tried)
	}
	shoot(t, ctx, "console-try.png", 1280, 900)
	run("live tab", chromedp.Click(chromedp.CSS(`#tabs button[data-tab="live"]`)))
	shoot(t, ctx, "console-phone.png", 375, 812)
	run("desktop again", chromedp.EmulateViewport(1280, 900))

	// Spend per workspace, the budget with its threshold, the policy in force.
	run("spend",
		chromedp.Click(chromedp.CSS(`#tabs button[data-tab="spend"]`)),
		untilText("#spend-out", "default", chromedp.Click(chromedp.CSS("#spend-form button"))), // the ledger's writer flushes every second
		chromedp.WaitVisible(chromedp.CSS("#spend-out .bar .seg")),
	)
	shoot(t, ctx, "console-spend.png", 1280, 900)
	run("budgets and policy",
		chromedp.Click(chromedp.CSS(`#tabs button[data-tab="budgets"]`)),
		chromedp.SendKeys(chromedp.ID("budget-workspace"), "default"),
		chromedp.Click(chromedp.CSS(`#budgets-form button`)),
		waitText("#budgets-out table", "default-daily"),
		waitText("#budgets-out table", "50%"),
	)
	// The meter is drawn to scale (the page's CSP refuses style attributes:
	// widths are set through the CSSOM): a few thousandths of a euro of 5
	// fill almost nothing of it.
	fill, err := chromedp.Run(ctx, chromedp.Evaluate[float64](
		`(() => { const m = document.querySelector("#budgets-out .meter"); return m.querySelector(".fill").getBoundingClientRect().width / m.getBoundingClientRect().width; })()`))
	if err != nil || fill > 0.05 {
		t.Errorf("the budget meter is %.0f%% full for a nearly unused budget (%v)", 100*fill, err)
	}
	shoot(t, ctx, "console-budgets.png", 1280, 900)
	run("policy",
		chromedp.Click(chromedp.CSS(`#tabs button[data-tab="policy"]`)),
		waitText("#policy-out", "Last reload: accepted"),
	)

	// The route and its versions.
	run("routes",
		chromedp.Click(chromedp.CSS(`#tabs button[data-tab="routes"]`)),
		waitText(`tr[data-route="support"]`, "v1"),
		chromedp.Click(chromedp.CSS(`tr[data-route="support"] button`)),
		waitText("#route-detail", "v1 (live)"),
		waitText("#route-detail", "Traffic per version"),
	)

	// Every provider is listed with its health.
	run("providers",
		chromedp.Click(chromedp.CSS(`#tabs button[data-tab="providers"]`)),
		waitText(`tr[data-provider="alpha"]`, "healthy"),
		waitText(`tr[data-provider="beta"]`, "healthy"),
		// Not "healthy": every request to it is refused (found by a helper).
		waitText(`tr[data-provider="keyless"]`, "no credential configured"),
	)

	// Revoke the key in the console: the next request with it is refused.
	run("revoke",
		chromedp.Click(chromedp.CSS(`#tabs button[data-tab="keys"]`)),
		click(`tr[data-key-id="console-e2e"] button.revoke`),
		waitText(`tr[data-key-id="console-e2e"] button.revoke`, "Confirm revoke"),
		click(`tr[data-key-id="console-e2e"] button.revoke`),
		waitText(`tr[data-key-id="console-e2e"]`, "revoked"),
	)
	revokedAt := time.Now()
	for {
		if status, _ := chat(`{"model":"auto","messages":[{"role":"user","content":"hello"}]}`); status == 401 {
			break
		}
		if time.Since(revokedAt) > 2*time.Second {
			t.Fatalf("the key revoked in the console still works %s later", time.Since(revokedAt))
		}
		time.Sleep(10 * time.Millisecond)
	}
	t.Logf("refused %s after the revocation in the console", time.Since(revokedAt).Round(time.Millisecond))
	// The console's own try-it panel, with the same key, shows the refusal
	// and stays signed in.
	run("try the revoked key",
		chromedp.Click(chromedp.CSS(`#tabs button[data-tab="try"]`)),
		chromedp.Click(chromedp.ID("try-send")),
		waitText("#try-result", "invalid_api_key"),
		waitText("#try-result", "401"),
		chromedp.WaitVisible(chromedp.ID("app")),
	)

	// An answer that comes after the user signed out is not shown to the
	// next one (found with Chromium: it was written into the panel).
	resp, b := adminDo(t, s, "POST", "/admin/keys", `{"id":"slow-try","workspace":"default"}`)
	if resp.StatusCode != 201 {
		t.Fatalf("create: %d %s", resp.StatusCode, b)
	}
	var slow struct{ Secret string }
	mustJSON(t, b, &slow)
	waitFor(t, "the new key to be known", func() bool { // the key store refreshes every 250ms
		resp, _ := post(t, s.URL+"/v1/chat/completions", `{"model":"auto","messages":[{"role":"user","content":"hi"}]}`,
			map[string]string{"Authorization": "Bearer " + slow.Secret})
		return resp.StatusCode == 200
	})
	for _, p := range s.Providers {
		p.SetBehavior(mockllm.Behavior{FirstByteDelay: 1500 * time.Millisecond})
	}
	run("sign out while an answer is on its way",
		chromedp.SetValue(chromedp.ID("try-key"), slow.Secret),
		chromedp.SetValue(chromedp.ID("try-message"), "a prompt the next user must not see"),
		chromedp.Click(chromedp.ID("try-send")),
		waitText("#try-result", "sending"),
		chromedp.Click(chromedp.ID("logout")),
		chromedp.WaitVisible(chromedp.ID("token")),
		chromedp.Sleep(2500*time.Millisecond), // the answer has come meanwhile
	)
	for _, p := range s.Providers {
		p.SetBehavior(mockllm.Behavior{})
	}
	stale, err := chromedp.Run(ctx, chromedp.Evaluate[string](`document.getElementById("try-result").textContent + "|" + document.getElementById("try-message").value`))
	if err != nil || strings.Contains(stale, "200") || strings.Contains(stale, "must not see") {
		t.Errorf("after signing out, the tab shows the last user's try-it: %q %v", stale, err)
	}

	// A viewer sees the keys but is offered neither their changes nor the
	// try-it panel.
	run("sign in as a viewer", // signed out above
		chromedp.WaitVisible(chromedp.ID("token")),
		chromedp.SendKeys(chromedp.ID("token"), viewer),
		chromedp.Click(chromedp.ID("login-btn")),
		waitText("#who", "dash (viewer)"),
		chromedp.Click(chromedp.CSS(`#tabs button[data-tab="keys"]`)),
		waitText(`tr[data-key-id="console-e2e"]`, "revoked"),
		chromedp.WaitNotVisible(chromedp.ID("key-create-box")),
		chromedp.WaitNotVisible(chromedp.CSS(`#tabs button[data-tab="try"]`)),
	)
	// The admin's new key and the try-it key did not stay in the tab for
	// the next user.
	type leftBehind struct {
		Page   bool    `json:"page"`
		TryKey *string `json:"tryKey"`
		Input  string  `json:"input"`
	}
	left, err := chromedp.Run(ctx, chromedp.Evaluate[leftBehind](`({page: document.documentElement.innerHTML.includes(`+strconv.Quote(secret)+`),
		tryKey: sessionStorage.getItem("stellwerk.tryKey"), input: document.getElementById("try-key").value})`))
	if err != nil || left.Page || left.TryKey != nil || left.Input != "" {
		t.Errorf("after signing out, the next user's tab still holds the key: %+v %v", left, err)
	}

	if log := s.Log("stellwerk") + s.Log("envoy"); strings.Contains(log, s.AdminToken) || strings.Contains(log, viewer) || strings.Contains(log, secret[10:]) {
		t.Error("a log shows the admin token or the key's secret")
	}
}

// waitText waits until the element's text contains want. A panel
// re-renders while it is read (a node found, then replaced): such an error
// is retried like a text that does not match yet.
func waitText(sel, want string) chromedp.Action[chromedp.Void] {
	return chromedp.Func(func(ctx context.Context, tg *chromedp.Target) error {
		for {
			got, err := chromedp.Text(chromedp.CSS(sel))(ctx, tg)
			if err == nil && strings.Contains(got, want) {
				return nil
			}
			select {
			case <-ctx.Done():
				return fmt.Errorf("%s shows %q, not %q (%v): %w", sel, got, want, err, ctx.Err())
			case <-time.After(50 * time.Millisecond):
			}
		}
	})
}

// click clicks the element, again if the panel replaced it between the
// query and the click.
func click(sel string) chromedp.Action[chromedp.Void] {
	return chromedp.Func(func(ctx context.Context, tg *chromedp.Target) error {
		for {
			_, err := chromedp.Click(chromedp.CSS(sel))(ctx, tg)
			if err == nil || ctx.Err() != nil {
				return err
			}
			time.Sleep(50 * time.Millisecond)
		}
	})
}

// untilText repeats again (a click on a refresh button, say) until the
// element's text contains want.
func untilText(sel, want string, again chromedp.Action[chromedp.Void]) chromedp.Action[chromedp.Void] {
	return chromedp.Func(func(ctx context.Context, tg *chromedp.Target) error {
		for {
			got, err := chromedp.Text(chromedp.CSS(sel))(ctx, tg)
			if err == nil && strings.Contains(got, want) {
				return nil
			}
			select {
			case <-ctx.Done():
				return fmt.Errorf("%s shows %q, not %q (%v): %w", sel, got, want, err, ctx.Err())
			case <-time.After(300 * time.Millisecond):
			}
			if _, err := again(ctx, tg); err != nil {
				return err
			}
		}
	})
}

// shoot sets the viewport and, with STELLWERK_SCREENSHOTS=1, writes a
// screenshot of the whole page to docs/name.
func shoot(t *testing.T, ctx context.Context, name string, width, height int64) {
	t.Helper()
	step, done := context.WithTimeout(ctx, 30*time.Second)
	defer done()
	if err := chromedp.Do(step, chromedp.EmulateViewport(width, height)); err != nil {
		t.Fatalf("viewport %dx%d: %v", width, height, err)
	}
	time.Sleep(300 * time.Millisecond) // let the layout settle
	png, err := chromedp.Run(step, chromedp.FullScreenshot(100))
	if err != nil {
		t.Fatalf("screenshot %s: %v", name, err)
	}
	if os.Getenv(ScreenshotsEnv) != "1" {
		return
	}
	path := filepath.Join(harness.Root(), "docs", name)
	if err := os.WriteFile(path, png, 0o644); err != nil {
		t.Fatal(err)
	}
	t.Logf("wrote %s", path)
}

// browser starts headless Chromium (the binary testsrv.Chromium found)
// for a test, on a context that ends with the test or after timeout, and
// gives the context and run, which performs steps within 30 s and fails
// the test with the page's text when they do not complete.
func browser(t *testing.T, chromium string, timeout time.Duration, extra ...chromedp.ExecAllocatorOption) (context.Context, func(what string, steps ...chromedp.Action[chromedp.Void])) {
	t.Helper()
	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(chromium),
		chromedp.NoSandbox, // CI runs as root, where Chromium's sandbox cannot start
		chromedp.WindowSize(1280, 900),
		chromedp.Flag("disable-gpu", true),
	)
	actx, cancelAlloc := chromedp.NewExecAllocator(harness.Context(t), append(opts, extra...)...)
	t.Cleanup(cancelAlloc)
	ctx, cancel := chromedp.NewContext(actx, chromedp.WithLogf(t.Logf))
	t.Cleanup(cancel)
	ctx, cancelTimeout := context.WithTimeout(ctx, timeout)
	t.Cleanup(cancelTimeout)
	if err := chromedp.Do(ctx); err != nil { // starts the browser on the test-long context
		t.Fatalf("chromium: %v", err)
	}
	run := func(what string, steps ...chromedp.Action[chromedp.Void]) {
		t.Helper()
		step, done := context.WithTimeout(ctx, 30*time.Second)
		defer done()
		if err := chromedp.Do(step, steps...); err != nil {
			body, _ := chromedp.Run(ctx, chromedp.Text(chromedp.CSS("body")))
			t.Fatalf("%s: %v\npage text:\n%.2000s", what, err, body)
		}
	}
	return ctx, run
}
