package translate

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/tidwall/gjson"

	"github.com/stellwerk/stellwerk/internal/apierr"
	"github.com/stellwerk/stellwerk/internal/request"
)

func TestResponsesToChat(t *testing.T) {
	for name, tc := range map[string]struct {
		in, want string // want: the chat body; "" with code
		code     string
	}{
		"string input with instructions": {
			in:   `{"model":"auto","instructions":"be brief","input":"hi","max_output_tokens":50,"temperature":0.2,"store":false}`,
			want: `{"model":"auto","messages":[{"role":"system","content":"be brief"},{"role":"user","content":"hi"}],"max_completion_tokens":50,"temperature":0.2}`,
		},
		"parts, tools, outputs": {
			in: `{"model":"m","input":[{"role":"user","content":[{"type":"input_text","text":"weather?"},{"type":"input_image","image_url":"https://x/y.png"}]},` +
				`{"type":"function_call","call_id":"c1","name":"w","arguments":"{}"},{"type":"function_call","call_id":"c2","name":"t","arguments":"{}"},` +
				`{"type":"function_call_output","call_id":"c1","output":"sunny"}],` +
				`"tools":[{"type":"function","name":"w","parameters":{"type":"object"}}],"tool_choice":{"type":"function","name":"w"},"parallel_tool_calls":true}`,
			want: `{"model":"m","messages":[{"role":"user","content":[{"type":"text","text":"weather?"},{"type":"image_url","image_url":{"url":"https://x/y.png"}}]},` +
				`{"role":"assistant","content":null,"tool_calls":[{"id":"c1","type":"function","function":{"name":"w","arguments":"{}"}},{"id":"c2","type":"function","function":{"name":"t","arguments":"{}"}}]},` +
				`{"role":"tool","content":"sunny","tool_call_id":"c1"}],` +
				`"tools":[{"type":"function","function":{"name":"w","parameters":{"type":"object"}}}],"tool_choice":{"function":{"name":"w"},"type":"function"},"parallel_tool_calls":true}`,
		},
		// The model's text and its call are one assistant turn (found with
		// the SDKs: two assistant messages in a row).
		"text then a call": {
			in: `{"model":"m","input":[{"role":"user","content":"weather?"},{"type":"message","role":"assistant","content":[{"type":"output_text","text":"Let me check."}]},` +
				`{"type":"function_call","call_id":"c1","name":"w","arguments":"{}"},{"type":"function_call_output","call_id":"c1","output":"sunny"}]}`,
			want: `{"model":"m","messages":[{"role":"user","content":"weather?"},` +
				`{"role":"assistant","content":[{"type":"text","text":"Let me check."}],"tool_calls":[{"id":"c1","type":"function","function":{"name":"w","arguments":"{}"}}]},` +
				`{"role":"tool","content":"sunny","tool_call_id":"c1"}]}`,
		},
		// A tool's output as parts, which the SDK's types allow: text is
		// translated; an image needs a native provider.
		"output as text parts": {
			in: `{"model":"m","input":[{"type":"function_call","call_id":"c1","name":"w","arguments":"{}"},` +
				`{"type":"function_call_output","call_id":"c1","output":[{"type":"input_text","text":"sunny"},{"type":"input_text","text":"12 C"}]}]}`,
			want: `{"model":"m","messages":[{"role":"assistant","content":null,"tool_calls":[{"id":"c1","type":"function","function":{"name":"w","arguments":"{}"}}]},` +
				`{"role":"tool","content":"sunny\n12 C","tool_call_id":"c1"}]}`,
		},
		"output with an image": {in: `{"model":"m","input":[{"type":"function_call","call_id":"c1","name":"w","arguments":"{}"},` +
			`{"type":"function_call_output","call_id":"c1","output":[{"type":"input_image","image_url":"https://x/y.png"}]}]}`, code: "unsupported_value"},
		"output not a string or parts": {in: `{"model":"m","input":[{"type":"function_call_output","call_id":"c1","output":{"a":1}}]}`, code: "invalid_value"},
		"json schema": {
			in:   `{"model":"m","input":"x","text":{"format":{"type":"json_schema","name":"r","schema":{"type":"object"},"strict":true}},"policy":{"residency":"eu"}}`,
			want: `{"model":"m","messages":[{"role":"user","content":"x"}],"response_format":{"json_schema":{"name":"r","schema":{"type":"object"},"strict":true},"type":"json_schema"},"policy":{"residency":"eu"}}`,
		},
		"previous response": {in: `{"model":"m","input":"x","previous_response_id":"resp_1"}`, code: "unsupported_parameter"},
		"stream":            {in: `{"model":"m","input":"x","stream":true}`, want: `{"model":"m","messages":[{"role":"user","content":"x"}],"stream":true,"stream_options":{"include_usage":true}}`},
		"stream not a bool": {in: `{"model":"m","input":"x","stream":1}`, code: "invalid_type"},
		"stream false":      {in: `{"model":"m","input":"x","stream":false}`, want: `{"model":"m","messages":[{"role":"user","content":"x"}]}`},
		"web search":        {in: `{"model":"m","input":"x","tools":[{"type":"web_search"}]}`, code: "unsupported_value"},
		"unknown member":    {in: `{"model":"m","input":"x","frobnicate":1}`, code: "unsupported_parameter"},
		"no input":          {in: `{"model":"m"}`, code: "missing_input"},
		"reasoning item":    {in: `{"model":"m","input":[{"type":"reasoning","summary":[]}]}`, code: "unsupported_value"},
		"bad role":          {in: `{"model":"m","input":[{"role":"tool","content":"x"}]}`, code: "invalid_value"},
		"not json":          {in: `{"model":`, code: "invalid_json"},
		"max output zero":   {in: `{"model":"m","input":"x","max_output_tokens":0}`, code: "invalid_value"},
		"max output string": {in: `{"model":"m","input":"x","max_output_tokens":"5"}`, code: "invalid_value"},
	} {
		t.Run(name, func(t *testing.T) {
			got, err := ResponsesToChat([]byte(tc.in))
			if tc.code != "" {
				e, ok := err.(*apierr.Error)
				if !ok || e.Kind != apierr.KindInvalid || e.Code != tc.code {
					t.Fatalf("got %s, %v; want 400 %s", got, err, tc.code)
				}
				return
			}
			if err != nil || string(got) != tc.want {
				t.Fatalf("got %s (%v)\nwant %s", got, err, tc.want)
			}
		})
	}
}

