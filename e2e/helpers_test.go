package e2e

import (
	"bufio"
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/stellwerk/stellwerk/internal/harness"
)

// post sends a JSON body to the stack and returns the response and its body.
func post(t *testing.T, url, body string, headers map[string]string) (*http.Response, []byte) {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, url, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Authorization", "Bearer sk-client-key")
	for k, v := range headers {
		req.Header.Set(k, v)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp, b
}

type apiError struct {
	Error struct {
		Message string  `json:"message"`
		Type    string  `json:"type"`
		Code    string  `json:"code"`
		Param   *string `json:"param"`
	} `json:"error"`
}

// decodeError checks the OpenAI error shape and returns it.
func decodeError(t *testing.T, b []byte) apiError {
	t.Helper()
	var e apiError
	if err := json.Unmarshal(b, &e); err != nil {
		t.Fatalf("error body is not JSON: %v\n%s", err, b)
	}
	if e.Error.Message == "" || e.Error.Type == "" || e.Error.Code == "" {
		t.Fatalf("error body lacks message/type/code: %s", b)
	}
	var raw map[string]map[string]json.RawMessage
	_ = json.Unmarshal(b, &raw)
	if _, ok := raw["error"]["param"]; !ok {
		t.Fatalf("error body lacks param: %s", b)
	}
	return e
}

// sseEvent is one data line of a stream with the time it arrived.
type sseEvent struct {
	data string
	at   time.Time
}

// readSSE reads data events until the stream ends.
func readSSE(t *testing.T, r io.Reader) []sseEvent {
	t.Helper()
	var evs []sseEvent
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if strings.HasPrefix(line, "data: ") {
			evs = append(evs, sseEvent{data: strings.TrimPrefix(line, "data: "), at: time.Now()})
		}
	}
	if err := sc.Err(); err != nil {
		t.Fatalf("reading stream: %v", err)
	}
	return evs
}

func mustJSON(t *testing.T, b []byte, v any) {
	t.Helper()
	if err := json.Unmarshal(bytes.TrimSpace(b), v); err != nil {
		t.Fatalf("not JSON: %v\n%s", err, b)
	}
}

// adminJSON fetches a JSON object from the admin API with the stack's
// admin token.
func adminJSON(t *testing.T, s *harness.Stack, path string) map[string]any {
	t.Helper()
	resp, err := s.AdminGet(path)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var m map[string]any
	if err := json.NewDecoder(resp.Body).Decode(&m); err != nil {
		t.Fatal(err)
	}
	return m
}
