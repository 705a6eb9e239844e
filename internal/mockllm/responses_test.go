package mockllm

import (
	"bufio"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/tidwall/gjson"
)

func TestResponsesNative(t *testing.T) {
	srv := httptest.NewServer(New("m", "k"))
	defer srv.Close()
	tools := `"tools":[{"type":"function","name":"get_weather","parameters":{"type":"object","properties":{"city":{"type":"string"}},"required":["city"]}},` +
		`{"type":"function","name":"get_time","parameters":{"type":"object","properties":{"tz":{"type":"string","enum":["UTC"]}}}}]`
	for name, tc := range map[string]struct {
		body string
		want map[string]string
	}{
		"text": {body: `{"model":"x","instructions":"be brief","input":"hello there"}`, want: map[string]string{
			"object": "response", "status": "completed", "model": "x", "output.#": "1", "output.0.type": "message",
			"output.0.content.0.text": "Hello from m. You said: hello there", "usage.output_tokens": "7"}},
		"parts": {body: `{"model":"x","input":[{"role":"user","content":[{"type":"input_text","text":"parts here"}]}]}`, want: map[string]string{
			"output.0.content.0.text": "Hello from m. You said: parts here"}},
		"parallel tools": {body: `{"model":"x","input":"weather?",` + tools + `}`, want: map[string]string{
			"output.#": "2", "output.0.type": "function_call", "output.0.name": "get_weather", "output.0.arguments": `{"city":"example"}`,
			"output.1.name": "get_time", "output.1.arguments": `{"tz":"UTC"}`}},
		"one tool": {body: `{"model":"x","input":"weather?","parallel_tool_calls":false,` + tools + `}`, want: map[string]string{
			"output.#": "1", "output.0.name": "get_weather"}},
		"after the tool's output": {body: `{"model":"x","input":[{"role":"user","content":"w?"},{"type":"function_call","call_id":"c","name":"get_weather","arguments":"{}"},` +
			`{"type":"function_call_output","call_id":"c","output":"sunny"}],` + tools + `}`, want: map[string]string{
			"output.#": "1", "output.0.type": "message"}},
		"json schema": {body: `{"model":"x","input":"x","text":{"format":{"type":"json_schema","name":"r","schema":{"type":"object","properties":{"n":{"type":"integer"}}}}}}`,
			want: map[string]string{"output.0.content.0.text": `{"n":1}`}},
		"refuses previous_response_id": {body: `{"model":"x","input":"x","previous_response_id":"resp_1"}`, want: map[string]string{
			"error.code": "previous_response_not_found", "error.param": "previous_response_id"}},
	} {
		t.Run(name, func(t *testing.T) {
			_, b := post(t, srv, "/v1/responses", tc.body)
			r := gjson.Parse(b)
			for path, want := range tc.want {
				if got := r.Get(path).String(); got != want {
					t.Errorf("%s = %q, want %q (%s)", path, got, want, b)
				}
			}
		})
	}
}

// A storing provider answers previous_response_id with the conversation
// it kept; an unknown id is a 404.
func TestResponsesStored(t *testing.T) {
	p := New("m", "k")
	p.StoreResponses(true)
	srv := httptest.NewServer(p)
	defer srv.Close()
	_, first := post(t, srv, "/v1/responses", `{"model":"x","input":"remember the word kiwi"}`)
	id := gjson.Get(first, "id").Str
	if !strings.HasPrefix(id, "resp_") || gjson.Get(first, "store").Type != gjson.True {
		t.Fatalf("first: %s", first)
	}
	status, second := post(t, srv, "/v1/responses", `{"model":"x","previous_response_id":"`+id+`","input":[{"type":"message","role":"assistant","content":"ok"}]}`)
	// The last user text is the stored one: the model read the history.
	if status != 200 || gjson.Get(second, "output.0.content.0.text").Str != "Hello from m. You said: remember the word kiwi" ||
		gjson.Get(second, "usage.input_tokens").Int() <= gjson.Get(first, "usage.input_tokens").Int() {
		t.Fatalf("second: %d %s", status, second)
	}
	if status, b := post(t, srv, "/v1/responses", `{"model":"x","previous_response_id":"resp_nope","input":"x"}`); status != 404 {
		t.Fatalf("unknown id: %d %s", status, b)
	}
}

// A stream is the Responses API's typed events in order, numbered,
// ending with response.completed and its usage.
func TestResponsesStreamEvents(t *testing.T) {
	srv := httptest.NewServer(New("m", "k"))
	defer srv.Close()
	for name, tc := range map[string]struct{ body, types string }{
		"text": {`{"model":"x","input":"hi you","stream":true}`, "response.created response.in_progress response.output_item.added response.content_part.added " +
			strings.Repeat("response.output_text.delta ", 7) + "response.output_text.done response.content_part.done response.output_item.done response.completed"},
		"tools": {`{"model":"x","input":"w","stream":true,"tools":[{"type":"function","name":"a"},{"type":"function","name":"b"}]}`,
			"response.created response.in_progress " + strings.Repeat("response.output_item.added response.function_call_arguments.delta response.function_call_arguments.done response.output_item.done ", 2) +
				"response.completed"},
	} {
		t.Run(name, func(t *testing.T) {
			_, b := post(t, srv, "/v1/responses", tc.body)
			var types []string
			var last string
			sc := bufio.NewScanner(strings.NewReader(b))
			for sc.Scan() {
				if d, ok := strings.CutPrefix(sc.Text(), "data: "); ok {
					if gjson.Get(d, "sequence_number").Int() != int64(len(types)) {
						t.Fatalf("event %d numbered %s", len(types), d)
					}
					types = append(types, gjson.Get(d, "type").Str)
					last = d
				}
			}
			if strings.Join(types, " ") != tc.types {
				t.Fatalf("events %v\nwant %s", types, tc.types)
			}
			if gjson.Get(last, "response.usage.output_tokens").Int() < 1 || gjson.Get(last, "response.status").Str != "completed" {
				t.Fatalf("completed: %s", last)
			}
		})
	}
}

// Chat's JSON mode answers with JSON text too.
func TestChatJSONMode(t *testing.T) {
	srv := httptest.NewServer(New("m", "k"))
	defer srv.Close()
	for format, want := range map[string]string{
		`{"type":"json_object"}`: `{"answer":"Hello from m. You said: x"}`,
		`{"type":"json_schema","json_schema":{"name":"r","schema":{"type":"object","properties":{"ok":{"type":"boolean"}}}}}`: `{"ok":true}`,
	} {
		_, b := post(t, srv, "/v1/chat/completions", `{"model":"x","messages":[{"role":"user","content":"x"}],"response_format":`+format+`}`)
		if got := gjson.Get(b, "choices.0.message.content").Str; got != want {
			t.Errorf("%s: %s, want %s", format, got, want)
		}
	}
}