func TestChatToResponse(t *testing.T) {
	got, err := ChatToResponse([]byte(`{"id":"chatcmpl-abc","object":"chat.completion","created":1700000000,"model":"gpt-x",`+
		`"choices":[{"index":0,"finish_reason":"tool_calls","message":{"role":"assistant","content":"checking","tool_calls":[{"id":"call_1","type":"function","function":{"name":"w","arguments":"{\"city\":\"Paris\"}"}}]}}],`+
		`"usage":{"prompt_tokens":10,"completion_tokens":5,"total_tokens":15}}`),
		ResponsesEcho([]byte(`{"model":"auto","input":"x","instructions":"be brief","metadata":{"ticket":"T-1"},"temperature":0.2,"store":true,"policy":{"optimize":"cost"}}`)))
	if err != nil {
		t.Fatal(err)
	}
	r := gjson.ParseBytes(got)
	for path, want := range map[string]string{
		// What the response repeats of its request (resp.metadata was None
		// through the SDK), OpenAI's defaults for what it did not send;
		// nothing is stored, and stellwerk's policy is not repeated.
		"instructions": "be brief", "metadata.ticket": "T-1", "temperature": "0.2", "top_p": "1", "tools": "[]",
		"tool_choice": "auto", "parallel_tool_calls": "true", "text.format.type": "text", "store": "false", "policy": "",
		"id": "resp_abc", "object": "response", "status": "completed", "model": "gpt-x", "created_at": "1700000000",
		"output.0.type": "message", "output.0.content.0.type": "output_text", "output.0.content.0.text": "checking",
		"output.1.type": "function_call", "output.1.call_id": "call_1", "output.1.name": "w", "output.1.arguments": `{"city":"Paris"}`,
		"usage.input_tokens": "10", "usage.output_tokens": "5", "usage.total_tokens": "15",
	} {
		if g := r.Get(path).String(); g != want {
			t.Errorf("%s = %q, want %q", path, g, want)
		}
	}
	got, _ = ChatToResponse([]byte(`{"id":"x","choices":[{"finish_reason":"length","message":{"content":"trunc"}}]}`), nil)
	if gjson.GetBytes(got, "status").Str != "incomplete" || gjson.GetBytes(got, "incomplete_details.reason").Str != "max_output_tokens" {
		t.Errorf("length: %s", got)
	}
	if _, err := ChatToResponse([]byte(`{"error":{}}`), nil); err == nil {
		t.Error("an answer without choices translated")
	}
}

