package translate

import (
	"bytes"
	"encoding/json"
	"errors"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/tidwall/gjson"

	"github.com/stellwerk/stellwerk/internal/apierr"
)

// update rewrites the golden files: go test ./internal/translate -update
var update = flag.Bool("update", false, "rewrite golden files")

const (
	goldenDir   = "testdata/anthropic"
	testModel   = "claude-sonnet-4-5"
	testCreated = 1700000000
)

func pinNow(t *testing.T) {
	t.Helper()
	old := nowUnix
	nowUnix = func() int64 { return testCreated }
	t.Cleanup(func() { nowUnix = old })
}

// checkGolden compares got with the file at path, rewriting it under -update.
func checkGolden(t *testing.T, path string, got []byte) {
	t.Helper()
	if *update {
		if err := os.WriteFile(path, got, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run `go test ./internal/translate -update` and review the diff)", err)
	}
	if !bytes.Equal(got, want) {
		t.Errorf("output differs from %s; run `go test ./internal/translate -update` and review the diff.\ngot:\n%s", path, got)
	}
}

// indent makes a JSON golden file reviewable; key order is kept.
func indent(t *testing.T, b []byte) []byte {
	t.Helper()
	var buf bytes.Buffer
	if err := json.Indent(&buf, b, "", "  "); err != nil {
		t.Fatalf("output is not JSON: %v\n%s", err, b)
	}
	buf.WriteByte('\n')
	return buf.Bytes()
}

func cases(t *testing.T, dir, suffix string) map[string][]byte {
	t.Helper()
	paths, err := filepath.Glob(filepath.Join(goldenDir, dir, "*"+suffix))
	if err != nil || len(paths) == 0 {
		t.Fatalf("no %s cases in %s: %v", suffix, dir, err)
	}
	out := map[string][]byte{}
	for _, p := range paths {
		b, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		out[strings.TrimSuffix(p, suffix)] = b
	}
	return out
}

// TestToAnthropicRequestGolden: NAME.openai.json becomes NAME.anthropic.json,
// or NAME.error.json when the translation is refused.
func TestToAnthropicRequestGolden(t *testing.T) {
	for base, in := range cases(t, "request", ".openai.json") {
		t.Run(filepath.Base(base), func(t *testing.T) {
			out, err := ToAnthropicRequest(in, testModel)
			okPath, errPath := base+".anthropic.json", base+".error.json"
			if err != nil {
				var ae *apierr.Error
				if !errors.As(err, &ae) || ae.Kind != apierr.KindInvalid {
					t.Fatalf("error %v is not an *apierr.Error 400", err)
				}
				if ae.Param == "" {
					t.Errorf("error %q does not name the field", ae.Message)
				}
				if *update {
					os.Remove(okPath)
				}
				checkGolden(t, errPath, indent(t, ae.JSON()))
				return
			}
			if *update {
				os.Remove(errPath)
			}
			checkGolden(t, okPath, indent(t, out))
		})
	}
}

func TestFromAnthropicResponseGolden(t *testing.T) {
	pinNow(t)
	for base, in := range cases(t, "response", ".anthropic.json") {
		t.Run(filepath.Base(base), func(t *testing.T) {
			out, err := FromAnthropicResponse(in)
			if err != nil {
				t.Fatal(err)
			}
			checkGolden(t, base+".openai.json", indent(t, out))
		})
	}
}

func TestFromAnthropicErrorGolden(t *testing.T) {
	for base, in := range cases(t, "error", ".anthropic.json") {
		t.Run(filepath.Base(base), func(t *testing.T) {
			checkGolden(t, base+".openai.json", indent(t, FromAnthropicError(in)))
		})
	}
}

// runStream feeds a raw Anthropic SSE stream through the Framer and the
// converter, the way the proxy does.
func runStream(in []byte, includeUsage bool) (*AnthropicStream, []byte) {
	var f Framer
	s := NewAnthropicStream(includeUsage)
	var out []byte
	for _, ev := range f.Flush(f.Feed(in, nil)) {
		out = s.Event(ev, out)
	}
	return s, out
}

// TestAnthropicStreamGolden: NAME.sse becomes NAME.openai.sse; a name ending
// in _usage is converted as if the client set include_usage.
func TestAnthropicStreamGolden(t *testing.T) {
	pinNow(t)
	for base, in := range cases(t, "stream", ".sse") {
		if strings.HasSuffix(base, ".openai") {
			continue
		}
		t.Run(filepath.Base(base), func(t *testing.T) {
			_, out := runStream(in, strings.HasSuffix(base, "_usage"))
			if err := checkFrames(out); err != nil {
				t.Fatalf("%v\n%s", err, out)
			}
			checkGolden(t, base+".openai.sse", out)
		})
	}
}

