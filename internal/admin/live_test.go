package admin

import (
	"bufio"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/zap"

	"github.com/stellwerk/stellwerk/internal/audit"
	"github.com/stellwerk/stellwerk/internal/config"
	"github.com/stellwerk/stellwerk/internal/header"
	"github.com/stellwerk/stellwerk/internal/live"
)

type liveStatus struct {
	fakeStatus
	hub      *live.Hub
	listener string
}

// swapTokens lets a test change the token table as a reload does.
type swapTokens struct {
	liveStatus
	mu     sync.Mutex
	tokens *Tokens
}

func (s *swapTokens) Tokens() *Tokens {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.tokens
}

// TestStreamEndsWithItsToken: a stream whose token is removed from the
// config ends at the next heartbeat, saying why.
func TestStreamEndsWithItsToken(t *testing.T) {
	old := heartbeat
	heartbeat = 20 * time.Millisecond
	t.Cleanup(func() { heartbeat = old })
	ss := &swapTokens{liveStatus: liveStatus{hub: &live.Hub{}}, tokens: testTokens()}
	srv := httptest.NewServer(Handler(ss, zap.NewNop()))
	defer srv.Close()
	req, _ := http.NewRequest(http.MethodGet, srv.URL+"/admin/decisions/stream", nil)
	req.Header.Set("Authorization", "Bearer "+roleTokens[config.RoleViewer])
	resp, err := http.DefaultClient.Do(req)
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("%v %v", resp, err)
	}
	defer resp.Body.Close()
	time.Sleep(50 * time.Millisecond) // a few heartbeats with a valid token
	ss.mu.Lock()
	ss.tokens = NewTokens(nil, func(string) string { return "" })
	ss.mu.Unlock()
	done := make(chan []byte)
	go func() { b, _ := io.ReadAll(resp.Body); done <- b }()
	select {
	case b := <-done:
		if !strings.Contains(string(b), "event: end\n") || !strings.Contains(string(b), ": ping") {
			t.Errorf("stream: %q", b)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("the stream outlived its token")
	}
}

func (l *liveStatus) Live() *live.Hub       { return l.hub }
func (l *liveStatus) EnvoyListener() string { return l.listener }