func FuzzResponsesToChat(f *testing.F) {
	for _, s := range []string{
		`{"model":"auto","input":"hi"}`, `{"model":"m","instructions":"x","input":[{"role":"user","content":[{"type":"input_text","text":"a"}]}]}`,
		`{"model":"m","input":[{"type":"function_call","call_id":"c","name":"n","arguments":"{}"},{"type":"function_call_output","call_id":"c","output":"o"}]}`,
		`{"model":"m","input":"x","tools":[{"type":"function","name":"f"}],"text":{"format":{"type":"json_object"}}}`, `[]`, `{`, ``,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		out, err := ResponsesToChat(body)
		if err != nil {
			if e, ok := err.(*apierr.Error); !ok || e.Kind != apierr.KindInvalid || e.Code == "" {
				t.Fatalf("bad error %#v", err)
			}
			return
		}
		if !gjson.ValidBytes(out) || !gjson.GetBytes(out, "messages.0").Exists() {
			t.Fatalf("translated %q into %q", body, out)
		}
	})
}

// The two translations of a 2 KB Responses request and its answer.
func BenchmarkResponses(b *testing.B) {
	text := strings.Repeat("Explain the difference between a mutex and a semaphore. ", 30)
	req := []byte(`{"model":"auto","instructions":"You are helpful.","input":"` + text + `"}`)
	answer := []byte(`{"id":"chatcmpl-1","object":"chat.completion","created":1,"model":"m","choices":[{"index":0,"finish_reason":"stop",` +
		`"message":{"role":"assistant","content":"` + text + `"}}],"usage":{"prompt_tokens":400,"completion_tokens":400,"total_tokens":800}}`)
	b.Run("request", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if _, err := ResponsesToChat(req); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("answer", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if _, err := ChatToResponse(answer, nil); err != nil {
				b.Fatal(err)
			}
		}
	})
	// What repeating the request in the answer adds (ResponsesEcho).
	b.Run("answer_echo", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if _, err := ChatToResponse(answer, ResponsesEcho(req)); err != nil {
				b.Fatal(err)
			}
		}
	})
}

