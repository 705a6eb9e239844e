// Package e2e proves stellwerk's behaviour through a real Envoy, the real
// stellwerk binary and fake providers (see internal/harness).
package e2e

import (
	"encoding/json"
	"fmt"
	"io"
	"math"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stellwerk/stellwerk/internal/config"
	"github.com/stellwerk/stellwerk/internal/harness"
)

// twoProviders is the common stack: alpha (us) and beta (eu) with their own
// keys, plus gamma whose key is declared but missing.
func twoProviders(t *testing.T) *harness.Stack {
	return harness.Start(t, harness.Options{
		Providers: []harness.ProviderSpec{
			{Name: "alpha", Key: "sk-alpha-secret"},
			{Name: "beta", Key: "sk-beta-secret", Residency: "eu"},
			{Name: "gamma", WithholdKey: true},
		},
		Models: []config.Model{
			{ID: "alpha-small", Provider: "alpha", ProviderModel: "alpha-upstream-small", ContextWindow: 8000,
				Price: config.Price{InputPerMTok: 3, OutputPerMTok: 7}},
			{ID: "beta-large", Provider: "beta", ProviderModel: "beta-upstream-large", ContextWindow: 8000},
			{ID: "gamma-any", Provider: "gamma", ContextWindow: 8000},
		},
		DefaultModel: "beta-large",
		Mutate:       func(c *config.Config) { c.Envoy.MaxRequestBytes = 64 << 10 },
	})
}