// checkFrames reports whether out is only complete OpenAI SSE frames: JSON
// objects, at most one [DONE] and only last, nothing after an error frame.
func checkFrames(out []byte) error {
	for len(out) > 0 {
		rest, ok := bytes.CutPrefix(out, []byte("data: "))
		if !ok {
			return errors.New("frame does not start with \"data: \"")
		}
		payload, after, ok := bytes.Cut(rest, []byte("\n\n"))
		if !ok {
			return errors.New("frame does not end with a blank line")
		}
		if bytes.ContainsAny(payload, "\r\n") {
			return errors.New("payload spans lines")
		}
		out = after
		if string(payload) == "[DONE]" {
			if len(out) > 0 {
				return errors.New("frames after [DONE]")
			}
			return nil
		}
		if !json.Valid(payload) || !gjson.ParseBytes(payload).IsObject() {
			return errors.New("payload is not a JSON object: " + string(payload))
		}
		p := gjson.ParseBytes(payload)
		if p.Get("error").Exists() {
			if p.Get("error.message").String() == "" {
				return errors.New("error frame without a message")
			}
			if len(out) > 0 {
				return errors.New("frames after an error frame")
			}
			return nil
		}
		if p.Get("object").String() != "chat.completion.chunk" {
			return errors.New("payload is not a chat.completion.chunk: " + string(payload))
		}
	}
	return nil
}