// A chat stream of text, then one of parallel tool calls, becomes the
// Responses API's typed events in order, ending with the whole response.
func TestResponsesStream(t *testing.T) {
	chunk := func(delta string, finish string) string {
		f := "null"
		if finish != "" {
			f = `"` + finish + `"`
		}
		return `{"id":"chatcmpl-9","object":"chat.completion.chunk","created":7,"model":"m","choices":[{"index":0,"delta":` + delta + `,"finish_reason":` + f + `}]}`
	}
	usage := `{"id":"chatcmpl-9","object":"chat.completion.chunk","created":7,"model":"m","choices":[],"usage":{"prompt_tokens":4,"completion_tokens":2,"total_tokens":6}}`
	for name, tc := range map[string]struct {
		events []string
		types  []string
		final  string // the completed response's output
	}{
		"text": {
			events: []string{chunk(`{"role":"assistant","content":""}`, ""), chunk(`{"content":"Hel"}`, ""), chunk(`{"content":"lo"}`, ""), chunk(`{}`, "stop"), usage, "[DONE]"},
			types: []string{"response.created", "response.in_progress", "response.output_item.added", "response.content_part.added",
				"response.output_text.delta", "response.output_text.delta", "response.output_text.done", "response.content_part.done",
				"response.output_item.done", "response.completed"},
			final: `[{"content":[{"annotations":[],"text":"Hello","type":"output_text"}],"id":"msg_9","role":"assistant","status":"completed","type":"message"}]`,
		},
		// A structured output the model declines: the refusal streams as
		// the JSON answer has it (it was dropped: an empty answer).
		"refusal": {
			events: []string{chunk(`{"role":"assistant","content":null,"refusal":""}`, ""), chunk(`{"refusal":"I can't"}`, ""),
				chunk(`{"refusal":" help."}`, ""), chunk(`{}`, "stop"), usage, "[DONE]"},
			types: []string{"response.created", "response.in_progress", "response.output_item.added", "response.content_part.added",
				"response.refusal.delta", "response.refusal.delta", "response.refusal.done", "response.content_part.done",
				"response.output_item.done", "response.completed"},
			final: `[{"content":[{"refusal":"I can't help.","type":"refusal"}],"id":"msg_9","role":"assistant","status":"completed","type":"message"}]`,
		},
		"parallel calls": {
			events: []string{
				chunk(`{"role":"assistant","content":null}`, ""),
				chunk(`{"tool_calls":[{"index":0,"id":"c1","type":"function","function":{"name":"a","arguments":""}}]}`, ""),
				chunk(`{"tool_calls":[{"index":0,"function":{"arguments":"{}"}}]}`, ""),
				chunk(`{"tool_calls":[{"index":1,"id":"c2","type":"function","function":{"name":"b","arguments":"{\"q\":1}"}}]}`, ""),
				chunk(`{}`, "tool_calls"), usage, "[DONE]"},
			types: []string{"response.created", "response.in_progress", "response.output_item.added", "response.function_call_arguments.delta",
				"response.output_item.added", "response.function_call_arguments.delta", "response.function_call_arguments.done", "response.output_item.done",
				"response.function_call_arguments.done", "response.output_item.done", "response.completed"},
			final: `[{"arguments":"{}","call_id":"c1","id":"fc_c1","name":"a","status":"completed","type":"function_call"},` +
				`{"arguments":"{\"q\":1}","call_id":"c2","id":"fc_c2","name":"b","status":"completed","type":"function_call"}]`,
		},
	} {
		t.Run(name, func(t *testing.T) {
			s := NewResponsesStream()
			var out []byte
			for _, e := range tc.events {
				out = s.Event(Event{Data: []byte(e)}, out)
			}
			var f Framer
			evs := f.Flush(f.Feed(out, nil))
			var types []string
			for i, ev := range evs {
				d := gjson.ParseBytes(ev.Data)
				if ev.Name != d.Get("type").Str || d.Get("sequence_number").Int() != int64(i) {
					t.Fatalf("event %d: name %q, data %s", i, ev.Name, ev.Data)
				}
				types = append(types, ev.Name)
			}
			if strings.Join(types, " ") != strings.Join(tc.types, " ") {
				t.Fatalf("events\n%v\nwant\n%v", types, tc.types)
			}
			last := gjson.ParseBytes(evs[len(evs)-1].Data)
			if got := last.Get("response.output").Raw; got != tc.final || last.Get("response.usage.total_tokens").Int() != 6 ||
				last.Get("response.id").Str != "resp_9" || !s.Ended() {
				t.Fatalf("completed: %s", last.Raw)
			}
		})
	}
}