func TestRouting(t *testing.T) {
	t.Parallel()
	s := twoProviders(t)
	alpha, beta, gamma := s.Providers["alpha"], s.Providers["beta"], s.Providers["gamma"]
	chatURL := s.URL + "/v1/chat/completions"

	t.Run("pinned model reaches its provider rewritten", func(t *testing.T) {
		alpha.Reset()
		body := `{"model":"alpha-small","messages":[{"role":"user","content":"ping from the test"}]}`
		resp, b := post(t, chatURL, body, nil)
		if resp.StatusCode != 200 {
			t.Fatalf("status %d: %s", resp.StatusCode, b)
		}
		var out struct {
			Model   string `json:"model"`
			Choices []struct {
				Message struct{ Content string } `json:"message"`
			} `json:"choices"`
			Usage struct {
				PromptTokens     int `json:"prompt_tokens"`
				CompletionTokens int `json:"completion_tokens"`
			} `json:"usage"`
			Routing struct {
				DecisionID string         `json:"decision_id"`
				Model      string         `json:"model"`
				Provider   string         `json:"provider"`
				Task       string         `json:"task"`
				Risk       string         `json:"risk"`
				Residency  string         `json:"residency"`
				PII        map[string]int `json:"pii"`
				Attempts   []struct {
					Provider, Outcome string
				} `json:"attempts"`
				Cost struct {
					Amount   float64 `json:"amount"`
					Currency string  `json:"currency"`
				} `json:"cost"`
			} `json:"routing"`
		}
		mustJSON(t, b, &out)
		ro := out.Routing
		if ro.DecisionID != resp.Header.Get("x-stellwerk-decision-id") || ro.Model != "alpha-small" || ro.Provider != "alpha" ||
			ro.Residency != "us" || len(ro.Attempts) != 1 || ro.Attempts[0].Outcome != "served" || ro.Task == "" || ro.Risk == "" {
			t.Errorf("routing object %+v", ro)
		}
		// alpha-small costs 3 per million input and 7 per million output tokens.
		wantCost := float64(out.Usage.PromptTokens)*3/1e6 + float64(out.Usage.CompletionTokens)*7/1e6
		if out.Usage.PromptTokens == 0 || math.Abs(ro.Cost.Amount-wantCost) > 1e-9 || ro.Cost.Currency != "USD" {
			t.Errorf("cost %+v for usage %+v, want %.8f", ro.Cost, out.Usage, wantCost)
		}
		if cl := resp.Header.Get("Content-Length"); cl != "" && cl != strconv.Itoa(len(b)) {
			t.Errorf("client content-length %s for %d bytes", cl, len(b))
		}
		if !strings.Contains(out.Choices[0].Message.Content, "Hello from alpha") {
			t.Errorf("reply not from alpha: %q", out.Choices[0].Message.Content)
		}
		for h, want := range map[string]string{"x-stellwerk-model": "alpha-small", "x-stellwerk-provider": "alpha", "x-stellwerk-reason": "pinned by request"} {
			if got := resp.Header.Get(h); got != want {
				t.Errorf("%s = %q, want %q", h, got, want)
			}
		}
		if len(resp.Header.Get("x-stellwerk-decision-id")) != 32 {
			t.Errorf("decision id %q", resp.Header.Get("x-stellwerk-decision-id"))
		}
		accessLogPhases(t, s, ro.DecisionID)
		reqs := alpha.Requests()
		if len(reqs) != 1 {
			t.Fatalf("alpha got %d requests", len(reqs))
		}
		got := reqs[0]
		if got.Path != "/v1/chat/completions" {
			t.Errorf("upstream path %q", got.Path)
		}
		if auth := got.Header.Get("Authorization"); auth != "Bearer sk-alpha-secret" {
			t.Errorf("upstream Authorization = %q, want the provider key (never the client's)", auth)
		}
		var sent map[string]any
		mustJSON(t, got.Body, &sent)
		if sent["model"] != "alpha-upstream-small" {
			t.Errorf("upstream model = %v", sent["model"])
		}
		if cl := got.Header.Get("Content-Length"); cl != strconv.Itoa(got.BodyLength) {
			t.Errorf("upstream content-length %q, body %d bytes", cl, got.BodyLength)
		}
		if !strings.HasPrefix(alpha.URL, "http://"+got.Host) {
			t.Errorf("upstream Host %q does not match provider %s", got.Host, alpha.URL)
		}
		for k := range got.Header {
			if strings.HasPrefix(strings.ToLower(k), "x-stellwerk-") || strings.EqualFold(k, "x-forwarded-for") {
				t.Errorf("provider received internal header %s", k)
			}
		}
	})

	t.Run("auto uses the default model", func(t *testing.T) {
		beta.Reset()
		resp, b := post(t, chatURL, `{"model":"auto","messages":[{"role":"user","content":"hi"}]}`, nil)
		if resp.StatusCode != 200 || resp.Header.Get("x-stellwerk-model") != "beta-large" {
			t.Fatalf("status %d model %q: %s", resp.StatusCode, resp.Header.Get("x-stellwerk-model"), b)
		}
		if n := len(beta.Requests()); n != 1 {
			t.Fatalf("beta got %d requests", n)
		}
		if auth := beta.Requests()[0].Header.Get("Authorization"); auth != "Bearer sk-beta-secret" {
			t.Errorf("beta got Authorization %q", auth)
		}
	})

	t.Run("spoofed routing headers cannot choose a cluster", func(t *testing.T) {
		alpha.Reset()
		beta.Reset()
		resp, b := post(t, chatURL, `{"model":"alpha-small","messages":[{"role":"user","content":"hi"}]}`, map[string]string{
			"x-stellwerk-cluster":  "provider_beta",
			"x-stellwerk-provider": "beta",
			"x-stellwerk-model":    "beta-large",
		})
		if resp.StatusCode != 200 {
			t.Fatalf("status %d: %s", resp.StatusCode, b)
		}
		if len(beta.Requests()) != 0 || len(alpha.Requests()) != 1 {
			t.Fatalf("spoofed header moved the request: alpha %d, beta %d", len(alpha.Requests()), len(beta.Requests()))
		}
		if resp.Header.Get("x-stellwerk-provider") != "alpha" {
			t.Errorf("x-stellwerk-provider = %q", resp.Header.Get("x-stellwerk-provider"))
		}
	})

	t.Run("spoofed routing header on an unrouted request does not reach a provider", func(t *testing.T) {
		beta.Reset()
		req, _ := http.NewRequest(http.MethodGet, s.URL+"/v1/anything", nil)
		req.Header.Set("x-stellwerk-cluster", "provider_beta")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 404 || len(beta.Requests()) != 0 {
			t.Fatalf("status %d, beta got %d requests: %s", resp.StatusCode, len(beta.Requests()), b)
		}
	})

	t.Run("streaming passes chunk by chunk", func(t *testing.T) {
		beta.Reset()
		req, _ := http.NewRequest(http.MethodPost, chatURL, strings.NewReader(
			`{"model":"beta-large","stream":true,"stream_options":{"include_usage":true},"messages":[{"role":"user","content":"one two three four"}]}`))
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("x-mock-chunk-delay", "150ms")
		start := time.Now()
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		if resp.StatusCode != 200 || !strings.HasPrefix(resp.Header.Get("Content-Type"), "text/event-stream") {
			t.Fatalf("status %d content-type %q", resp.StatusCode, resp.Header.Get("Content-Type"))
		}
		if resp.Header.Get("x-stellwerk-model") != "beta-large" || resp.Header.Get("x-stellwerk-decision-id") == "" {
			t.Errorf("stream lacks stellwerk headers: %v", resp.Header)
		}
		evs := readSSE(t, resp.Body)
		if len(evs) < 5 || evs[len(evs)-1].data != "[DONE]" {
			t.Fatalf("stream ended badly: %d events, last %q", len(evs), evs[len(evs)-1].data)
		}
		// The provider spaces its 8 content chunks 150 ms apart; a buffered
		// proxy would deliver all of them at once at the end.
		spread := evs[len(evs)-1].at.Sub(evs[1].at)
		if spread < 500*time.Millisecond {
			t.Errorf("chunks arrived together (spread %s after %s): the stream was buffered", spread, evs[1].at.Sub(start))
		}
		var usage struct {
			Usage *struct {
				TotalTokens int `json:"total_tokens"`
			} `json:"usage"`
		}
		mustJSON(t, []byte(evs[len(evs)-2].data), &usage)
		if usage.Usage == nil || usage.Usage.TotalTokens == 0 {
			t.Errorf("final usage chunk missing: %s", evs[len(evs)-2].data)
		}
		for _, ev := range evs {
			if strings.Contains(ev.data, `"routing"`) {
				t.Errorf("a stream event was modified: %s", ev.data)
			}
		}
		var sent map[string]any
		mustJSON(t, beta.Requests()[0].Body, &sent)
		if sent["model"] != "beta-upstream-large" || sent["stream"] != true {
			t.Errorf("upstream body %v", sent)
		}
	})

	t.Run("models list", func(t *testing.T) {
		resp, err := http.Get(s.URL + "/v1/models")
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var list struct {
			Object string                        `json:"object"`
			Data   []struct{ ID, Object string } `json:"data"`
		}
		if err := json.NewDecoder(resp.Body).Decode(&list); err != nil {
			t.Fatal(err)
		}
		var ids []string
		for _, m := range list.Data {
			ids = append(ids, m.ID)
		}
		// gamma's credential is missing here: its model is not listed, nor
		// found by id (pinned, it answers 502 provider_credential_missing).
		if got, want := strings.Join(ids, ","), "auto,alpha-small,beta-large"; list.Object != "list" || got != want {
			t.Errorf("models %q (object %q), want %q", got, list.Object, want)
		}
		if r, err := http.Get(s.URL + "/v1/models/gamma-any"); err != nil || r.StatusCode != 404 {
			t.Errorf("GET /v1/models/gamma-any: %v %v", r, err)
		} else {
			r.Body.Close()
		}
	})

	t.Run("bad input", func(t *testing.T) {
		big := `{"model":"auto","messages":[{"role":"user","content":"` + strings.Repeat("a", 70<<10) + `"}]}`
		cases := map[string]struct {
			method, path, body string
			headers            map[string]string
			status             int
			code               string
			mention            string
		}{
			"malformed JSON": {"POST", "/v1/chat/completions", `{"model":`, nil, 400, "invalid_json", "not valid JSON"},
			"gzip body": {"POST", "/v1/chat/completions", "\x1f\x8b\x08\x00\x00\x00\x00\x00", map[string]string{"Content-Encoding": "gzip"},
				400, "unsupported_content_encoding", "content-encoding: gzip"},
			"not UTF-8":        {"POST", "/v1/chat/completions", "{\"model\":\"auto\",\"messages\":[{\"role\":\"user\",\"content\":\"Gr\xfc\xdfe\"}]}", nil, 400, "invalid_json", "UTF-8"},
			"missing messages": {"POST", "/v1/chat/completions", `{"model":"auto"}`, nil, 400, "missing_messages", "messages"},
			"capitalised key": {"POST", "/v1/chat/completions", `{"model":"auto","messages":[{"role":"user","content":"x"}],"Tools":[{"type":"function","function":{"name":"f","description":"AKIAIOSFODNN7EXAMPLE"}}]}`,
				nil, 400, "invalid_key", "Tools"},
			"capitalised key, responses": {"POST", "/v1/responses", `{"model":"auto","input":"x","Instructions":"AKIAIOSFODNN7EXAMPLE"}`, nil, 400, "invalid_key", "Instructions"},
			"empty messages":             {"POST", "/v1/chat/completions", `{"model":"auto","messages":[]}`, nil, 400, "empty_messages", "messages"},
			"messages not array":         {"POST", "/v1/chat/completions", `{"model":"auto","messages":"hi"}`, nil, 400, "invalid_type", "array"},
			"missing model":              {"POST", "/v1/chat/completions", `{"messages":[{"role":"user","content":"x"}]}`, nil, 400, "missing_model", "model"},
			// Longer than every model's window: the client's error, as OpenAI
			// says it (auto answered 503, which the SDKs blame on the server).
			"too long for every model": {"POST", "/v1/chat/completions", `{"model":"auto","messages":[{"role":"user","content":"` + strings.Repeat("lorem ipsum dolor sit amet ", 1800) + `"}]}`,
				nil, 400, "context_length_exceeded", "more than the largest context window of any model (8000 tokens)"},
			// stellwerk sets include_usage on a stream: an array here was a 500.
			"stream_options not an object": {"POST", "/v1/chat/completions", `{"model":"auto","stream":true,"stream_options":[],"messages":[{"role":"user","content":"x"}]}`, nil, 400, "invalid_type", "stream_options must be an object"},
			"empty body":                   {"POST", "/v1/chat/completions", ``, nil, 400, "invalid_request_body", "empty"},
			// gamma has no credential here: not offered (as /v1/models).
			"unknown model":      {"POST", "/v1/chat/completions", `{"model":"gpt-9","messages":[{"role":"user","content":"x"}]}`, nil, 404, "model_not_found", "available: alpha-small, beta-large, auto"},
			"too large":          {"POST", "/v1/chat/completions", big, nil, 413, "request_too_large", "65536"},
			"too large, chunked": {"POST", "/v1/chat/completions", big, map[string]string{"Transfer-Encoding": "chunked"}, 413, "request_too_large", "65536"},
			"unknown path":       {"POST", "/v1/embeddingz", `{}`, nil, 404, "unknown_url", "/v1/embeddingz"},
			"wrong method":       {"GET", "/v1/chat/completions", ``, nil, 405, "method_not_allowed", "POST"},
			// A pinned model is not failed over unasked (issue 18): the
			// error names the provider, as the README says, and is the 502
			// failover.md documents (it was a 503 no_eligible_model).
			"missing credential": {"POST", "/v1/chat/completions", `{"model":"gamma-any","messages":[{"role":"user","content":"x"}]}`,
				nil, 502, "provider_credential_missing", "no credential is configured for provider gamma"},
			"unknown model detail": {"GET", "/v1/models/nope", ``, nil, 404, "model_not_found", "nope"},
		}
		for name, tc := range cases {
			t.Run(name, func(t *testing.T) {
				gamma.Reset()
				var body io.Reader = strings.NewReader(tc.body)
				if tc.headers["Transfer-Encoding"] == "chunked" {
					body = io.MultiReader(strings.NewReader(tc.body)) // unknown length: sent chunked
				}
				req, _ := http.NewRequest(tc.method, s.URL+tc.path, body)
				req.Header.Set("Content-Type", "application/json")
				if ce := tc.headers["Content-Encoding"]; ce != "" {
					req.Header.Set("Content-Encoding", ce)
				}
				resp, err := http.DefaultClient.Do(req)
				if err != nil {
					t.Fatal(err)
				}
				b, _ := io.ReadAll(resp.Body)
				resp.Body.Close()
				if resp.StatusCode != tc.status {
					t.Fatalf("status %d, want %d: %s", resp.StatusCode, tc.status, b)
				}
				if ct := resp.Header.Get("Content-Type"); !strings.HasPrefix(ct, "application/json") {
					t.Errorf("content-type %q", ct)
				}
				e := decodeError(t, b)
				if e.Error.Code != tc.code || !strings.Contains(e.Error.Message, tc.mention) {
					t.Errorf("error %+v, want code %q mentioning %q", e.Error, tc.code, tc.mention)
				}
				if strings.Contains(string(b), "secret") || strings.Contains(string(b), "STELLWERK_TEST_KEY") {
					t.Errorf("error leaks configuration: %s", b)
				}
				if len(gamma.Requests()) != 0 {
					t.Errorf("a rejected request reached a provider")
				}
				if m := resp.Header.Get("x-stellwerk-model"); m != "" {
					t.Errorf("x-stellwerk-model %q on a request no model served", m)
				}
			})
		}
	})

	if strings.Contains(s.Log("stellwerk"), "sk-alpha-secret") || strings.Contains(s.Log("envoy"), "sk-alpha-secret") {
		t.Errorf("a provider key appears in a log")
	}
}

