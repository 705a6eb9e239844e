package translate

import (
	"strings"
	"testing"

	"github.com/tidwall/gjson"
)

// What OpenAI-compatible providers send that OpenAI does not, as the
// Messages and Responses translations read it (the provider-wire probe):
// "tool_calls": null (Mistral, servers built on pydantic) is no call;
// content as an array of parts (Mistral's magistral) is its text parts;
// streamed calls without an index (Gemini's OpenAI-compatible API) are
// told apart by their ids.
func TestProviderAnswerQuirks(t *testing.T) {
	const weather, clock = `{"city":"Paris"}`, `{"tz":"CET"}`
	for name, tc := range map[string]struct {
		answer string   // a chat.completion
		stream []string // or a chat stream's data
		text   string
		calls  []string // name=arguments
	}{
		"tool_calls null": {
			answer: `{"id":"a","choices":[{"message":{"role":"assistant","content":"Hello world","tool_calls":null},"finish_reason":"stop"}]}`,
			stream: []string{`{"id":"a","choices":[{"index":0,"delta":{"role":"assistant","content":"Hello","tool_calls":null}}]}`,
				`{"id":"a","choices":[{"index":0,"delta":{"content":" world","tool_calls":null},"finish_reason":"stop"}]}`},
			text: "Hello world",
		},
		"content parts": {
			answer: `{"id":"a","choices":[{"message":{"role":"assistant","content":[{"type":"thinking","thinking":[{"type":"text","text":"hmm"}]},{"type":"text","text":"Answer"}]},"finish_reason":"stop"}]}`,
			stream: []string{`{"id":"a","choices":[{"index":0,"delta":{"role":"assistant","content":[{"type":"thinking","thinking":[{"type":"text","text":"hmm"}]}]}}]}`,
				`{"id":"a","choices":[{"index":0,"delta":{"content":[{"type":"text","text":"Ans"}]}}]}`,
				`{"id":"a","choices":[{"index":0,"delta":{"content":"wer"},"finish_reason":"stop"}]}`},
			text: "Answer",
		},
		"calls without an index": {
			stream: []string{`{"id":"a","choices":[{"index":0,"delta":{"role":"assistant","tool_calls":[{"id":"call_a","type":"function","function":{"name":"get_weather","arguments":"{\"city\":\"Paris\"}"}}]}}]}`,
				`{"id":"a","choices":[{"index":0,"delta":{"tool_calls":[{"id":"call_b","type":"function","function":{"name":"get_time","arguments":"{\"tz\":"}}]}}]}`,
				`{"id":"a","choices":[{"index":0,"delta":{"tool_calls":[{"function":{"arguments":"\"CET\"}"}}]},"finish_reason":"tool_calls"}]}`},
			calls: []string{"get_weather=" + weather, "get_time=" + clock},
		},
	} {
		t.Run(name, func(t *testing.T) {
			check := func(api, text string, calls []string) {
				t.Helper()
				if text != tc.text || strings.Join(calls, " ") != strings.Join(tc.calls, " ") {
					t.Errorf("%s: text %q, calls %q; want %q, %q", api, text, calls, tc.text, tc.calls)
				}
			}
			if tc.answer != "" {
				m, err := ChatToMessage([]byte(tc.answer), nil)
				if err != nil {
					t.Fatal(err)
				}
				text, calls := "", []string(nil)
				gjson.GetBytes(m, "content").ForEach(func(_, b gjson.Result) bool {
					switch b.Get("type").Str {
					case "text":
						text += b.Get("text").Str
					case "tool_use":
						calls = append(calls, b.Get("name").Str+"="+b.Get("input").Raw)
					}
					return true
				})
				check("messages", text, calls)
				r, err := ChatToResponse([]byte(tc.answer), nil)
				if err != nil {
					t.Fatal(err)
				}
				text, calls = responsesOutput(gjson.GetBytes(r, "output"))
				check("responses", text, calls)
			}
			var in []byte
			for _, d := range tc.stream {
				in = append(in, "data: "+d+"\n\n"...)
			}
			in = append(in, "data: [DONE]\n\n"...)
			out := runConv(in, NewMessagesStream())
			var f Framer
			text, calls := "", []string(nil)
			var args []string
			for _, ev := range f.Flush(f.Feed(out, nil)) {
				d := gjson.ParseBytes(ev.Data)
				switch ev.Name {
				case "content_block_start":
					if b := d.Get("content_block"); b.Get("type").Str == "tool_use" {
						calls, args = append(calls, b.Get("name").Str), append(args, "")
					}
				case "content_block_delta":
					if d.Get("delta.type").Str == "text_delta" {
						text += d.Get("delta.text").Str
					} else {
						args[len(args)-1] += d.Get("delta.partial_json").Str
					}
				}
			}
			for i := range calls {
				calls[i] += "=" + args[i]
			}
			check("messages stream", text, calls)
			out = runConv(in, NewResponsesStream())
			var completed gjson.Result
			for _, ev := range f.Flush(f.Feed(out, nil)) {
				if ev.Name == "response.completed" {
					completed = gjson.ParseBytes(ev.Data).Get("response.output")
				}
			}
			text, calls = responsesOutput(completed)
			check("responses stream", text, calls)
		})
	}
}

// responsesOutput is a Responses output's text and its calls as
// name=arguments.
func responsesOutput(output gjson.Result) (text string, calls []string) {
	output.ForEach(func(_, it gjson.Result) bool {
		switch it.Get("type").Str {
		case "message":
			text += it.Get("content.0.text").Str
		case "function_call":
			calls = append(calls, it.Get("name").Str+"="+it.Get("arguments").Str)
		}
		return true
	})
	return text, calls
}