// TestResponsesStreamUsageAsJSON: a streamed answer's response.completed
// reports the usage the same answer reports as JSON, reasoning and cached
// tokens included; streamed, reasoning_tokens read 0 whatever the model
// reasoned.
func TestResponsesStreamUsageAsJSON(t *testing.T) {
	const usage = `"usage":{"prompt_tokens":40,"completion_tokens":300,"total_tokens":340,` +
		`"prompt_tokens_details":{"cached_tokens":32},"completion_tokens_details":{"reasoning_tokens":256}}`
	answer, err := ChatToResponse([]byte(`{"id":"chatcmpl-9","created":7,"model":"o4-mini","choices":[{"index":0,"finish_reason":"stop",`+
		`"message":{"role":"assistant","content":"Hello"}}],`+usage+`}`), nil)
	if err != nil {
		t.Fatal(err)
	}
	s := NewResponsesStream()
	var out []byte
	for _, e := range []string{
		`{"id":"chatcmpl-9","created":7,"model":"o4-mini","choices":[{"index":0,"delta":{"role":"assistant","content":"Hello"},"finish_reason":null}]}`,
		`{"id":"chatcmpl-9","created":7,"model":"o4-mini","choices":[{"index":0,"delta":{},"finish_reason":"stop"}]}`,
		`{"id":"chatcmpl-9","created":7,"model":"o4-mini","choices":[],` + usage + `}`,
		"[DONE]",
	} {
		out = s.Event(Event{Data: []byte(e)}, out)
	}
	var f Framer
	evs := f.Flush(f.Feed(out, nil))
	last := gjson.ParseBytes(evs[len(evs)-1].Data)
	want := gjson.GetBytes(answer, "usage")
	if got := last.Get("response.usage"); last.Get("type").Str != "response.completed" || got.Raw != want.Raw ||
		got.Get("output_tokens_details.reasoning_tokens").Int() != 256 || got.Get("input_tokens_details.cached_tokens").Int() != 32 {
		t.Errorf("streamed usage %s, want %s", got.Raw, want.Raw)
	}
}

// FuzzResponsesStream: whatever a provider streams, the translation never
// panics and every event it emits is named and valid JSON of its type.
func FuzzResponsesStream(f *testing.F) {
	f.Add([]byte(`{"id":"chatcmpl-1","model":"m","choices":[{"index":0,"delta":{"content":"hi"}}]}`), []byte(`{"choices":[{"index":0,"delta":{"tool_calls":[{"index":0,"id":"c","function":{"name":"f","arguments":"{"}}]},"finish_reason":"tool_calls"}],"usage":{"prompt_tokens":1}}`))
	f.Add([]byte(`{"error":{"message":"x"}}`), []byte(`[DONE]`))
	f.Add([]byte("\xff"), []byte(`{"choices":[{"index":0,"delta":{"content":"\u2028\"\\"}}]}`))
	f.Fuzz(func(t *testing.T, a, b []byte) {
		s := NewResponsesStream()
		var out []byte
		for _, d := range [][]byte{a, b, a, []byte("[DONE]")} {
			out = s.Event(Event{Data: d}, out)
		}
		var fr Framer
		for _, ev := range fr.Flush(fr.Feed(out, nil)) {
			if !gjson.ValidBytes(ev.Data) || gjson.GetBytes(ev.Data, "type").Str != ev.Name || ev.Name == "" {
				t.Fatalf("bad event %q: %s", ev.Name, ev.Data)
			}
		}
		if !s.Ended() {
			t.Fatal("not ended after [DONE]")
		}
	})
}

// The stream's response objects repeat the request as the JSON answer does.
func TestResponsesStreamEcho(t *testing.T) {
	s := NewResponsesStream().WithEcho(ResponsesEcho([]byte(`{"input":"x","metadata":{"ticket":"T-1"},"instructions":"be brief"}`)))
	var out []byte
	for _, e := range []string{`{"id":"chatcmpl-9","model":"m","choices":[{"index":0,"delta":{"content":"hi"},"finish_reason":"stop"}]}`, "[DONE]"} {
		out = s.Event(Event{Data: []byte(e)}, out)
	}
	var created, completed gjson.Result
	for _, line := range strings.Split(string(out), "\n") {
		if d, ok := strings.CutPrefix(line, "data: "); ok {
			switch r := gjson.Parse(d); r.Get("type").Str {
			case "response.created":
				created = r.Get("response")
			case "response.completed":
				completed = r.Get("response")
			}
		}
	}
	for _, r := range []gjson.Result{created, completed} {
		if r.Get("metadata.ticket").Str != "T-1" || r.Get("instructions").Str != "be brief" || r.Get("store").Raw != "false" {
			t.Errorf("response object %s", r.Raw)
		}
	}
}