func TestTLSProviderWithSNI(t *testing.T) {
	t.Parallel()
	s := harness.Start(t, harness.Options{Providers: []harness.ProviderSpec{{Name: "secure", Key: "sk-tls", TLS: true}}})
	resp, b := post(t, s.URL+"/v1/chat/completions", `{"model":"secure-model","messages":[{"role":"user","content":"over tls"}]}`, nil)
	if resp.StatusCode != 200 {
		t.Fatalf("status %d: %s", resp.StatusCode, b)
	}
	reqs := s.Providers["secure"].Requests()
	if len(reqs) != 1 {
		t.Fatalf("provider got %d requests", len(reqs))
	}
	if !strings.HasPrefix(reqs[0].Host, "localhost:") {
		t.Errorf("Host %q, want localhost:<port>", reqs[0].Host)
	}
	if reqs[0].Header.Get("Authorization") != "Bearer sk-tls" {
		t.Errorf("credential not injected over TLS")
	}
}

func TestProviderFailureIsOpenAIShaped(t *testing.T) {
	t.Parallel()
	s := harness.Start(t, harness.Options{Providers: []harness.ProviderSpec{{Name: "flaky", Key: "k"}}})
	chat := `{"model":"flaky-model","messages":[{"role":"user","content":"x"}]}`

	resp, b := post(t, s.URL+"/v1/chat/completions", chat, map[string]string{"x-mock-status": "503"})
	if resp.StatusCode != 503 || resp.Header.Get("x-stellwerk-decision-id") == "" {
		t.Fatalf("provider 503: status %d headers %v", resp.StatusCode, resp.Header)
	}
	// With no other provider to fail over to, the answer says what was
	// tried and quotes the provider's own error.
	var passed apiError
	mustJSON(t, b, &passed)
	if passed.Error.Code != "no_eligible_model" || !strings.Contains(passed.Error.Message, "flaky-model at flaky (status 503: flaky: injected failure 503") {
		t.Errorf("provider error not quoted: %s", b)
	}

	resp, b = post(t, s.URL+"/v1/chat/completions", chat, map[string]string{"x-mock-reset": "before"})
	if resp.StatusCode < 502 || resp.StatusCode > 503 {
		t.Fatalf("reset: status %d: %s", resp.StatusCode, b)
	}
	if e := decodeError(t, b); e.Error.Code != "no_eligible_model" || !strings.Contains(e.Error.Message, "provider could not be reached") {
		t.Errorf("reset: %+v", e.Error)
	}
	if resp.Header.Get("x-stellwerk-provider") != "flaky" {
		t.Errorf("reset answer lacks decision headers: %v", resp.Header)
	}
}