func TestToAnthropicRequestRejects(t *testing.T) {
	cases := map[string]struct {
		body, param string
	}{
		"not json":              {`{"messages":`, ""},
		"not an object":         {`[1]`, ""},
		"no messages":           {`{"model":"m"}`, "messages"},
		"system only":           {`{"messages":[{"role":"system","content":"be brief"}]}`, "messages"},
		"blank user only":       {`{"messages":[{"role":"user","content":"  "}]}`, "messages"},
		"n=2":                   {`{"messages":[{"role":"user","content":"hi"}],"n":2}`, "n"},
		"n=0":                   {`{"messages":[{"role":"user","content":"hi"}],"n":0}`, "n"},
		"logprobs":              {`{"messages":[{"role":"user","content":"hi"}],"logprobs":true}`, "logprobs"},
		"legacy functions":      {`{"messages":[{"role":"user","content":"hi"}],"functions":[{"name":"f"}]}`, "functions"},
		"function role":         {`{"messages":[{"role":"function","name":"f","content":"1"}]}`, "messages[0].role"},
		"unknown role":          {`{"messages":[{"role":"narrator","content":"hi"}]}`, "messages[0].role"},
		"message not object":    {`{"messages":["hi"]}`, "messages[0]"},
		"content number":        {`{"messages":[{"role":"user","content":5}]}`, "messages[0].content"},
		"audio part":            {`{"messages":[{"role":"user","content":[{"type":"input_audio","input_audio":{"data":"AAAA","format":"wav"}}]}]}`, "messages[0].content[0].type"},
		"image in system":       {`{"messages":[{"role":"system","content":[{"type":"image_url","image_url":{"url":"https://x/y.png"}}]},{"role":"user","content":"hi"}]}`, "messages[0].content[0]"},
		"image from assistant":  {`{"messages":[{"role":"user","content":"hi"},{"role":"assistant","content":[{"type":"image_url","image_url":{"url":"https://x/y.png"}}]}]}`, "messages[1].content[0]"},
		"svg data url":          {`{"messages":[{"role":"user","content":[{"type":"image_url","image_url":{"url":"data:image/svg+xml;base64,PHN2Zz4="}}]}]}`, "messages[0].content[0].image_url.url"},
		"non-base64 data url":   {`{"messages":[{"role":"user","content":[{"type":"image_url","image_url":{"url":"data:image/png,abc"}}]}]}`, "messages[0].content[0].image_url.url"},
		"ftp image":             {`{"messages":[{"role":"user","content":[{"type":"image_url","image_url":{"url":"ftp://x/y.png"}}]}]}`, "messages[0].content[0].image_url.url"},
		"invalid arguments":     {`{"messages":[{"role":"assistant","tool_calls":[{"id":"c","type":"function","function":{"name":"f","arguments":"{oops"}}]}]}`, "messages[0].tool_calls[0].function.arguments"},
		"array arguments":       {`{"messages":[{"role":"assistant","tool_calls":[{"id":"c","type":"function","function":{"name":"f","arguments":"[1]"}}]}]}`, "messages[0].tool_calls[0].function.arguments"},
		"tool call without id":  {`{"messages":[{"role":"assistant","tool_calls":[{"type":"function","function":{"name":"f","arguments":"{}"}}]}]}`, "messages[0].tool_calls[0].id"},
		"tool without call id":  {`{"messages":[{"role":"tool","content":"x"}]}`, "messages[0].tool_call_id"},
		"custom tool":           {`{"messages":[{"role":"user","content":"hi"}],"tools":[{"type":"custom","custom":{"name":"g"}}]}`, "tools[0].type"},
		"tool without name":     {`{"messages":[{"role":"user","content":"hi"}],"tools":[{"type":"function","function":{}}]}`, "tools[0].function.name"},
		"bad tool_choice":       {`{"messages":[{"role":"user","content":"hi"}],"tool_choice":"sometimes"}`, "tool_choice"},
		"max_tokens zero":       {`{"messages":[{"role":"user","content":"hi"}],"max_tokens":0}`, "max_tokens"},
		"max_tokens fraction":   {`{"messages":[{"role":"user","content":"hi"}],"max_completion_tokens":1.5}`, "max_completion_tokens"},
		"temperature too high":  {`{"messages":[{"role":"user","content":"hi"}],"temperature":2.5}`, "temperature"},
		"top_p string":          {`{"messages":[{"role":"user","content":"hi"}],"top_p":"0.5"}`, "top_p"},
		"stop number":           {`{"messages":[{"role":"user","content":"hi"}],"stop":7}`, "stop"},
		"stream string":         {`{"messages":[{"role":"user","content":"hi"}],"stream":"yes"}`, "stream"},
		"user number":           {`{"messages":[{"role":"user","content":"hi"}],"user":7}`, "user"},
		"unknown format":        {`{"messages":[{"role":"user","content":"hi"}],"response_format":{"type":"yaml"}}`, "response_format.type"},
		"schema without schema": {`{"messages":[{"role":"user","content":"hi"}],"response_format":{"type":"json_schema","json_schema":{"name":"x"}}}`, "response_format.json_schema.schema"},
		"cache marker string":   {`{"messages":[{"role":"user","content":[{"type":"text","text":"hi","cache_control":"ephemeral"}]}]}`, "messages[0].content[0].cache_control"},
		"cache marker no type":  {`{"messages":[{"role":"user","content":[{"type":"text","text":"hi","cache_control":{"ttl":"1h"}}]}]}`, "messages[0].content[0].cache_control.type"},
		"cache marker ttl 3600": {`{"messages":[{"role":"user","content":[{"type":"text","text":"hi","cache_control":{"type":"ephemeral","ttl":3600}}]}]}`, "messages[0].content[0].cache_control.ttl"},
		"cache marker extra":    {`{"messages":[{"role":"user","content":[{"type":"text","text":"hi","cache_control":{"type":"ephemeral","scope":"org"}}]}]}`, "messages[0].content[0].cache_control"},
		"cache marker on tool":  {`{"messages":[{"role":"user","content":"hi"}],"tools":[{"type":"function","function":{"name":"f"},"cache_control":{}}]}`, "tools[0].cache_control.type"},
		"cache marker on image": {`{"messages":[{"role":"user","content":[{"type":"image_url","image_url":{"url":"https://x/y.png"},"cache_control":{"type":"ephemeral","ttl":"2h"}}]}]}`, "messages[0].content[0].cache_control.ttl"},
		"cache marker system":   {`{"messages":[{"role":"system","content":[{"type":"text","text":"s","cache_control":[]}]},{"role":"user","content":"hi"}]}`, "messages[0].content[0].cache_control"},
		// Anthropic's limit counts tools too: the fifth in its reading
		// order (tools, system, messages) is named.
		"five cache markers": {`{"messages":[{"role":"system","content":[{"type":"text","text":"s","cache_control":{"type":"ephemeral"}}]},` +
			`{"role":"user","content":[{"type":"text","text":"a","cache_control":{"type":"ephemeral"}},{"type":"text","text":"b","cache_control":{"type":"ephemeral"}}]},` +
			`{"role":"assistant","content":"ok"},{"role":"user","content":[{"type":"text","text":"c","cache_control":{"type":"ephemeral"}}]}],` +
			`"tools":[{"type":"function","function":{"name":"f"},"cache_control":{"type":"ephemeral"}}]}`, "messages[3].content[0].cache_control"},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			out, err := ToAnthropicRequest([]byte(tc.body), testModel)
			var ae *apierr.Error
			if !errors.As(err, &ae) {
				t.Fatalf("got %s, %v; want an *apierr.Error", out, err)
			}
			if ae.Kind != apierr.KindInvalid || ae.Param != tc.param {
				t.Errorf("got %d param %q (%s); want 400 param %q", apierr.HTTPStatus(ae), ae.Param, ae.Message, tc.param)
			}
		})
	}
}