// TestResponsesStreamInterleavedCalls: parallel tool calls a chat stream
// interleaves, with text before and after them, keep their whole
// arguments, and the completed response lists its items at the output
// indexes the stream announced them with (the text after the calls last).
func TestResponsesStreamInterleavedCalls(t *testing.T) {
	in, err := os.ReadFile(filepath.Join(messagesDir, "stream", "interleaved.sse"))
	if err != nil {
		t.Fatal(err)
	}
	out := runConv(in, NewResponsesStream())
	checkResponsesEvents(t, out)
	var f Framer
	added := map[int64]string{}
	var output gjson.Result
	for _, ev := range f.Flush(f.Feed(out, nil)) {
		d := gjson.ParseBytes(ev.Data)
		switch ev.Name {
		case "response.output_item.added":
			added[d.Get("output_index").Int()] = d.Get("item.id").Str
		case "response.completed":
			output = d.Get("response.output")
		}
	}
	items := output.Array()
	if len(items) != 4 || len(added) != 4 {
		t.Fatalf("%d items, %d added:\n%s", len(items), len(added), out)
	}
	for i, it := range items {
		if it.Get("id").Str != added[int64(i)] {
			t.Errorf("output[%d] is %s, announced at that index: %s", i, it.Get("id").Str, added[int64(i)])
		}
	}
	if a, b := items[1].Get("arguments").Str, items[2].Get("arguments").Str; a != `{"city":"Oslo"}` || b != `{"tz":"CET"}` || items[3].Get("content.0.text").Str != " Done." {
		t.Errorf("items: %s", output.Raw)
	}
}

// TestResponsesInlineTextFile: an input_file whose file_data is a text file
// (a native provider reads it) is in the decision's copy as chat's file
// part, which the classifiers decode (or find they cannot: a truncated
// scan), so its personal data is found (a helper's residency probe: a
// base64 CSV went to a US model); the rest of the part is read as text,
// without the payload a second time.
func TestResponsesInlineTextFile(t *testing.T) {
	const url = "data:text/csv;base64,bmFtZSxpYmFuCkFubmEsREU4OTM3MDQwMDQ0MDUzMjAxMzAwMAo="
	body := []byte(`{"model":"m","input":[{"role":"user","content":[{"type":"input_text","text":"sum it up"},` +
		`{"type":"input_file","filename":"c.csv","file_data":"` + url + `"}]}]}`)
	dec, needs, err := ResponsesForDecision(body)
	parts := gjson.GetBytes(dec, "messages.0.content")
	if err != nil || needs.Native == "" || parts.Get("1.type").Str != "file" || parts.Get("1.file.file_data").Str != url ||
		parts.Get("2.text").Str != `{"type":"input_file","filename":"c.csv"}` {
		t.Errorf("decision copy: %v %+v %s", err, needs, dec)
	}
}

// TestResponsesImagesByFileID: an image sent by file_id (a native provider
// reads it) is an image of the decision's copy: it needs a vision model and
// its tokens are held in the worst case (the code review: two images by
// file_id were held as none).
func TestResponsesImagesByFileID(t *testing.T) {
	body := []byte(`{"model":"m","input":[{"role":"user","content":[{"type":"input_text","text":"compare"},` +
		`{"type":"input_image","file_id":"file-1"},{"type":"input_image","file_id":"file-2"}]}]}`)
	dec, needs, err := ResponsesForDecision(body)
	if err != nil || needs.Native == "" {
		t.Fatalf("%v %+v", err, needs)
	}
	c, perr := request.ParseChat(dec)
	if perr != nil || c.Images != 2 || !c.Vision {
		t.Errorf("decision copy %s: %v, %d images", dec, perr, c.Images)
	}
}

// TestResponsesIdentifiersClassified: safety_identifier and
// prompt_cache_key reach a native provider as sent, so the decision's chat
// copy carries them for the classifiers (a helper found an e-mail in one
// served by a US model); a translating provider's copy drops them.
func TestResponsesIdentifiersClassified(t *testing.T) {
	body := []byte(`{"model":"m","input":"hi","safety_identifier":"jane@example.com","prompt_cache_key":"DE89370400440532013000"}`)
	dec, _, err := ResponsesForDecision(body)
	if err != nil || !strings.Contains(string(dec), "jane@example.com") || !strings.Contains(string(dec), "DE89370400440532013000") {
		t.Errorf("decision copy: %v %s", err, dec)
	}
	sent, err := ResponsesToChat(body)
	if err != nil || strings.Contains(string(sent), "jane@example.com") || strings.Contains(string(sent), "DE89") {
		t.Errorf("translated: %v %s", err, sent)
	}
}

