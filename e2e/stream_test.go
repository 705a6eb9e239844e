package e2e

import (
	"bufio"
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/stellwerk/stellwerk/internal/harness"
)

// finished returns stellwerk's "stream finished" record for a decision.
func finished(t *testing.T, s *harness.Stack, id string) map[string]any {
	t.Helper()
	var rec map[string]any
	waitFor(t, "the stream's usage record", func() bool {
		for _, line := range strings.Split(s.Log("stellwerk"), "\n") {
			if strings.Contains(line, `"stream finished"`) && strings.Contains(line, id) {
				return json.Unmarshal([]byte(line), &rec) == nil
			}
		}
		return false
	})
	return rec
}

func streamReq(t *testing.T, s *harness.Stack, body string, hdr map[string]string) (*http.Response, []string) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodPost, s.URL+"/v1/chat/completions", strings.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var data []string
	for _, ev := range readSSE(t, resp.Body) {
		data = append(data, ev.data)
	}
	return resp, data
}

func TestUsageOfEveryStream(t *testing.T) {
	t.Parallel()
	s := harness.Start(t, harness.Options{})
	p := s.Providers["alpha"]
	plain := `{"model":"alpha-model","stream":true,"messages":[{"role":"user","content":"count to five for me"}]}`

	t.Run("client did not ask for usage", func(t *testing.T) {
		p.Reset()
		resp, data := streamReq(t, s, plain, nil)
		if resp.StatusCode != 200 || data[len(data)-1] != "[DONE]" {
			t.Fatalf("status %d, events %v", resp.StatusCode, data)
		}
		for _, d := range data {
			if strings.Contains(d, `"usage"`) {
				t.Errorf("the client received a usage chunk it did not ask for: %s", d)
			}
		}
		var sent struct {
			StreamOptions struct {
				IncludeUsage bool `json:"include_usage"`
			} `json:"stream_options"`
		}
		mustJSON(t, p.Requests()[0].Body, &sent)
		if !sent.StreamOptions.IncludeUsage {
			t.Errorf("stellwerk did not ask the provider for usage")
		}
		rec := finished(t, s, resp.Header.Get("x-stellwerk-decision-id"))
		if rec["usage_estimated"] != false || rec["completion_tokens"].(float64) < 1 || rec["end"] != "complete" {
			t.Errorf("usage record %v", rec)
		}
	})

	t.Run("client asked for usage", func(t *testing.T) {
		_, data := streamReq(t, s, `{"model":"alpha-model","stream":true,"stream_options":{"include_usage":true},"messages":[{"role":"user","content":"hi there"}]}`, nil)
		if !strings.Contains(data[len(data)-2], `"usage"`) {
			t.Errorf("usage chunk missing: %v", data)
		}
	})

	t.Run("provider sends no usage: estimated, never zero", func(t *testing.T) {
		resp, data := streamReq(t, s, plain, map[string]string{"x-mock-no-usage": "1"})
		if data[len(data)-1] != "[DONE]" {
			t.Fatalf("events %v", data)
		}
		rec := finished(t, s, resp.Header.Get("x-stellwerk-decision-id"))
		if rec["usage_estimated"] != true || rec["completion_tokens"].(float64) < 1 || rec["prompt_tokens"].(float64) < 1 {
			t.Errorf("usage record %v", rec)
		}
	})

	t.Run("a tool call without usage: its arguments estimated", func(t *testing.T) {
		// Only the first choice's content was counted: a streamed tool
		// call was charged no output at all (the FinOps probe).
		body := `{"model":"alpha-model","stream":true,"messages":[{"role":"user","content":"weather in Oslo?"}],` +
			`"tools":[{"type":"function","function":{"name":"get_weather","parameters":{"type":"object","properties":{"city":{"type":"string"}}}}}],"tool_choice":"required"}`
		resp, data := streamReq(t, s, body, map[string]string{"x-mock-no-usage": "1"})
		if data[len(data)-1] != "[DONE]" || !strings.Contains(strings.Join(data, ""), `"tool_calls"`) {
			t.Fatalf("events %v", data)
		}
		rec := finished(t, s, resp.Header.Get("x-stellwerk-decision-id"))
		if rec["usage_estimated"] != true || rec["completion_tokens"].(float64) < 3 {
			t.Errorf("usage record %v", rec)
		}
	})

	t.Run("client hangs up mid-stream: estimated", func(t *testing.T) {
		req, _ := http.NewRequest(http.MethodPost, s.URL+"/v1/chat/completions", strings.NewReader(plain))
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("x-mock-chunk-delay", "300ms")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		r := bufio.NewReader(resp.Body)
		for seen := 0; seen < 2; { // read two data events, then hang up
			line, err := r.ReadString('\n')
			if err != nil {
				t.Fatal(err)
			}
			if strings.HasPrefix(line, "data: ") {
				seen++
			}
		}
		resp.Body.Close()
		rec := finished(t, s, resp.Header.Get("x-stellwerk-decision-id"))
		if rec["end"] != "interrupted" || rec["usage_estimated"] != true || rec["completion_tokens"].(float64) < 1 {
			t.Errorf("usage record %v", rec)
		}
		time.Sleep(10 * time.Millisecond)
	})
}