// TestToAnthropicRequestFields checks single mappings a client would notice.
func TestToAnthropicRequestFields(t *testing.T) {
	const user = `"messages":[{"role":"user","content":"hi"}]`
	tools := `"tools":[{"type":"function","function":{"name":"f"}}]`
	cases := map[string]struct {
		body, path, want string
	}{
		"tool_choice auto":     {`{` + user + `,` + tools + `,"tool_choice":"auto"}`, "tool_choice", `{"type":"auto"}`},
		"tool_choice required": {`{` + user + `,` + tools + `,"tool_choice":"required"}`, "tool_choice", `{"type":"any"}`},
		"tool_choice none":     {`{` + user + `,` + tools + `,"tool_choice":"none"}`, "tool_choice", `{"type":"none"}`},
		"tool_choice named":    {`{` + user + `,` + tools + `,"tool_choice":{"type":"function","function":{"name":"f"}}}`, "tool_choice", `{"type":"tool","name":"f"}`},
		"tool_choice no tools": {`{` + user + `,"tool_choice":"auto"}`, "tool_choice", ``},
		"one tool call at a time": {`{` + user + `,` + tools + `,"parallel_tool_calls":false}`, "tool_choice",
			`{"type":"auto","disable_parallel_tool_use":true}`},
		"one at a time, required": {`{` + user + `,` + tools + `,"tool_choice":"required","parallel_tool_calls":false}`, "tool_choice",
			`{"type":"any","disable_parallel_tool_use":true}`},
		"one at a time, none":     {`{` + user + `,` + tools + `,"tool_choice":"none","parallel_tool_calls":false}`, "tool_choice", `{"type":"none"}`},
		"parallel allowed":        {`{` + user + `,` + tools + `,"parallel_tool_calls":true}`, "tool_choice", ``},
		"one at a time, no tools": {`{` + user + `,"parallel_tool_calls":false}`, "tool_choice", ``},
		"default schema":          {`{` + user + `,` + tools + `}`, "tools.0.input_schema", `{"type":"object","properties":{}}`},
		"model":                   {`{"model":"auto",` + user + `}`, "model", `"claude-sonnet-4-5"`},
		"max tokens default":      {`{` + user + `}`, "max_tokens", `4096`},
		"max tokens null":         {`{` + user + `,"max_tokens":null}`, "max_tokens", `4096`},
		"temperature clamped":     {`{` + user + `,"temperature":2}`, "temperature", `1`},
		"temperature zero":        {`{` + user + `,"temperature":0}`, "temperature", `0`},
		"stream false omitted":    {`{` + user + `,"stream":false}`, "stream", ``},
		"user":                    {`{` + user + `,"user":"u1"}`, "metadata", `{"user_id":"u1"}`},
		"name dropped":            {`{"messages":[{"role":"user","name":"bob","content":"hi"}]}`, "messages.0", `{"role":"user","content":[{"type":"text","text":"hi"}]}`},
		"uppercase data url":      {`{"messages":[{"role":"user","content":[{"type":"image_url","image_url":{"url":"data:IMAGE/JPEG;base64,AAAA"}}]}]}`, "messages.0.content.0.source", `{"type":"base64","media_type":"image/jpeg","data":"AAAA"}`},
		"image/jpg data url":      {`{"messages":[{"role":"user","content":[{"type":"image_url","image_url":{"url":"data:image/jpg;base64,AAAA"}}]}]}`, "messages.0.content.0.source", `{"type":"base64","media_type":"image/jpeg","data":"AAAA"}`},
		"system joined":           {`{"messages":[{"role":"system","content":"a"},{"role":"user","content":"hi"},{"role":"developer","content":"b"}]}`, "system", `"a\n\nb"`},
		"assistant first kept":    {`{"messages":[{"role":"assistant","content":"hello"},{"role":"user","content":"hi"}]}`, "messages.0.role", `"assistant"`},
		"users merged":            {`{"messages":[{"role":"user","content":"a"},{"role":"user","content":"b"}]}`, "messages.#", `1`},
		"html kept":               {`{"messages":[{"role":"user","content":"<b>&</b>"}]}`, "messages.0.content.0.text", `"<b>&</b>"`},
		// A tool that printed a blank line: Anthropic refuses a text block
		// of whitespace only, in a tool_result too.
		"blank tool result": {`{"messages":[{"role":"user","content":"hi"},{"role":"assistant","tool_calls":[{"id":"c1","type":"function","function":{"name":"f","arguments":"{}"}}]},{"role":"tool","tool_call_id":"c1","content":"\n"}]}`,
			"messages.2.content.0", `{"type":"tool_result","tool_use_id":"c1"}`},
		"blank tool result parts": {`{"messages":[{"role":"user","content":"hi"},{"role":"assistant","tool_calls":[{"id":"c1","type":"function","function":{"name":"f","arguments":"{}"}}]},{"role":"tool","tool_call_id":"c1","content":[{"type":"text","text":" "},{"type":"text","text":"ok"}]}]}`,
			"messages.2.content.0.content", `[{"type":"text","text":"ok"}]`},
		// Prompt-cache markers (LiteLLM's and OpenRouter's convention on
		// chat parts) reach the block they were on.
		"cache marker null": {`{"messages":[{"role":"user","content":[{"type":"text","text":"hi","cache_control":null}]}]}`,
			"messages.0.content.0", `{"type":"text","text":"hi"}`},
		"cache marker ttl null": {`{"messages":[{"role":"user","content":[{"type":"text","text":"hi","cache_control":{"ttl":null,"type":"ephemeral"}}]}]}`,
			"messages.0.content.0.cache_control", `{"type":"ephemeral"}`},
		"cache marker on refusal": {`{"messages":[{"role":"user","content":"hi"},{"role":"assistant","content":[{"type":"refusal","refusal":"no","cache_control":{"type":"ephemeral","ttl":"5m"}}]}]}`,
			"messages.1.content.0.cache_control", `{"type":"ephemeral","ttl":"5m"}`},
		"cache marker on pdf": {`{"messages":[{"role":"user","content":[{"type":"file","file":{"file_data":"data:application/pdf;base64,JVBERi0=","filename":"a.pdf"},"cache_control":{"type":"ephemeral","ttl":"1h"}}]}]}`,
			"messages.0.content.0.cache_control", `{"type":"ephemeral","ttl":"1h"}`},
		"system string without marker": {`{"messages":[{"role":"system","content":[{"type":"text","text":"a","cache_control":null},{"type":"text","text":"b"}]},{"role":"user","content":"hi"}]}`,
			"system", `"a\n\nb"`},
		// A blank part is not sent; its marker ends the same prefix on the
		// block before it, and with none before it, nothing.
		"blank part's marker moves": {`{"messages":[{"role":"system","content":[{"type":"text","text":"manual"},{"type":"text","text":"\n","cache_control":{"type":"ephemeral","ttl":"1h"}}]},{"role":"user","content":"hi"}]}`,
			"system", `[{"type":"text","text":"manual","cache_control":{"type":"ephemeral","ttl":"1h"}}]`},
		"blank first part's marker dropped": {`{"messages":[{"role":"user","content":"a"},{"role":"user","content":[{"type":"text","text":"","cache_control":{"type":"ephemeral"}},{"type":"text","text":"b"}]}]}`,
			"messages.0.content", `[{"type":"text","text":"a"},{"type":"text","text":"b"}]`},
		"a blank part's marker joins the one before": {`{"messages":[{"role":"system","content":[{"type":"text","text":"s","cache_control":{"type":"ephemeral"}}]},` +
			`{"role":"user","content":[{"type":"text","text":"a","cache_control":{"type":"ephemeral"}},{"type":"text","text":" ","cache_control":{"type":"ephemeral"}},{"type":"text","text":"b","cache_control":{"type":"ephemeral"}}]}],` +
			`"tools":[{"type":"function","function":{"name":"f"},"cache_control":{"type":"ephemeral"}}]}`, "messages.0.content.#.cache_control.type", `["ephemeral","ephemeral"]`},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			out, err := ToAnthropicRequest([]byte(tc.body), testModel)
			if err != nil {
				t.Fatal(err)
			}
			if got := gjson.GetBytes(out, tc.path).Raw; got != tc.want {
				t.Errorf("%s = %s, want %s\nin %s", tc.path, got, tc.want, out)
			}
		})
	}
}

