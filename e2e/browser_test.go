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

// TestBrowserAppsOfAllowedOrigins: envoy.cors.allow_origins lets a browser
// app of a listed origin call the gateway as the OpenAI JS SDK does
// (dangerouslyAllowBrowser): a JSON POST with its key, whose preflight
// Envoy answers before stellwerk authenticates anything. The app reads the
// answer, stellwerk's headers and stellwerk's own refusals (a 401 without
// Access-Control-Allow-Origin is a network error to the page). A page of
// any other origin gets no CORS header: its browser sends nothing after
// the preflight, and the provider gets nothing from it.
func TestBrowserAppsOfAllowedOrigins(t *testing.T) {
	t.Parallel()
	chromium := testsrv.Chromium(t)
	// One script, served by both origins' pages: it sends what the SDK
	// sends and puts what it could read in the title.
	var gw string
	const key = "sk-browser-app-0123456789"
	script := func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/html")
		fmt.Fprintf(w, `<!doctype html><title>page</title><script>
const gw = %q, key = %q;
const chat = JSON.stringify({model: "auto", messages: [{role: "user", content: "from a browser app"}]});
async function call(path, init) {
  try {
    const r = await fetch(gw + path, init);
    const b = await r.json();
    return {status: r.status, model: r.headers.get("x-stellwerk-model"), decision: r.headers.get("x-stellwerk-decision-id"),
      code: (b.error && b.error.code) || "", object: b.object || "", content: (b.choices && b.choices[0].message.content) || ""};
  } catch (e) { return {error: String(e)}; }
}
(async () => {
  const json = {"content-type": "application/json"};
  const out = {
    chat: await call("/v1/chat/completions", {method: "POST", headers: {...json, "authorization": "Bearer " + key,
      "x-stainless-lang": "js", "x-stainless-retry-count": "0", "openai-organization": "org"}, body: chat}),
    models: await call("/v1/models", {headers: {"authorization": "Bearer " + key}}),
    badKey: await call("/v1/chat/completions", {method: "POST", headers: {...json, "authorization": "Bearer sk-wrong"}, body: chat}),
  };
  try { // a stream, as the SDK reads it
    const r = await fetch(gw + "/v1/chat/completions", {method: "POST", headers: {...json, "authorization": "Bearer " + key},
      body: JSON.stringify({...JSON.parse(chat), stream: true})});
    const text = await r.text();
    out.stream = {status: r.status, done: text.includes("data: [DONE]"), requestID: r.headers.get("x-request-id")};
  } catch (e) { out.stream = {error: String(e)}; }
  document.title = "done " + JSON.stringify(out);
})();
</script>`, gw, key)
	}
	allowed := httptest.NewServer(http.HandlerFunc(script))
	t.Cleanup(allowed.Close)
	other := httptest.NewServer(http.HandlerFunc(script))
	t.Cleanup(other.Close)
	s := harness.Start(t, harness.Options{
		Mutate: func(c *config.Config) {
			c.Auth.Mode = "keys"
			c.Keys = append(c.Keys, config.Key{ID: "app", Workspace: "default", SHA256: auth.Hash(key)})
			c.Envoy.CORS.AllowOrigins = []string{allowed.URL}
		},
	})
	gw = s.URL

	ctx, run := browser(t, chromium, 2*time.Minute)
	open := func(page string) map[string]map[string]any {
		t.Helper()
		run("open "+page, chromedp.Navigate(page))
		var title string
		waitFor(t, "the page's requests", func() bool {
			title, _ = chromedp.Run(ctx, chromedp.Evaluate[string](`document.title`))
			return strings.HasPrefix(title, "done ")
		})
		var out map[string]map[string]any
		mustJSON(t, []byte(strings.TrimPrefix(title, "done ")), &out)
		return out
	}

	out := open(allowed.URL)
	if c := out["chat"]; c["status"] != 200.0 || c["model"] == nil || c["model"] == "" || c["decision"] == "" || c["content"] == "" {
		t.Errorf("the allowed origin's chat: %v", c)
	}
	if m := out["models"]; m["status"] != 200.0 || m["object"] != "list" {
		t.Errorf("the allowed origin's GET /v1/models: %v", m)
	}
	if b := out["badKey"]; b["status"] != 401.0 || b["code"] == "" {
		t.Errorf("the allowed origin reads stellwerk's refusal: %v", b)
	}
	if st := out["stream"]; st["status"] != 200.0 || st["done"] != true || st["requestID"] == nil || st["requestID"] == "" {
		t.Errorf("the allowed origin's stream: %v", st)
	}
	served := providerRequests(s)
	if served != 2 {
		t.Errorf("the providers got %d requests from the allowed origin, want 2", served)
	}

	out = open(other.URL)
	for name, r := range out {
		if r["error"] == nil {
			t.Errorf("another origin's %s was readable: %v", name, r)
		}
	}
	time.Sleep(500 * time.Millisecond)
	if n := providerRequests(s); n != served {
		t.Errorf("the providers got %d requests from another origin", n-served)
	}

	// What the browser saw, header by header.
	preflight := func(origin string) *http.Response {
		t.Helper()
		req, _ := http.NewRequest(http.MethodOptions, s.URL+"/v1/chat/completions", nil)
		req.Header.Set("Origin", origin)
		req.Header.Set("Access-Control-Request-Method", "POST")
		req.Header.Set("Access-Control-Request-Headers", "authorization,content-type,x-stainless-os")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		return resp
	}
	r := preflight(allowed.URL)
	if r.StatusCode != 200 || r.Header.Get("Access-Control-Allow-Origin") != allowed.URL ||
		!strings.Contains(r.Header.Get("Access-Control-Allow-Headers"), "authorization") ||
		!strings.Contains(r.Header.Get("Access-Control-Allow-Methods"), "POST") || r.Header.Get("Access-Control-Allow-Credentials") == "true" {
		t.Errorf("the allowed origin's preflight: %d %v", r.StatusCode, r.Header)
	}
	r = preflight(other.URL)
	if r.StatusCode == 200 || r.Header.Get("Access-Control-Allow-Origin") != "" {
		t.Errorf("another origin's preflight: %d %v", r.StatusCode, r.Header)
	}
	// An API client without an Origin is served as before, without CORS.
	resp, b := post(t, s.URL+"/v1/chat/completions", `{"model":"auto","messages":[{"role":"user","content":"hi"}]}`,
		map[string]string{"Authorization": "Bearer " + key})
	if resp.StatusCode != 200 || resp.Header.Get("Access-Control-Allow-Origin") != "" {
		t.Errorf("an API client: %d %v %s", resp.StatusCode, resp.Header, b)
	}
}
