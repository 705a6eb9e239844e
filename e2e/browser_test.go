package e2e

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/tidwall/gjson"

	"github.com/stellwerk/stellwerk/internal/auth"
	"github.com/stellwerk/stellwerk/internal/config"
	"github.com/stellwerk/stellwerk/internal/harness"
	"github.com/stellwerk/stellwerk/internal/testsrv"
)

// TestWebPagesCannotUseTheGateway: in open mode (the default) the
// gateway spends provider credit for whoever reaches it. A web page any
// user on the machine opened made the browser send it a paid request:
// cross-site, a POST whose body is text/plain or has no type needs no
// CORS preflight, and stellwerk took any type (the HTTP probe). A page
// that re-points its own name at 127.0.0.1 (DNS rebinding) is same-origin
// with the gateway and could read the answers. Both are refused now, in a
// real Chromium; what an API client sends still works, HTTP/1.0 too, and
// a key sent twice is that key (Envoy joins the headers with a comma,
// which read as one unknown key: the anonymous principal).
func TestWebPagesCannotUseTheGateway(t *testing.T) {
	t.Parallel()
	chromium := testsrv.Chromium(t)
	s := harness.Start(t, harness.Options{
		Mutate: func(c *config.Config) {
			c.Keys = append(c.Keys, config.Key{ID: "legal", Workspace: "legal", SHA256: auth.Hash("sk-browser-legal")})
			c.Workspaces = append(c.Workspaces, config.Workspace{Name: "legal"})
		},
	})
	chat := `{"model":"auto","messages":[{"role":"user","content":"from a web page"}]}`

	// The page of another origin (another port), as any site is.
	page := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/html")
		fmt.Fprintf(w, `<!doctype html><title>page</title><script>
const gw = %q, body = %q;
(async () => {
  const sent = [];
  for (const init of [
    {method: "POST", mode: "no-cors", headers: {"Content-Type": "text/plain"}, body},
    {method: "POST", mode: "no-cors", body: new Blob([body])},
    {method: "POST", mode: "no-cors", headers: {"Content-Type": "application/x-www-form-urlencoded"}, body},
  ]) {
    try { await fetch(gw + "/v1/chat/completions", init); sent.push("ok"); } catch (e) { sent.push(String(e)); }
  }
  document.title = "sent " + sent.join(",");
})();
</script>`, s.URL, chat)
	}))
	t.Cleanup(page.Close)

	port := s.URL[strings.LastIndexByte(s.URL, ':')+1:]
	ctx, run := browser(t, chromium, 2*time.Minute, chromedp.Flag("host-resolver-rules", "MAP rebind.test 127.0.0.1"))
	run("open the page", chromedp.Navigate(page.URL))
	var title string
	waitFor(t, "the page's requests", func() bool {
		title, _ = chromedp.Run(ctx, chromedp.Evaluate[string](`document.title`))
		return strings.HasPrefix(title, "sent")
	})
	if title != "sent ok,ok,ok" {
		t.Fatalf("the page's fetches: %q", title)
	}
	var refused int
	waitFor(t, "the refused requests' records", func() bool {
		refused = 0
		for _, r := range auditPage(t, s, "kind=decision&limit=100").Records {
			if gjson.GetBytes(r.Record, "error_code").Str == "unsupported_media_type" && gjson.GetBytes(r.Record, "status").Int() == 415 {
				refused++
			}
		}
		return refused >= 3
	})
	if n := providerRequests(s); n != 0 {
		t.Errorf("the providers got %d requests from the page", n)
	}

	// The rebinding page's own name, resolved to the gateway's address.
	run("the rebound name", chromedp.Navigate("http://rebind.test:"+port+"/v1/models"))
	text, err := chromedp.Run(ctx, chromedp.Text(chromedp.CSS("body")))
	if err != nil || !strings.Contains(text, "host_not_allowed") || strings.Contains(text, `"data"`) {
		t.Errorf("GET /v1/models as rebind.test: %v %.300s", err, text)
	}

	// API clients: JSON is served, by localhost too; another host is not.
	resp, b := post(t, s.URL+"/v1/chat/completions", chat, map[string]string{"Content-Type": "application/json; charset=utf-8"})
	if resp.StatusCode != 200 {
		t.Errorf("JSON: %d %s", resp.StatusCode, b)
	}
	// The provider is told what stellwerk read and sends.
	if reqs := s.Providers[gjson.GetBytes(b, "routing.provider").Str].Requests(); len(reqs) != 1 || reqs[0].Header.Get("Content-Type") != "application/json" {
		t.Errorf("the provider was sent content-type %q", reqs[len(reqs)-1].Header.Get("Content-Type"))
	}
	resp, b = post(t, "http://localhost:"+port+"/v1/chat/completions", chat, nil)
	if resp.StatusCode != 200 {
		t.Errorf("JSON to localhost: %d %s", resp.StatusCode, b)
	}
	other, _ := http.NewRequest(http.MethodPost, s.URL+"/v1/chat/completions", strings.NewReader(chat))
	other.Host = "gateway.attacker.example"
	other.Header.Set("Content-Type", "application/json")
	ro, err := http.DefaultClient.Do(other)
	if err != nil {
		t.Fatal(err)
	}
	b, _ = io.ReadAll(ro.Body)
	ro.Body.Close()
	if ro.StatusCode != 403 || !strings.Contains(string(b), "host_not_allowed") {
		t.Errorf("another Host: %d %s", ro.StatusCode, b)
	}

	// HTTP/1.0, as nginx speaks to an upstream by default.
	conn, err := net.Dial("tcp", strings.TrimPrefix(s.URL, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	fmt.Fprintf(conn, "GET /v1/models HTTP/1.0\r\nHost: 127.0.0.1:%s\r\n\r\n", port)
	r10, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		t.Fatalf("HTTP/1.0: %v", err)
	}
	b, _ = io.ReadAll(r10.Body)
	if r10.StatusCode != 200 || !strings.Contains(string(b), `"data"`) {
		t.Errorf("HTTP/1.0: %d %.200s", r10.StatusCode, b)
	}

	// A key sent twice is that key: its workspace, not the anonymous one.
	req, _ := http.NewRequest(http.MethodPost, s.URL+"/v1/chat/completions", strings.NewReader(chat))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Add("Authorization", "Bearer sk-browser-legal")
	req.Header.Add("Authorization", "Bearer sk-browser-legal")
	r2, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	b, _ = io.ReadAll(r2.Body)
	r2.Body.Close()
	if ws := gjson.GetBytes(b, "routing.workspace").Str; r2.StatusCode != 200 || ws != "legal" {
		t.Errorf("the key sent twice: %d, workspace %q", r2.StatusCode, ws)
	}
}

// providerRequests counts what every provider of a stack received.
func providerRequests(s *harness.Stack) int {
	n := 0
	for _, p := range s.Providers {
		n += len(p.Requests())
	}
	return n
}