func TestFromAnthropicResponseInvalid(t *testing.T) {
	for name, body := range map[string]string{
		"not json":   `{"id":`,
		"array":      `[]`,
		"error body": `{"type":"error","error":{"type":"api_error","message":"boom"}}`,
	} {
		t.Run(name, func(t *testing.T) {
			_, err := FromAnthropicResponse([]byte(body))
			var ae *apierr.Error
			if !errors.As(err, &ae) || ae.Kind != apierr.KindUpstream {
				t.Errorf("got %v, want an *apierr.Error 502", err)
			}
		})
	}
}

func TestAnthropicStreamUsage(t *testing.T) {
	in, err := os.ReadFile(filepath.Join(goldenDir, "stream", "text_usage.sse"))
	if err != nil {
		t.Fatal(err)
	}
	var f Framer
	events := f.Flush(f.Feed(in, nil))
	s := NewAnthropicStream(false)
	if _, _, ok := s.Usage(); ok {
		t.Error("usage reported before any event")
	}
	var out []byte
	for _, ev := range events {
		out = s.Event(ev, out)
	}
	if p, c, ok := s.Usage(); !ok || p != 125 || c != 15 {
		t.Errorf("usage = %d, %d, %v; want 125 (25 input + 100 cache read), 15, true", p, c, ok)
	}
	if bytes.Contains(out, []byte(`"usage"`)) {
		t.Error("usage chunk sent although the client did not ask for it")
	}
	if !bytes.HasSuffix(out, []byte("data: [DONE]\n\n")) {
		t.Error("stream does not end with [DONE]")
	}
	if more := s.Event(Event{Name: "content_block_delta", Data: []byte(`{"index":0,"delta":{"type":"text_delta","text":"late"}}`)}, nil); len(more) != 0 {
		t.Errorf("event after message_stop produced %q", more)
	}
}

