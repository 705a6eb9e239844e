package e2e

import (
	"fmt"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/stellwerk/stellwerk/internal/config"
	"github.com/stellwerk/stellwerk/internal/harness"
	"github.com/stellwerk/stellwerk/internal/testsrv"
)

// TestConsoleKeysPages: the Keys tab shows the first 100 keys, "More
// keys" the next page, and its filters ask the server. It fetched every
// key and drew one table (50,000 keys: 48 s until the last row; the
// data-volume probe).
func TestConsoleKeysPages(t *testing.T) {
	t.Parallel()
	chromium := testsrv.Chromium(t)
	s := harness.Start(t, harness.Options{Mutate: func(c *config.Config) { c.Auth.Mode = "keys" }})
	for i := range 130 {
		if resp, b := adminDo(t, s, "POST", "/admin/keys", fmt.Sprintf(`{"id":"page-%03d","workspace":"default"}`, i)); resp.StatusCode != 201 {
			t.Fatalf("create: %d %s", resp.StatusCode, b)
		}
	}
	if resp, b := adminDo(t, s, "POST", "/admin/keys/page-120/revoke", ""); resp.StatusCode != 200 {
		t.Fatalf("revoke: %d %s", resp.StatusCode, b)
	}

	ctx, run := browser(t, chromium, 2*time.Minute)
	rows := func() int {
		t.Helper()
		n, err := chromedp.Run(ctx, chromedp.Evaluate[int](`document.querySelectorAll("#keys-out tbody tr").length`))
		if err != nil {
			t.Fatal(err)
		}
		return n
	}
	run("sign in, the Keys tab",
		chromedp.Navigate(s.AdminURL+"/console/"),
		chromedp.WaitVisible(chromedp.ID("token")),
		chromedp.SendKeys(chromedp.ID("token"), s.AdminToken),
		chromedp.Click(chromedp.ID("login-btn")),
		chromedp.WaitVisible(chromedp.ID("live-list")),
		chromedp.Click(chromedp.CSS(`#tabs button[data-tab="keys"]`)),
		waitText("#keys-count", "100 keys shown; more match."),
	)
	if n := rows(); n != 100 {
		t.Errorf("the first page has %d rows, want 100", n)
	}
	run("more keys", click("#keys-more"), waitText("#keys-count", "130 keys."), chromedp.WaitNotVisible(chromedp.ID("keys-more")),
		waitText(`tr[data-key-id="page-129"]`, "active"))
	if n := rows(); n != 130 {
		t.Errorf("after More keys: %d rows, want 130", n)
	}
	run("revoked keys only",
		chromedp.SetValue(chromedp.ID("keys-filter-status"), "revoked"),
		click(`#keys-filter button[type="submit"]`),
		waitText("#keys-count", "1 key."),
		waitText(`tr[data-key-id="page-120"]`, "revoked"))
	if n := rows(); n != 1 {
		t.Errorf("revoked: %d rows, want 1", n)
	}
}
