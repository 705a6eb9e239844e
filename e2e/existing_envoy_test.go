package e2e

import (
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/stellwerk/stellwerk/internal/config"
	"github.com/stellwerk/stellwerk/internal/harness"
	"github.com/stellwerk/stellwerk/internal/header"
	"github.com/stellwerk/stellwerk/internal/mockllm"
)

var update = flag.Bool("update", false, "rewrite envoy/existing-envoy.yaml from the drop-in pieces")

// dropIn is envoy/drop-in.yaml: the pieces docs/envoy.md tells an operator
// to paste into their own Envoy.
type dropIn struct {
	HTTPFilter        any            `yaml:"http_filter"`
	Routes            []any          `yaml:"routes"`
	Clusters          []any          `yaml:"clusters"`
	LocalReplyMappers []any          `yaml:"local_reply_mappers"`
	DynamicResources  map[string]any `yaml:"dynamic_resources"`
}

// pasteDropIn pastes envoy/drop-in.yaml into e2e/testdata/user-envoy.yaml
// the way docs/envoy.md says, with stellwerk's routes before the operator's
// catch-all (first) or, as a careless paste would, after it. With
// llmDomain, the operator's virtual host (stellwerk's routes and the
// catch-all) serves that domain alone, beside a default one for every
// other domain with the catch-all only: a mesh's usual layout. edit, if
// set, changes the operator's connection manager after the paste.
func pasteDropIn(t *testing.T, backendPort int, routeFirst bool, llmDomain string, edit func(hcm map[string]any)) []byte {
	t.Helper()
	var di dropIn
	raw, err := os.ReadFile(filepath.Join(harness.Root(), "envoy", "drop-in.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	if err := yaml.Unmarshal(raw, &di); err != nil {
		t.Fatal(err)
	}
	if di.HTTPFilter == nil || len(di.Routes) != 2 || len(di.Clusters) != 2 || len(di.LocalReplyMappers) != 2 || di.DynamicResources == nil {
		t.Fatalf("envoy/drop-in.yaml lost a piece: %+v", di)
	}
	var user map[string]any
	src, err := os.ReadFile(filepath.Join("testdata", "user-envoy.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	src = []byte(strings.ReplaceAll(string(src), "BACKEND_PORT", strconv.Itoa(backendPort)))
	if err := yaml.Unmarshal(src, &user); err != nil {
		t.Fatal(err)
	}
	get := func(v any, path ...any) any {
		for _, p := range path {
			switch k := p.(type) {
			case string:
				v = v.(map[string]any)[k]
			case int:
				v = v.([]any)[k]
			}
		}
		return v
	}
	sr := user["static_resources"].(map[string]any)
	hcm := get(sr, "listeners", 0, "filter_chains", 0, "filters", 0, "typed_config").(map[string]any)
	hcm["http_filters"] = append([]any{di.HTTPFilter}, hcm["http_filters"].([]any)...)
	hcm["local_reply_config"] = map[string]any{"mappers": di.LocalReplyMappers}
	vh := get(hcm, "route_config", "virtual_hosts", 0).(map[string]any)
	if routeFirst {
		vh["routes"] = append(di.Routes, vh["routes"].([]any)...)
	} else {
		vh["routes"] = append(vh["routes"].([]any), di.Routes...)
	}
	if llmDomain != "" {
		vhs := get(hcm, "route_config", "virtual_hosts").([]any)
		catchAll := vhs[0].(map[string]any)["routes"].([]any)[len(vhs[0].(map[string]any)["routes"].([]any))-1]
		vh["name"], vh["domains"] = "llm", []any{llmDomain}
		hcm["route_config"].(map[string]any)["virtual_hosts"] = append(vhs, map[string]any{"name": "default", "domains": []any{"*"}, "routes": []any{catchAll}})
	}
	if edit != nil {
		edit(hcm)
	}
	sr["clusters"] = append(sr["clusters"].([]any), di.Clusters...)
	user["dynamic_resources"] = di.DynamicResources
	out, err := yaml.Marshal(user)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// existingEnvoy starts stellwerk in clusters mode behind an operator's Envoy
// built by pasteDropIn, and a backend that counts what reaches it.
//
// In clusters mode stellwerk requires a stream token
// (server.grpc_stream_token, from a file), and the pasted pieces carry it
// in place of the drop-in's placeholder: every drop-in test runs as
// docs/envoy.md recommends.
func existingEnvoy(t *testing.T, routeFirst bool, mutate func(*config.Config)) (*harness.Stack, *atomic.Int64) {
	return existingEnvoyAt(t, routeFirst, "", nil, mutate)
}

// streamTokenPlaceholder is the stream token's value in envoy/drop-in.yaml.
const streamTokenPlaceholder = "REPLACE_WITH_THE_STREAM_TOKEN"

// existingEnvoyAt is existingEnvoy with stellwerk's routes under a virtual
// host for llmDomain, and edit's changes to the operator's connection
// manager (pasteDropIn).
func existingEnvoyAt(t *testing.T, routeFirst bool, llmDomain string, edit func(hcm map[string]any), mutate func(*config.Config)) (*harness.Stack, *atomic.Int64) {
	t.Helper()
	var hits atomic.Int64
	backend := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hits.Add(1)
		io.WriteString(w, "existing service\n")
	}))
	t.Cleanup(backend.Close)
	port := backend.Listener.Addr().(interface{ String() string }).String()
	bp, _ := strconv.Atoi(port[strings.LastIndexByte(port, ':')+1:])
	cfg := pasteDropIn(t, bp, routeFirst, llmDomain, edit)
	if routeFirst && llmDomain == "" && edit == nil {
		head := "# GENERATED by `go test ./e2e -run TestExistingEnvoy -update`: an operator's Envoy\n" +
			"# (e2e/testdata/user-envoy.yaml) with envoy/drop-in.yaml pasted in as docs/envoy.md\n" +
			"# says. Runnable with `stellwerk serve` in envoy.mode: clusters.\n"
		want := head + strings.ReplaceAll(string(cfg), "port_value: "+strconv.Itoa(bp), "port_value: 8080")
		file := filepath.Join(harness.Root(), "envoy", "existing-envoy.yaml")
		if *update {
			if err := os.WriteFile(file, []byte(want), 0o644); err != nil {
				t.Fatal(err)
			}
		} else if got, err := os.ReadFile(file); err != nil || string(got) != want {
			// It had drifted from the drop-in (no circuit breakers).
			t.Errorf("envoy/existing-envoy.yaml is not envoy/drop-in.yaml pasted in: run make testdata (%v)", err)
		}
	}
	dir := t.TempDir()
	tb := make([]byte, 32)
	rand.Read(tb)
	token := hex.EncodeToString(tb)
	tokenFile := filepath.Join(dir, "stream-token")
	if err := os.WriteFile(tokenFile, []byte(token+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if n := strings.Count(string(cfg), streamTokenPlaceholder); n != 2 {
		t.Fatalf("envoy/drop-in.yaml has the stream token's placeholder %d times, want 2 (ext_proc and ADS)", n)
	}
	cfg = []byte(strings.ReplaceAll(string(cfg), streamTokenPlaceholder, token))
	path := filepath.Join(dir, "existing-envoy.yaml")
	if err := os.WriteFile(path, cfg, 0o600); err != nil {
		t.Fatal(err)
	}
	ready := 200
	if !routeFirst || llmDomain != "" {
		ready = 500 // stellwerk refuses what reaches it through another route (the readiness check's host is not llmDomain)
	}
	s := harness.Start(t, harness.Options{Bootstrap: path, ReadyStatus: ready, Mutate: func(c *config.Config) {
		c.Envoy.Mode = config.ModeClusters
		c.Server.GRPCStreamToken = config.SecretSource{File: tokenFile}
		if mutate != nil {
			mutate(c)
		}
		if c.Envoy.Mode != config.ModeClusters {
			c.Server.GRPCStreamToken = config.SecretSource{} // clusters mode only
		}
	}})
	return s, &hits
}

// TestExistingEnvoy: the drop-in pieces pasted in front of the operator's
// catch-all route. LLM traffic is routed by stellwerk and never reaches the
// existing backend; the existing routes are untouched.
func TestExistingEnvoy(t *testing.T) {
	t.Parallel()
	s, hits := existingEnvoy(t, true, nil)
	alpha, beta := s.Providers["alpha"], s.Providers["beta"]

	resp, b := post(t, s.URL+"/v1/chat/completions", `{"model":"beta-model","messages":[{"role":"user","content":"via the mesh"}]}`,
		map[string]string{"x-stellwerk-cluster": "provider_alpha", "x-request-id": "client-chosen"})
	if resp.StatusCode != 200 || resp.Header.Get("x-stellwerk-provider") != "beta" {
		t.Fatalf("status %d provider %q: %s", resp.StatusCode, resp.Header.Get("x-stellwerk-provider"), b)
	}
	if len(beta.Requests()) != 1 || len(alpha.Requests()) != 0 || hits.Load() != 0 {
		t.Fatalf("alpha %d, beta %d, existing backend %d requests", len(alpha.Requests()), len(beta.Requests()), hits.Load())
	}
	if got := beta.Requests()[0].Header.Get("Authorization"); got != "Bearer "+beta.Key {
		t.Errorf("credential %q", got)
	}
	// The operator's connection manager as docs/envoy.md asks: no client
	// is internal, so Envoy gives the request its own id.
	if id := beta.Requests()[0].Header.Get("X-Request-Id"); id == "" || id == "client-chosen" {
		t.Errorf("x-request-id %q at the provider, want Envoy's own", id)
	}

	// The existing route is served as before, stellwerk is not consulted;
	// a spoofed routing header does not divert it to a provider: stellwerk
	// reads every request that carries one, and this is no URL of its own.
	r, err := http.Get(s.URL + "/status")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(r.Body)
	r.Body.Close()
	if r.StatusCode != 200 || strings.TrimSpace(string(body)) != "existing service" || r.Header.Get("x-stellwerk-decision-id") != "" {
		t.Errorf("existing route: %d %q %v", r.StatusCode, body, r.Header)
	}
	req, _ := http.NewRequest(http.MethodGet, s.URL+"/status", nil)
	req.Header.Set("x-stellwerk-cluster", "provider_alpha")
	if r, err = http.DefaultClient.Do(req); err != nil {
		t.Fatal(err)
	}
	body, _ = io.ReadAll(r.Body)
	r.Body.Close()
	if r.StatusCode != 404 || !strings.Contains(string(body), "unknown_url") {
		t.Errorf("existing route with a routing header: %d %q", r.StatusCode, body)
	}
	if len(alpha.Requests()) != 0 {
		t.Errorf("spoofed header reached alpha")
	}

	r, err = http.Get(s.URL + "/v1/models")
	if err != nil {
		t.Fatal(err)
	}
	body, _ = io.ReadAll(r.Body)
	r.Body.Close()
	if r.StatusCode != 200 || !strings.Contains(string(body), `"beta-model"`) {
		t.Errorf("models via existing Envoy: %d %s", r.StatusCode, body)
	}

	// An LLM path in another case or with an escaped slash, which a
	// backend that decodes it reads as /v1/…, is stellwerk's unknown URL:
	// it reached the catch-all's backend with the client's key and body
	// unchecked (the red-team probe).
	before := hits.Load()
	for _, path := range []string{"/V1/chat/completions", "/v1%2Fchat/completions", "/v1%2fchat%2fcompletions", "/V1%2Fchat/completions"} {
		resp, b := post(t, s.URL+path, `{"model":"auto","messages":[{"role":"user","content":"my key AKIAIOSFODNN7EXAMPLE"}]}`, nil)
		if resp.StatusCode != 404 || !strings.Contains(string(b), "unknown_url") {
			t.Errorf("%s: %d %s", path, resp.StatusCode, b)
		}
	}
	if n := hits.Load() - before; n != 0 {
		t.Errorf("the existing backend got %d LLM requests", n)
	}
}

// TestDropInUnderADomain: Envoy matches a request's route again after
// stellwerk's answer. With stellwerk's routes under a virtual host for the
// gateway's domain beside a default one, the provider's host took every LLM
// request to the default virtual host's backend, and a provider whose path
// is not under /v1/ (Groq's /openai/v1) to the catch-all: 200s the routing
// object said a provider served, prompts at an unrelated service (the
// mesh-integrator probe). Now both reach their provider, with its host, and
// the header that carried it goes no further. The paths a backend may read
// as /v1/ (a path parameter, an escaped backslash, an escaped percent sign)
// are stellwerk's unknown URLs; a client's routing header on another path
// chooses no cluster.
func TestDropInUnderADomain(t *testing.T) {
	t.Parallel()
	s, hits := existingEnvoyAt(t, true, "llm.example", nil, func(c *config.Config) {
		for i := range c.Providers {
			if c.Providers[i].Name == "beta" {
				c.Providers[i].BaseURL = strings.TrimSuffix(c.Providers[i].BaseURL, "/v1") + "/openai/v1"
			}
		}
	})
	alpha, beta := s.Providers["alpha"], s.Providers["beta"]
	send := func(path, host, body string, hs map[string]string) (int, string) {
		req, _ := http.NewRequest(http.MethodPost, s.URL+path, strings.NewReader(body))
		req.Host = host
		req.Header.Set("Content-Type", "application/json")
		for k, v := range hs {
			req.Header.Set(k, v)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	for model, p := range map[string]*harness.Provider{"alpha-model": alpha, "beta-model": beta} {
		before := len(p.Requests())
		code, b := send("/v1/chat/completions", "llm.example", `{"model":"`+model+`","messages":[{"role":"user","content":"confidential prompt"}]}`, nil)
		if code != 200 || len(p.Requests()) != before+1 {
			t.Fatalf("%s: %d %s; the provider got %d requests, want %d", model, code, b, len(p.Requests()), before+1)
		}
		got := p.Requests()[before]
		want := strings.TrimSuffix(strings.TrimPrefix(p.URL, "http://"), "/v1")
		if got.Host != want || got.Header.Get(header.Host) != "" || got.Header.Get(header.Cluster) != "" {
			t.Errorf("%s: Host %q (want %q), %s %q, %s %q at the provider", model, got.Host, want,
				header.Host, got.Header.Get(header.Host), header.Cluster, got.Header.Get(header.Cluster))
		}
		if model == "beta-model" && got.Path != "/openai/v1/chat/completions" {
			t.Errorf("beta's path %q", got.Path)
		}
	}
	if n := hits.Load(); n != 0 {
		t.Fatalf("the existing backend got %d LLM requests", n)
	}
	// The other domains and paths are the operator's, as before.
	if code, b := send("/api/x", "other.example", `{}`, nil); code != 200 || strings.TrimSpace(b) != "existing service" {
		t.Errorf("the default virtual host: %d %s", code, b)
	}
	before := hits.Load()
	for _, path := range []string{"/v1;/chat/completions", "/v1%5Cchat/completions", "/v1%5cchat/completions", "/v1%252Fchat/completions"} {
		code, b := send(path, "llm.example", `{"model":"auto","messages":[{"role":"user","content":"my key AKIAIOSFODNN7EXAMPLE"}]}`, nil)
		if code != 404 || !strings.Contains(b, "unknown_url") {
			t.Errorf("%s: %d %s", path, code, b)
		}
	}
	// A client's routing header on the operator's own path chooses no
	// cluster: the filter runs on every request that carries it.
	for _, host := range []string{"llm.example", "other.example"} {
		code, b := send("/api/x", host, `{}`, map[string]string{header.Cluster: "provider_alpha", header.Host: "evil.example"})
		if code == 200 && strings.TrimSpace(b) != "existing service" {
			t.Errorf("%s: a client's routing header: %d %s", host, code, b)
		}
	}
	if n := hits.Load() - before; n > 2 {
		t.Errorf("the existing backend got %d LLM requests", n)
	}
	if len(alpha.Requests()) != 1 {
		t.Errorf("alpha got %d requests, want 1", len(alpha.Requests()))
	}
}

// TestDropInPastedBeforeStillRoutes: an operator who pasted the drop-in
// before it had the stellwerk_routed route (one route, /v1/; its filter
// sends no x-stellwerk-drop-in) keeps being served after upgrading
// stellwerk, each provider with its own Host: stellwerk rewrites
// :authority for it, as before.
func TestDropInPastedBeforeStillRoutes(t *testing.T) {
	t.Parallel()
	s, hits := existingEnvoyAt(t, true, "", func(hcm map[string]any) {
		vh := hcm["route_config"].(map[string]any)["virtual_hosts"].([]any)[0].(map[string]any)
		routes := vh["routes"].([]any)
		if routes[0].(map[string]any)["name"] != header.DropInRoutedRoute {
			t.Fatalf("the first route is %v", routes[0])
		}
		vh["routes"] = routes[1:]
		// Nor did its filter say its version.
		gs := hcm["http_filters"].([]any)[0].(map[string]any)["typed_config"].(map[string]any)["extension_config"].(map[string]any)["typed_config"].(map[string]any)["grpc_service"].(map[string]any)
		var md []any
		for _, e := range gs["initial_metadata"].([]any) {
			if e.(map[string]any)["key"] != header.DropIn {
				md = append(md, e)
			}
		}
		if len(md) == len(gs["initial_metadata"].([]any)) {
			t.Fatalf("no %s in %v", header.DropIn, gs)
		}
		gs["initial_metadata"] = md
	}, nil)
	for model, p := range map[string]*harness.Provider{"alpha-model": s.Providers["alpha"], "beta-model": s.Providers["beta"]} {
		before := len(p.Requests())
		resp, b := post(t, s.URL+"/v1/chat/completions", `{"model":"`+model+`","messages":[{"role":"user","content":"hi"}]}`, nil)
		if resp.StatusCode != 200 || len(p.Requests()) != before+1 {
			t.Fatalf("%s: %d %s", model, resp.StatusCode, b)
		}
		got := p.Requests()[before]
		if want := strings.TrimSuffix(strings.TrimPrefix(p.URL, "http://"), "/v1"); got.Host != want || got.Header.Get(header.Host) != "" {
			t.Errorf("%s: Host %q, want %q; %s %q", model, got.Host, want, header.Host, got.Header.Get(header.Host))
		}
	}
	if hits.Load() != 0 {
		t.Errorf("the existing backend got %d LLM requests", hits.Load())
	}
}

// TestSecurityDropInFailsClosed: before, following docs/envoy.md literally
// sent chat requests to the operator's catch-all route (ext_proc off there)
// and on to its backend, unchecked. Now the drop-in pasted even behind the
// catch-all refuses them with an OpenAI-shaped error, and the backend sees
// none; an unreachable provider answers in the OpenAI shape too.
func TestSecurityDropInFailsClosed(t *testing.T) {
	t.Parallel()
	s, hits := existingEnvoy(t, false, func(c *config.Config) {
		c.Providers = append(c.Providers, config.Provider{Name: "gone", BaseURL: "http://127.0.0.1:9/v1", Residency: "us"})
		c.Models = append(c.Models, config.Model{ID: "gone-model", Provider: "gone", ContextWindow: 1000})
	})
	for _, model := range []string{"alpha-model", "auto"} {
		resp, b := post(t, s.URL+"/v1/chat/completions", fmt.Sprintf(`{"model":%q,"messages":[{"role":"user","content":"x"}]}`, model), nil)
		if e := decodeError(t, b); resp.StatusCode != 500 || e.Error.Code != "gateway_misconfigured" {
			t.Errorf("%s behind the catch-all: status %d %s", model, resp.StatusCode, b)
		}
	}
	if hits.Load() != 0 || len(s.Providers["alpha"].Requests()) != 0 {
		t.Fatalf("a chat request reached the existing backend (%d) or a provider (%d)", hits.Load(), len(s.Providers["alpha"].Requests()))
	}
	// The rest of the operator's traffic is untouched.
	if r, err := http.Get(s.URL + "/status"); err != nil || r.StatusCode != 200 || hits.Load() != 1 {
		t.Errorf("existing route: %v %v", r, err)
	}
}

// TestDropInProviderDownIsOpenAIShaped: in an operator's Envoy, a provider
// that cannot be reached got Envoy's plain-text "upstream connect error";
// now the client gets the OpenAI error shape.
func TestDropInProviderDownIsOpenAIShaped(t *testing.T) {
	t.Parallel()
	s, _ := existingEnvoy(t, true, func(c *config.Config) {
		c.Providers = append(c.Providers, config.Provider{Name: "gone", BaseURL: "http://127.0.0.1:9/v1", Residency: "us"})
		c.Models = append(c.Models, config.Model{ID: "gone-model", Provider: "gone", ContextWindow: 1000})
	})
	resp, b := post(t, s.URL+"/v1/chat/completions", `{"model":"gone-model","messages":[{"role":"user","content":"x"}]}`, nil)
	if e := decodeError(t, b); resp.StatusCode != 503 || e.Error.Code != "provider_unavailable" || resp.Header.Get("content-type") != "application/json" {
		t.Errorf("provider down: status %d %v %s", resp.StatusCode, resp.Header, b)
	}
}

// TestDropInStellwerkDownIsOpenAIShaped: with stellwerk unreachable, the
// drop-in fails closed (nothing reaches a provider or the operator's
// backend) and its local-reply mapper gives the answer the OpenAI shape
// instead of Envoy's empty 500.
func TestDropInStellwerkDownIsOpenAIShaped(t *testing.T) {
	t.Parallel()
	s, hits := existingEnvoy(t, true, nil)
	s.Stop("stellwerk")
	var last string
	shaped := false
	for attempt := 0; attempt < 10 && !shaped; attempt++ {
		resp, b := post(t, s.URL+"/v1/chat/completions", `{"model":"alpha-model","messages":[{"role":"user","content":"x"}]}`, nil)
		if resp.StatusCode < 500 {
			t.Fatalf("status %d with stellwerk down: %s", resp.StatusCode, b)
		}
		var e apiError
		shaped = json.Unmarshal(b, &e) == nil && resp.StatusCode == 503 && e.Error.Code == "router_unavailable" && resp.Header.Get("retry-after") == "1"
		last = fmt.Sprintf("%d retry-after %q %s", resp.StatusCode, resp.Header.Get("retry-after"), b)
		time.Sleep(200 * time.Millisecond)
	}
	if !shaped {
		t.Errorf("never answered 503 router_unavailable; last answer: %s", last)
	}
	if hits.Load() != 0 || len(s.Providers["alpha"].Requests()) != 0 {
		t.Errorf("with stellwerk down a request reached the backend (%d) or a provider", hits.Load())
	}
}

// TestDropInRouterKilledMidAnswer: stellwerk killed after the request
// left for the provider: the drop-in's first mapper says so, with
// x-should-retry: false and no Retry-After, as the listener stellwerk
// pushes does; it said "not sent" and, since Retry-After: 1, invited a
// retry of a request that may have been billed (the red team).
func TestDropInRouterKilledMidAnswer(t *testing.T) {
	t.Parallel()
	s, _ := existingEnvoy(t, true, nil)
	s.Providers["alpha"].SetBehavior(mockllm.Behavior{FirstByteDelay: 3 * time.Second})
	type answer struct {
		status    int
		body      []byte
		retry, ra string
	}
	done := make(chan answer, 1)
	go func() {
		resp, b := post(t, s.URL+"/v1/chat/completions", `{"model":"alpha-model","messages":[{"role":"user","content":"hi"}]}`, nil)
		done <- answer{resp.StatusCode, b, resp.Header.Get("x-should-retry"), resp.Header.Get("retry-after")}
	}()
	waitFor(t, "the provider to get the request", func() bool { return len(s.Providers["alpha"].Requests()) == 1 })
	s.Kill("stellwerk")
	a := <-done
	var e apiError
	if json.Unmarshal(a.body, &e) != nil || a.status != 503 || e.Error.Code != "router_unavailable" || a.retry != "false" || a.ra != "" ||
		!strings.Contains(e.Error.Message, "after the request was sent to a provider") {
		t.Errorf("killed after the request left: %d x-should-retry %q retry-after %q %s", a.status, a.retry, a.ra, a.body)
	}
}

// TestSeveralEnvoys (issue 17): a second Envoy with its own node id
// connects to the same stellwerk and routes as the first; /status lists
// both nodes with the version each accepted; an Envoy that restarts
// reconnects and gets the current version, and a config change made while
// it was down.
func TestSeveralEnvoys(t *testing.T) {
	t.Parallel()
	s, _ := existingEnvoy(t, true, nil)
	url2, _ := s.StartEnvoy("envoy-2", "edge-2")
	for _, u := range []string{s.URL, url2} {
		resp, b := post(t, u+"/v1/chat/completions", `{"model":"beta-model","messages":[{"role":"user","content":"hi"}]}`, nil)
		if resp.StatusCode != 200 || resp.Header.Get("x-stellwerk-provider") != "beta" {
			t.Fatalf("%s: %d %s", u, resp.StatusCode, b)
		}
	}
	nodes := func() map[string]string {
		var st struct {
			Nodes []struct {
				Node         string `json:"node"`
				AckedVersion string `json:"acked_version"`
			} `json:"envoy_nodes"`
		}
		resp, b := adminDo(t, s, http.MethodGet, "/status", "")
		if resp.StatusCode != 200 {
			t.Fatalf("/status: %d", resp.StatusCode)
		}
		mustJSON(t, b, &st)
		out := map[string]string{}
		for _, n := range st.Nodes {
			out[n.Node] = n.AckedVersion
		}
		return out
	}
	version := func() string {
		var st struct {
			Version string `json:"snapshot_version"`
		}
		_, b := adminDo(t, s, http.MethodGet, "/status", "")
		mustJSON(t, b, &st)
		return st.Version
	}
	waitAcked := func(node, v string) {
		t.Helper()
		for deadline := time.Now().Add(10 * time.Second); nodes()[node] != v; time.Sleep(50 * time.Millisecond) {
			if time.Now().After(deadline) {
				t.Fatalf("node %s acked %q, want %q (all: %v)", node, nodes()[node], v, nodes())
			}
		}
	}
	v1 := version()
	waitAcked("existing-envoy", v1)
	waitAcked("edge-2", v1)

	// The second Envoy goes away; the config changes (a provider's
	// timeout); it comes back and gets the new version.
	s.Stop("envoy-2")
	cfg := *s.Config
	cfg.Envoy.ConnectTimeout = 7 * time.Second
	s.WriteConfig(&cfg)
	deadline := time.Now().Add(15 * time.Second)
	for version() == v1 {
		if time.Now().After(deadline) {
			t.Fatal("the config change was not published")
		}
		time.Sleep(100 * time.Millisecond)
	}
	v2 := version()
	s.RestartProcess("envoy-2")
	waitAcked("edge-2", v2)
	waitAcked("existing-envoy", v2)
	resp, b := post(t, url2+"/v1/chat/completions", `{"model":"beta-model","messages":[{"role":"user","content":"back"}]}`, nil)
	if resp.StatusCode != 200 {
		t.Fatalf("restarted Envoy: %d %s", resp.StatusCode, b)
	}
	t.Logf("two Envoys (existing-envoy, edge-2) on one stellwerk; edge-2 restarted after a change and acked %s", v2)
}

// TestDropInWithStandaloneIsSaid: stellwerk left in envoy.mode standalone
// behind the drop-in pieces says so in its log: the Envoy takes its
// clusters and no listeners, and every auto request would fail over to
// listeners it never asked for (the SRE probe: nothing said so).
func TestDropInWithStandaloneIsSaid(t *testing.T) {
	t.Parallel()
	// A standalone Envoy of a standalone stellwerk, checked below: started
	// first, so its checks run while the drop-in stack starts.
	st := harness.Start(t, harness.Options{})
	checked := time.Now().Add(3 * envoyModeCheck)
	s, _ := existingEnvoy(t, true, func(c *config.Config) { c.Envoy.Mode = config.ModeStandalone })
	waitFor(t, "the log's warning", func() bool {
		return strings.Contains(s.Log("stellwerk"), "an Envoy takes stellwerk's clusters but no listeners")
	})
	if n := strings.Count(s.Log("stellwerk"), "an Envoy takes stellwerk's clusters but no listeners"); n != 1 {
		t.Errorf("said %d times, want once", n)
	}
	// The standalone stack has nothing to say.
	time.Sleep(time.Until(checked))
	if strings.Contains(st.Log("stellwerk"), "but no listeners") {
		t.Errorf("a standalone stack warned")
	}
}

// envoyModeCheck is how often stellwerk compares connected Envoys with
// envoy.mode (internal/serve: envoyModeInterval).
const envoyModeCheck = 2 * time.Second