// TestAnthropicStreamFinishWithoutStopReason: a stream whose message_delta
// lacks a stop_reason still ends with a finish_reason before [DONE].
func TestAnthropicStreamFinishWithoutStopReason(t *testing.T) {
	pinNow(t)
	s := NewAnthropicStream(false)
	var out []byte
	out = s.Event(Event{Data: []byte(`{"type":"message_start","message":{"id":"m","model":"c"}}`)}, out)
	out = s.Event(Event{Name: "message_delta", Data: []byte(`{"delta":{},"usage":{"output_tokens":3}}`)}, out)
	out = s.Event(Event{Name: "message_stop", Data: []byte(`{}`)}, out)
	want := `data: {"id":"m","object":"chat.completion.chunk","created":1700000000,"model":"c","choices":[{"index":0,"delta":{"role":"assistant","content":""},"logprobs":null,"finish_reason":null}]}

data: {"id":"m","object":"chat.completion.chunk","created":1700000000,"model":"c","choices":[{"index":0,"delta":{},"logprobs":null,"finish_reason":"stop"}]}

data: [DONE]

`
	if string(out) != want {
		t.Errorf("got\n%s\nwant\n%s", out, want)
	}
}

// TestAnthropicStreamRunTogether: events without the blank line between
// them frame as one event whose data is several objects, named by the last
// event line (message_stop). It used to end the translated stream as an
// empty, complete answer, charged nothing (the chaos probe); it is
// skipped, and the stream stays unfinished, so the edge ends it as
// incomplete.
func TestAnthropicStreamRunTogether(t *testing.T) {
	in := "event: message_start\ndata: {\"type\":\"message_start\",\"message\":{\"id\":\"m\",\"model\":\"c\",\"usage\":{\"input_tokens\":5,\"output_tokens\":1}}}\n" +
		"event: content_block_delta\ndata: {\"type\":\"content_block_delta\",\"index\":0,\"delta\":{\"type\":\"text_delta\",\"text\":\"hi\"}}\n" +
		"event: message_stop\ndata: {\"type\":\"message_stop\"}\n"
	var f Framer
	events := f.Flush(f.Feed([]byte(in), nil))
	s := NewAnthropicStream(false)
	var out []byte
	for _, ev := range events {
		out = s.Event(ev, out)
	}
	if s.Ended() || len(out) != 0 {
		t.Errorf("ended %v, wrote %q", s.Ended(), out)
	}
}