func TestAdminAPI(t *testing.T) {
	t.Parallel()
	s := harness.Start(t, harness.Options{})
	for path, want := range map[string]string{"/healthz": `"ok"`, "/readyz": `"ready"`, "/version": `"version"`, "/config": "default_model: alpha-model", "/status": `"envoy_streams":1`} {
		resp, err := s.AdminGet(path)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 || !strings.Contains(string(b), want) {
			t.Errorf("%s: %d %s (want %s)", path, resp.StatusCode, b, want)
		}
		if strings.Contains(string(b), "sk-alpha") {
			t.Errorf("%s leaks a key", path)
		}
	}
}

// TestFailsClosed: with stellwerk gone, Envoy must not forward anything.
func TestFailsClosed(t *testing.T) {
	t.Parallel()
	s := harness.Start(t, harness.Options{})
	s.Stop("stellwerk")
	// Every attempt must fail closed; Envoy may need a moment to notice the
	// dead ext_proc connection before its answer takes the OpenAI shape.
	var last string
	shaped := false
	for attempt := 0; attempt < 10 && !shaped; attempt++ {
		resp, b := post(t, s.URL+"/v1/chat/completions", `{"model":"alpha-model","messages":[{"role":"user","content":"x"}]}`,
			map[string]string{"x-stellwerk-cluster": "provider_alpha"})
		if resp.StatusCode < 500 {
			t.Fatalf("status %d with stellwerk down: %s", resp.StatusCode, b)
		}
		var e apiError
		if json.Unmarshal(b, &e) == nil && resp.StatusCode == 503 && e.Error.Code == "router_unavailable" {
			shaped = true
		}
		last = fmt.Sprintf("%d %s", resp.StatusCode, b)
		time.Sleep(200 * time.Millisecond)
	}
	if !shaped {
		t.Errorf("never answered 503 router_unavailable; last answer: %s", last)
	}
	for name, p := range s.Providers {
		if n := len(p.Requests()); n != 0 {
			t.Errorf("%s got %d requests while stellwerk was down", name, n)
		}
	}
}