// TestResponsesNullIsAbsent: a member sent as null is absent, as OpenAI
// reads it (tools: null was a 400, tool_choice: null and others needed a
// native provider: a 503 without one); stream_options is ignored in a
// translation (include_obfuscation is all it holds).
func TestResponsesNullIsAbsent(t *testing.T) {
	for _, member := range []string{"tools", "tool_choice", "stream_options", "top_logprobs", "max_tool_calls", "text", "reasoning",
		"instructions", "metadata", "policy", "previous_response_id", "temperature", "max_output_tokens", "parallel_tool_calls"} {
		body := []byte(`{"model":"m","input":"hi","` + member + `":null}`)
		out, needs, err := ResponsesForDecision(body)
		if err != nil || needs.Native != "" || strings.Contains(string(out), member) {
			t.Errorf("%s: null: %v, needs %+v, %s", member, err, needs, out)
		}
	}
	if _, needs, err := ResponsesForDecision([]byte(`{"model":"m","input":"hi","stream":true,"stream_options":{"include_obfuscation":false}}`)); err != nil || needs.Native != "" {
		t.Errorf("stream_options: %v, needs %+v", err, needs)
	}
	if _, err := ResponsesToChat([]byte(`{"model":null,"input":"hi"}`)); err == nil {
		t.Errorf("model null accepted")
	}
}

// TestResponsesReadEverywhere: what a native Responses provider gets as
// sent is in the decision copy wherever it is (the red-team probe's second
// round): an input_image's other members, a text format's, a screenshot
// (an image), an image_url that holds text (a file, decoded), a text that
// is no string.
func TestResponsesReadEverywhere(t *testing.T) {
	const secret = "AKIAIOSFODNN7EXAMPLE"
	for name, c := range map[string]struct{ body, want string }{
		"an image by file id, with a note": {`{"model":"m","input":[{"role":"user","content":[{"type":"input_text","text":"hi"},{"type":"input_image","file_id":"file-1","note":"` + secret + `"}]}]}`, secret},
		"a text format's note":             {`{"model":"m","input":"hi","text":{"format":{"type":"text","note":"` + secret + `"}}}`, secret},
		"a screenshot":                     {`{"model":"m","input":[{"type":"computer_call_output","call_id":"c1","output":{"type":"computer_screenshot","image_url":"data:image/png;base64,iVBOR"}}]}`, `"type":"image_url"`},
		"an image_url of text":             {`{"model":"m","input":"x","prompt":{"id":"p","variables":{"x":{"image_url":"data:text/plain,` + secret + `"}}}}`, `"file_data":"data:text/plain,` + secret + `"`},
		"an output text that is no string": {`{"model":"m","input":[{"type":"function_call","call_id":"c1","name":"f","arguments":"{}"},{"type":"function_call_output","call_id":"c1","output":[{"type":"input_text","text":["` + secret + `"]}]}]}`, secret},
	} {
		dec, _, err := ResponsesForDecision([]byte(c.body))
		if err != nil || !strings.Contains(string(dec), c.want) {
			t.Errorf("%s: %v\n%s", name, err, dec)
		}
	}
	// An input text that is no string is refused: no provider reads one.
	if _, _, err := ResponsesForDecision([]byte(`{"model":"m","input":[{"role":"user","content":[{"type":"input_text","text":{"t":"x"}}]}]}`)); err == nil {
		t.Error("an input_text whose text is an object was taken")
	}
}

// TestResponsesEchoLeavesOutWhatWasDropped: a response served by a model
// that was not given reasoning (an Anthropic one: the translation drops
// it) does not echo the request's reasoning as if it had been applied.
func TestResponsesEchoLeavesOutWhatWasDropped(t *testing.T) {
	req := []byte(`{"model":"auto","input":"x","reasoning":{"effort":"high"}}`)
	if e := string(ResponsesEcho(req)); !strings.Contains(e, `"reasoning":{"effort":"high"}`) {
		t.Errorf("echo: %s", e)
	}
	if e := string(ResponsesEcho(req, "reasoning")); strings.Contains(e, "reasoning") {
		t.Errorf("echo for an Anthropic model: %s", e)
	}
}