// TestCacheWrites: Anthropic's cache writes split by how long they are
// kept; without the split (older API versions) all are five-minute ones,
// and the total, when given, is what they sum to.
func TestCacheWrites(t *testing.T) {
	for name, tc := range map[string]struct {
		usage    string
		w5m, w1h int
	}{
		"split":            {`{"cache_creation_input_tokens":1000,"cache_creation":{"ephemeral_5m_input_tokens":600,"ephemeral_1h_input_tokens":400}}`, 600, 400},
		"total only":       {`{"cache_creation_input_tokens":1000}`, 1000, 0},
		"split only":       {`{"cache_creation":{"ephemeral_5m_input_tokens":600,"ephemeral_1h_input_tokens":400}}`, 600, 400},
		"split over total": {`{"cache_creation_input_tokens":300,"cache_creation":{"ephemeral_5m_input_tokens":600,"ephemeral_1h_input_tokens":400}}`, 0, 300},
		"none":             {`{"input_tokens":5}`, 0, 0},
		"zero":             {`{"cache_creation_input_tokens":0,"cache_creation":{"ephemeral_5m_input_tokens":0,"ephemeral_1h_input_tokens":0}}`, 0, 0},
		"split null":       {`{"cache_creation_input_tokens":70,"cache_creation":null}`, 70, 0},
	} {
		t.Run(name, func(t *testing.T) {
			if w5m, w1h := CacheWrites(gjson.Parse(tc.usage)); w5m != tc.w5m || w1h != tc.w1h {
				t.Errorf("%d, %d; want %d, %d", w5m, w1h, tc.w5m, tc.w1h)
			}
		})
	}
}

// TestTokens: a provider's usage count is read as at most MaxTokens, and
// a negative one or NaN (gjson reads NaN as a number) as -1 (the red team:
// NaN read as the most negative int).
func TestTokens(t *testing.T) {
	for raw, want := range map[string]int{"12": 12, "1.5": 1, "-3": -1, "NaN": -1, "1e300": MaxTokens, "4611686018427387904": MaxTokens, `"12"`: 0} {
		if got := Tokens(gjson.Parse(`{"n":` + raw + `}`).Get("n")); got != want {
			t.Errorf("%s: %d, want %d", raw, got, want)
		}
	}
}

// TestAnthropicStreamOtherOutput: the output a chat client never sees as
// text — extended thinking, a tool's input — is still the provider's
// output, and a stream cut short is charged what was counted of it.
func TestAnthropicStreamOtherOutput(t *testing.T) {
	s := NewAnthropicStream(false)
	for _, c := range []struct{ data, text, other string }{
		{`{"type":"message_start","message":{"id":"m","model":"c","usage":{"input_tokens":3,"output_tokens":1}}}`, "", ""},
		{`{"type":"content_block_delta","index":0,"delta":{"type":"thinking_delta","thinking":"First, the clause."}}`, "", "First, the clause."},
		{`{"type":"content_block_delta","index":0,"delta":{"type":"signature_delta","signature":"EqQB"}}`, "", ""},
		{`{"type":"content_block_delta","index":1,"delta":{"type":"text_delta","text":"It is"}}`, "It is", ""},
		{`{"type":"content_block_delta","index":2,"delta":{"type":"input_json_delta","partial_json":"{\"city\":"}}`, "", `{"city":`},
	} {
		out := s.Event(Event{Data: []byte(c.data)}, nil)
		if s.TextDelta() != c.text || s.OtherOutput() != c.other {
			t.Errorf("%s: text %q other %q, want %q %q", c.data, s.TextDelta(), s.OtherOutput(), c.text, c.other)
		}
		if c.other != "" && strings.Contains(string(out), c.other) {
			t.Errorf("%s reached the client: %s", c.other, out)
		}
	}
	ch := NewChain(NewAnthropicStream(false), NewResponsesStream())
	ch.Event(Event{Data: []byte(`{"type":"content_block_delta","index":0,"delta":{"type":"thinking_delta","thinking":"Hmm."}}`)}, nil)
	if ch.OtherOutput() != "Hmm." {
		t.Errorf("through a chain: %q", ch.OtherOutput())
	}
}