// TestClassificationReachesTheCaller: personal data in the prompt shows in
// the routing object by type and count, never by value.
func TestClassificationReachesTheCaller(t *testing.T) {
	t.Parallel()
	s := harness.Start(t, harness.Options{Providers: []harness.ProviderSpec{
		{Name: "alpha", Key: "sk-alpha"}, {Name: "beta", Key: "sk-beta", Residency: "eu", AssuranceTier: 2}}})
	resp, b := post(t, s.URL+"/v1/chat/completions", `{"model":"beta-model","messages":[
		{"role":"user","content":"Write a short reply to jane.doe@example.com confirming the refund to DE89 3704 0044 0532 0130 00."}]}`, nil)
	if resp.StatusCode != 200 {
		t.Fatalf("status %d: %s", resp.StatusCode, b)
	}
	var out struct {
		Routing struct {
			PII         map[string]int `json:"pii"`
			Sensitivity string         `json:"sensitivity"`
			Risk        string         `json:"risk"`
			Language    string         `json:"language"`
		} `json:"routing"`
	}
	mustJSON(t, b, &out)
	if out.Routing.PII["email"] != 1 || out.Routing.PII["iban"] != 1 || out.Routing.Sensitivity != "restricted" || out.Routing.Risk != "high" || out.Routing.Language != "en" {
		t.Errorf("routing %+v", out.Routing)
	}
	// The reply echoes the prompt, so look only at the routing object for leaks.
	ro := string(b[strings.Index(string(b), `"routing"`):])
	if strings.Contains(ro, "jane.doe") || strings.Contains(ro, "DE89") {
		t.Errorf("routing object leaks a value: %s", ro)
	}
	if strings.Contains(s.Log("stellwerk"), "jane.doe") || strings.Contains(s.Log("envoy"), "jane.doe") {
		t.Errorf("a log contains prompt data")
	}
}