// TestDecisionStream: a reader with a token gets each published decision
// as a server-sent event, without the request body; no token, no stream;
// the watcher is gone once the client leaves.
func TestDecisionStream(t *testing.T) {
	ls := &liveStatus{fakeStatus: fakeStatus{tokens: testTokens()}, hub: &live.Hub{}}
	srv := httptest.NewServer(Handler(ls, zap.NewNop()))
	defer srv.Close()

	if rec := get(t, Handler(ls, zap.NewNop()), "/admin/decisions/stream", ""); rec.Code != http.StatusUnauthorized {
		t.Fatalf("without a token: %d", rec.Code)
	}
	req, _ := http.NewRequest(http.MethodGet, srv.URL+"/admin/decisions/stream", nil)
	req.Header.Set("Authorization", "Bearer "+roleTokens[config.RoleViewer])
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != 200 || resp.Header.Get("Content-Type") != "text/event-stream" {
		t.Fatalf("%d %s", resp.StatusCode, resp.Header.Get("Content-Type"))
	}
	br := bufio.NewReader(resp.Body)
	readEvent := func() string {
		var b strings.Builder
		for {
			line, err := br.ReadString('\n')
			if err != nil {
				t.Fatalf("stream ended: %v (%q)", err, b.String())
			}
			if line == "\n" {
				return b.String()
			}
			b.WriteString(line)
		}
	}
	if e := readEvent(); !strings.HasPrefix(e, "event: hello\n") {
		t.Fatalf("first event: %q", e)
	}
	r := &audit.Record{Kind: audit.KindDecision, ID: "dec-1", Workspace: "legal", Chosen: "alpha-model", Status: 200,
		Request:        &audit.Request{Body: []byte(`{"messages":[{"content":"my card 4111 1111 1111 1111"}]}`), Model: "auto"},
		Classification: &audit.Classification{Task: "chat", Sensitivity: "confidential", PII: map[string]int{"credit_card": 1}}}
	ls.hub.Publish(live.View(r, 42*time.Millisecond))
	e := readEvent()
	for _, want := range []string{"event: decision\n", "id: dec-1\n", `"workspace":"legal"`, `"chosen":"alpha-model"`, `"credit_card":1`, `"latency_ms":42`} {
		if !strings.Contains(e, want) {
			t.Errorf("event lacks %s: %s", want, e)
		}
	}
	if strings.Contains(e, "4111") {
		t.Errorf("the stream shows the request body: %s", e)
	}
	resp.Body.Close()
	deadline := time.Now().Add(5 * time.Second)
	for ls.hub.Watching() {
		if time.Now().After(deadline) {
			t.Fatal("the watcher outlives its client")
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// TestTry: POST /admin/try sends the chat request to Envoy's listener with
// the typed virtual key, never the admin token, and hands back the status,
// stellwerk's headers and the body; a viewer may not spend.
func TestTry(t *testing.T) {
	var gotAuth, gotBody, gotPath string
	envoy := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		gotAuth, gotPath = r.Header.Get("Authorization"), r.URL.Path
		b, _ := io.ReadAll(r.Body)
		gotBody = string(b)
		w.Header().Set("x-stellwerk-decision-id", "dec-9")
		w.Header().Set("x-stellwerk-model", "alpha-model")
		w.Header().Set("Set-Cookie", "no=1")
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(201)
		_, _ = io.WriteString(w, `{"choices":[]}`)
	}))
	defer envoy.Close()
	ls := &liveStatus{fakeStatus: fakeStatus{tokens: testTokens()}, hub: &live.Hub{},
		listener: "0.0.0.0:" + envoy.URL[strings.LastIndex(envoy.URL, ":")+1:]}
	h := Handler(ls, zap.NewNop())
	try := func(token string) *httptest.ResponseRecorder {
		req := httptest.NewRequest(http.MethodPost, "/admin/try", strings.NewReader(`{"model":"auto","messages":[]}`))
		req.Header.Set("Authorization", "Bearer "+token)
		req.Header.Set(header.TryKey, "sk-sw-virtual")
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		return rec
	}
	if rec := try(roleTokens[config.RoleViewer]); rec.Code != http.StatusForbidden || gotPath != "" {
		t.Fatalf("viewer: %d, forwarded: %q", rec.Code, gotPath)
	}
	rec := try(roleTokens[config.RoleOperator])
	if rec.Code != 201 || rec.Body.String() != `{"choices":[]}` || rec.Header().Get("x-stellwerk-decision-id") != "dec-9" ||
		rec.Header().Get("Set-Cookie") != "" {
		t.Fatalf("answer: %d %v %s", rec.Code, rec.Header(), rec.Body)
	}
	if gotAuth != "Bearer sk-sw-virtual" || gotPath != "/v1/chat/completions" || gotBody != `{"model":"auto","messages":[]}` {
		t.Fatalf("forwarded: %q %q %q", gotAuth, gotPath, gotBody)
	}

	envoy.Close()
	if rec := try(roleTokens[config.RoleAdmin]); rec.Code != http.StatusBadGateway || !strings.Contains(rec.Body.String(), "envoy_unreachable") {
		t.Fatalf("Envoy down: %d %s", rec.Code, rec.Body)
	}
}

// TestConsoleIsPublic: the console's page answers without a token (it
// holds no data) and with a policy that lets it load nothing from
// elsewhere; the API it calls still needs one.
func TestConsoleIsPublic(t *testing.T) {
	h := Handler(&liveStatus{fakeStatus: fakeStatus{tokens: testTokens()}, hub: &live.Hub{}}, zap.NewNop())
	rec := get(t, h, "/console/", "")
	if rec.Code != 200 || !strings.Contains(rec.Body.String(), "stellwerk console") ||
		!strings.Contains(rec.Header().Get("Content-Security-Policy"), "default-src 'none'") {
		t.Fatalf("/console/: %d %v", rec.Code, rec.Header())
	}
	if rec := get(t, h, "/console", ""); rec.Code != http.StatusMovedPermanently || rec.Header().Get("Location") != "/console/" {
		t.Fatalf("/console: %d %v", rec.Code, rec.Header())
	}
	if rec := get(t, h, "/status", ""); rec.Code != http.StatusUnauthorized {
		t.Fatalf("/status without a token: %d", rec.Code)
	}
}

// TestWhoami: a token learns its own id and role, and nothing without one.
func TestWhoami(t *testing.T) {
	h := Handler(&fakeStatus{tokens: testTokens()}, zap.NewNop())
	if rec := get(t, h, "/admin/whoami", ""); rec.Code != http.StatusUnauthorized {
		t.Fatalf("without a token: %d", rec.Code)
	}
	rec := get(t, h, "/admin/whoami", "Bearer "+roleTokens[config.RoleAuditor])
	if rec.Code != 200 || strings.TrimSpace(rec.Body.String()) != `{"role":"auditor","token_id":"dpo"}` {
		t.Fatalf("%d %s", rec.Code, rec.Body)
	}
}