// TestResponsesCacheMarkerDropped: Responses input parts have no
// cache_control; a client that puts one there anyway gets its request
// translated for an Anthropic model, without the marker.
func TestResponsesCacheMarkerDropped(t *testing.T) {
	in := `{"model":"m","input":[{"role":"user","content":[{"type":"input_text","text":"manual","cache_control":{"type":"ephemeral","ttl":"24h"}},{"type":"input_text","text":"hi"}]}]}`
	out, err := ResponsesToAnthropic([]byte(in), testModel)
	if err != nil {
		t.Fatal(err)
	}
	if got := gjson.GetBytes(out, "messages.0.content").Raw; got != `[{"type":"text","text":"manual"},{"type":"text","text":"hi"}]` {
		t.Errorf("content %s", got)
	}
}

func TestContextOverflow(t *testing.T) {
	for name, tc := range map[string]struct {
		body string
		want bool
	}{
		"openai":            {`{"error":{"message":"This model's maximum context length is 200000 tokens.","type":"invalid_request_error","param":"messages","code":"context_length_exceeded"}}`, true},
		"anthropic":         {`{"type":"error","error":{"type":"invalid_request_error","message":"prompt is too long: 207504 tokens > 200000 maximum"}}`, true},
		"another parameter": {`{"error":{"message":"Invalid value for 'temperature'","type":"invalid_request_error","param":"temperature","code":null}}`, false},
		"anthropic other":   {`{"type":"error","error":{"type":"invalid_request_error","message":"messages: at least one message is required"}}`, false},
		"not json":          {`<html>prompt is too long</html>`, false},
		"vllm":              {`{"object":"error","message":"This model's maximum context length is 4096 tokens. However, you requested 4490 tokens (4390 in the messages, 100 in the completion). Please reduce the length of the messages or completion.","type":"BadRequestError","param":null,"code":400}`, true},
		"vllm wrapped":      {`{"error":{"message":"This model's maximum context length is 4096 tokens. However, you requested 4490 tokens.","type":"BadRequestError","param":null,"code":400}}`, true},
		"vllm engine":       {`{"error":{"message":"The decoder prompt (length 5000) is longer than the maximum model length of 4096. Make sure that max_model_len is no smaller than the number of text tokens.","type":"BadRequestError","code":400}}`, true},
		"llama.cpp":         {`{"error":{"code":400,"message":"the request exceeds the available context size, try increasing it","type":"exceed_context_size_error","n_prompt_tokens":5000,"n_ctx":4096}}`, true},
		"vllm other":        {`{"object":"error","message":"[{'type': 'missing', 'loc': ('body', 'messages'), 'msg': 'Field required'}]","type":"BadRequestError","param":null,"code":400}`, false},
		"vllm other model":  {`{"object":"error","message":"The model ` + "`llama3`" + ` does not exist.","type":"NotFoundError","param":null,"code":404}`, false},
		"llama.cpp other":   {`{"error":{"code":400,"message":"'messages' is required","type":"invalid_request_error"}}`, false},
		"message elsewhere": {`{"error":{"message":"invalid value: This model's maximum context length is 4096 tokens","type":"BadRequestError"}}`, false},
		"object not error":  {`{"object":"chat.completion","message":"This model's maximum context length is 4096 tokens."}`, false},
	} {
		if got := ContextOverflow([]byte(tc.body)); got != tc.want {
			t.Errorf("%s: %v, want %v", name, got, tc.want)
		}
	}
}

func TestOverflowError(t *testing.T) {
	for name, tc := range map[string]struct{ body, msg string }{
		"vllm":      {`{"object":"error","message":"This model's maximum context length is 4096 tokens.","type":"BadRequestError","param":null,"code":400}`, "This model's maximum context length is 4096 tokens."},
		"llama.cpp": {`{"error":{"code":400,"message":"the request exceeds the available context size, try increasing it","type":"exceed_context_size_error"}}`, "the request exceeds the available context size, try increasing it"},
	} {
		out := OverflowError([]byte(tc.body))
		if c, m, p := gjson.GetBytes(out, "error.code").Str, gjson.GetBytes(out, "error.message").Str, gjson.GetBytes(out, "error.param").Str; c != "context_length_exceeded" || m != tc.msg || p != "messages" {
			t.Errorf("%s: %s", name, out)
		}
		if c := gjson.GetBytes(FromAnthropicError([]byte(tc.body)), "error.code").Str; c != "context_length_exceeded" {
			t.Errorf("%s: FromAnthropicError code %q", name, c)
		}
	}
}