// TestLargeRequest: a long-context request of 9 MB goes through when the
// limit allows it, rewritten with its exact length, and the provider sees
// not the client's accept-encoding but identity (stellwerk reads answers
// uncompressed).
func TestLargeRequest(t *testing.T) {
	t.Parallel()
	s := harness.Start(t, harness.Options{Mutate: func(c *config.Config) {
		c.Envoy.MaxRequestBytes = 16 << 20
		c.Models[0].ContextWindow = 4_000_000 // a long-context model
	}})
	doc := strings.Repeat("The quarterly figures were reviewed and approved by the board. ", 9<<20/64)
	body := `{"model":"alpha-model","messages":[{"role":"user","content":"Summarize:\n` + doc + `"}]}`
	resp, b := post(t, s.URL+"/v1/chat/completions", body, map[string]string{"Accept-Encoding": "gzip"})
	if resp.StatusCode != 200 {
		t.Fatalf("status %d: %.300s", resp.StatusCode, b)
	}
	rq := s.Providers["alpha"].Requests()
	got := rq[len(rq)-1]
	if got.BodyLength < 9_000_000 || got.Header.Get("Content-Length") != strconv.Itoa(got.BodyLength) {
		t.Errorf("provider got %d bytes, content-length %s", got.BodyLength, got.Header.Get("Content-Length"))
	}
	if got.Header.Get("Accept-Encoding") != "identity" { // the client's gzip is not the provider's to use
		t.Errorf("the provider got accept-encoding %q, want identity", got.Header.Get("Accept-Encoding"))
	}
}

// accessLogPhases: Envoy's access log line of the request names how long
// Envoy waited for stellwerk in each ext_proc phase it ran, in µs.
func accessLogPhases(t *testing.T, s *harness.Stack, decisionID string) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		for _, line := range strings.Split(s.Log("envoy"), "\n") {
			if !strings.Contains(line, decisionID) || !strings.HasPrefix(line, "{") {
				continue
			}
			var l map[string]any
			mustJSON(t, []byte(line), &l)
			for _, k := range []string{"ext_proc_request_headers_us", "ext_proc_request_body_us", "ext_proc_response_headers_us", "ext_proc_response_body_us"} {
				if v, _ := l[k].(string); v == "" || strings.Trim(v, "0123456789") != "" || v == "0" {
					t.Errorf("access log %s = %v, want µs: %s", k, l[k], line)
				}
			}
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("no access log line for %s:\n%s", decisionID, s.Log("envoy"))
		}
		time.Sleep(50 * time.Millisecond)
	}
}
