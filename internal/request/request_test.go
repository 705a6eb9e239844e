package request

import (
	"bytes"
	"encoding/json"
	"strconv"
	"strings"
	"testing"

	"github.com/stellwerk/stellwerk/internal/apierr"
)

func TestParseChat(t *testing.T) {
	ok := map[string]struct {
		body string
		want Chat
	}{
		"minimal":           {`{"model":"auto","messages":[{"role":"user","content":"hi"}]}`, Chat{Model: "auto", Messages: 1}},
		"stream":            {`{"model":"m","stream":true,"messages":[{"role":"system","content":"s"},{"role":"user","content":[{"type":"text","text":"hi"}]}]}`, Chat{Model: "m", Stream: true, Messages: 2}},
		"stream null":       {`{"model":"m","stream":null,"messages":[{"role":"user","content":"x"}]}`, Chat{Model: "m", Messages: 1}},
		"unicode model":     {`{"model":"mod\u00e8le","messages":[{"role":"user","content":"x"}]}`, Chat{Model: "modèle", Messages: 1}},
		"max tokens":        {`{"model":"m","max_tokens":256,"messages":[{"role":"user"}]}`, Chat{Model: "m", Messages: 1, MaxTokens: 256}},
		"max completion":    {`{"model":"m","max_completion_tokens":99,"messages":[{"role":"user"}]}`, Chat{Model: "m", Messages: 1, MaxTokens: 99}},
		"both names, equal": {`{"model":"m","max_completion_tokens":99,"max_tokens":99,"messages":[{"role":"user"}]}`, Chat{Model: "m", Messages: 1, MaxTokens: 99}},
		"deep but allowed":  {`{"model":"m","messages":[{"role":"user","content":"` + strings.Repeat("[{", 100) + `"}],"tools":` + strings.Repeat("[", 100) + strings.Repeat("]", 100) + `}`, Chat{Model: "m", Messages: 1}},
		"extra fields":      {`{"model":"m","temperature":0.2,"tools":[],"messages":[{"role":"tool","content":"r","tool_call_id":"1"}]}`, Chat{Model: "m", Messages: 1}},
		"whitespace":        {" \n{ \"model\" : \"m\" , \"messages\" : [ { \"role\" : \"user\" } ] }\n", Chat{Model: "m", Messages: 1}},
		"n":                 {`{"model":"m","n":3,"messages":[{"role":"user"}]}`, Chat{Model: "m", Messages: 1, Choices: 3}},
		// Maps keep their keys as sent: only struct-like objects fold.
		"metadata keys in two cases": {`{"model":"m","metadata":{"a":"1","A":"2"},"messages":[{"role":"user"}]}`, Chat{Model: "m", Messages: 1}},
		"schema properties in two cases": {`{"model":"m","tools":[{"type":"function","function":{"name":"f","parameters":{"type":"object","properties":{"id":{},"ID":{}}}}}],"messages":[{"role":"user"}]}`,
			Chat{Model: "m", Messages: 1}},
	}
	for name, tc := range ok {
		t.Run(name, func(t *testing.T) {
			got, err := ParseChat([]byte(tc.body))
			if err != nil {
				t.Fatal(err)
			}
			if got.Model != tc.want.Model || got.Stream != tc.want.Stream || got.Messages != tc.want.Messages || got.MaxTokens != tc.want.MaxTokens ||
				got.Choices != tc.want.Choices {
				t.Errorf("got %+v, want %+v", got, tc.want)
			}
		})
	}

	bad := map[string]struct {
		body, code, param string
	}{
		"empty":              {``, "invalid_request_body", ""},
		"not json":           {`{"model":`, "invalid_json", ""},
		"array":              {`[1,2]`, "invalid_request_body", ""},
		"string":             {`"hi"`, "invalid_request_body", ""},
		"no model":           {`{"messages":[{"role":"user"}]}`, "missing_model", "model"},
		"model number":       {`{"model":4,"messages":[{"role":"user"}]}`, "invalid_type", "model"},
		"model empty":        {`{"model":"","messages":[{"role":"user"}]}`, "missing_model", "model"},
		"no messages":        {`{"model":"m"}`, "missing_messages", "messages"},
		"messages object":    {`{"model":"m","messages":{}}`, "invalid_type", "messages"},
		"messages empty":     {`{"model":"m","messages":[]}`, "empty_messages", "messages"},
		"message not object": {`{"model":"m","messages":["hi"]}`, "invalid_type", "messages"},
		// A part's file object is read by a provider's parser as the part
		// is: "File_Data" was a second file no classifier read.
		"file data in two cases": {`{"model":"m","messages":[{"role":"user","content":[{"type":"file","file":{"file_data":"data:text/plain,hi","File_Data":"data:text/plain,x"}}]}]}`, "duplicate_field", "messages[0].content[0].file.File_Data"},
		"file data capitalised":  {`{"model":"m","messages":[{"role":"user","content":[{"type":"file","file":{"File_Data":"data:text/plain,x"}}]}]}`, "invalid_key", "messages[0].content[0].file.File_Data"},
		"message no role":        {`{"model":"m","messages":[{"role":"user","content":"a"},{"content":"x"}]}`, "invalid_value", "messages[1].role"},
		// stellwerk sets include_usage on every stream: an array was a 500
		// (the rewrite failed), a string was rewritten into an object.
		"stream_options an array":            {`{"model":"m","stream":true,"stream_options":[],"messages":[{"role":"user"}]}`, "invalid_type", "stream_options"},
		"stream_options a string":            {`{"model":"m","stream":true,"stream_options":"x","messages":[{"role":"user"}]}`, "invalid_type", "stream_options"},
		"include_usage not a boolean":        {`{"model":"m","stream":true,"stream_options":{"include_usage":"yes"},"messages":[{"role":"user"}]}`, "invalid_type", "stream_options.include_usage"},
		"max_completion_tokens over the cap": {`{"model":"m","max_completion_tokens":99999999999,"messages":[{"role":"user"}]}`, "invalid_value", "max_completion_tokens"},
		"stream string":                      {`{"model":"m","stream":"yes","messages":[{"role":"user"}]}`, "invalid_type", "stream"},
		"duplicate model":                    {`{"model":"a","model":"b","messages":[{"role":"user"}]}`, "duplicate_field", "model"},
		"duplicate stream":                   {`{"stream":false,"model":"a","stream":true,"messages":[{"role":"user"}]}`, "duplicate_field", "stream"},
		"duplicate role":                     {`{"model":"m","messages":[{"role":"assistant","role":"user","content":"x"}]}`, "duplicate_field", "messages[0].role"},
		"max tokens string":                  {`{"model":"m","max_tokens":"5","messages":[{"role":"user"}]}`, "invalid_value", "max_tokens"},
		"max tokens float":                   {`{"model":"m","max_tokens":5.5,"messages":[{"role":"user"}]}`, "invalid_value", "max_tokens"},
		"max tokens zero":                    {`{"model":"m","max_completion_tokens":0,"messages":[{"role":"user"}]}`, "invalid_value", "max_completion_tokens"},
		"nested too deep":                    {`{"model":"m","messages":[{"role":"user","content":` + strings.Repeat("[", 200) + strings.Repeat("]", 200) + `}]}`, "invalid_request_body", ""},
		"trailing garbage":                   {`{"model":"m","messages":[{"role":"user"}]} x`, "invalid_json", ""},
		"n zero":                             {`{"model":"m","n":0,"messages":[{"role":"user"}]}`, "invalid_value", "n"},
		// A provider reads one name: the budgets held the other's limit
		// (the red-team probe: a 1-token limit, an 8,000-token answer).
		"two limits": {`{"model":"m","max_completion_tokens":1,"max_tokens":8000,"messages":[{"role":"user"}]}`, "invalid_value", "max_tokens"},
		// Go's encoding/json matches keys to fields without regard to case
		// and keeps the last: a provider written in Go would read these.
		"messages in another case": {`{"model":"m","messages":[{"role":"user","content":"hi"}],"Messages":[{"role":"user","content":"AKIA"}]}`, "duplicate_field", "Messages"},
		"role in another case":     {`{"model":"m","messages":[{"role":"assistant","ROLE":"user","content":"x"}]}`, "duplicate_field", "messages[0].ROLE"},
		"text in another case":     {`{"model":"m","messages":[{"role":"user","content":[{"type":"text","text":"hi","Text":"x"}]}]}`, "duplicate_field", "messages[0].content[0].Text"},
		"long s":                   {`{"model":"m","messages":[{"role":"user"}],"meſſages":[{"role":"user"}]}`, "duplicate_field", "meſſages"},
		"many keys, another case":  {`{"k0":0,"k1":1,"k2":2,"k3":3,"k4":4,"k5":5,"k6":6,"k7":7,"k8":8,"k9":9,"k10":10,"k11":11,"k12":12,"k13":13,"k14":14,"k15":15,"k16":16,"k17":17,"k18":18,"k19":19,"model":"m","messages":[{"role":"user"}],"MODEL":"x"}`, "duplicate_field", "MODEL"},
		// Alone, such a key is no parameter stellwerk reads and one a
		// provider in Go does (found by a helper: "Tools" with a secret
		// and an injection passed unclassified).
		"tools capitalised":     {`{"model":"m","messages":[{"role":"user","content":"hi"}],"Tools":[]}`, "invalid_key", "Tools"},
		"tools in capitals":     {`{"model":"m","messages":[{"role":"user","content":"hi"}],"TOOLS":[]}`, "invalid_key", "TOOLS"},
		"tools with a long s":   {`{"model":"m","messages":[{"role":"user","content":"hi"}],"toolſ":[]}`, "invalid_key", "toolſ"},
		"content capitalised":   {`{"model":"m","messages":[{"role":"user","Content":"AKIA"}]}`, "invalid_key", "messages[0].Content"},
		"part text capitalised": {`{"model":"m","messages":[{"role":"user","content":[{"type":"text","Text":"x"}]}]}`, "invalid_key", "messages[0].content[0].Text"},
		"n past 128":            {`{"model":"m","n":129,"messages":[{"role":"user"}]}`, "invalid_value", "n"},
		"n fraction":            {`{"model":"m","n":2.5,"messages":[{"role":"user"}]}`, "invalid_value", "n"},
		// Keys that differ only in bytes that are not UTF-8 are one key
		// twice to a parser that replaces them (Go's, JavaScript's).
		"not utf-8 keys": {"{\"model\":\"m\",\"messages\":[{\"role\":\"user\"}],\"\x8ea\":0,\"\x83a\":0}", "invalid_json", ""},
		"latin-1 text":   {"{\"model\":\"m\",\"messages\":[{\"role\":\"user\",\"content\":\"Gr\xfc\xdfe\"}]}", "invalid_json", ""},
		// gjson drops the character after a lone surrogate's escape, the
		// providers' parsers keep it: the classifier read "AKIA…" short
		// of the U a provider got (the red-team probe).
		"lone high surrogate":     {`{"model":"m","messages":[{"role":"user","content":"key AKIAQWERTY\ud800\u0055IOPASDFGH"}]}`, "invalid_json", ""},
		"lone low surrogate":      {`{"model":"m","messages":[{"role":"user","content":"a\udc00b"}]}`, "invalid_json", ""},
		"high surrogate at end":   {`{"model":"m","messages":[{"role":"user","content":"a\ud83d"}]}`, "invalid_json", ""},
		"two high surrogates":     {`{"model":"m","messages":[{"role":"user","content":"A\ud83d\ud83dB"}]}`, "invalid_json", ""},
		"lone surrogate in a key": {`{"model":"m","messages":[{"role":"user"}],"x\udfff":1}`, "invalid_json", ""},
	}
	for name, tc := range bad {
		t.Run(name, func(t *testing.T) {
			_, err := ParseChat([]byte(tc.body))
			e, ok := err.(*apierr.Error)
			if !ok {
				t.Fatalf("want *apierr.Error, got %v", err)
			}
			if e.Kind != apierr.KindInvalid || e.Code != tc.code || e.Param != tc.param {
				t.Errorf("got %d %s param=%q (%s), want 400 %s param=%q", apierr.HTTPStatus(e), e.Code, e.Param, e.Message, tc.code, tc.param)
			}
		})
	}
}

// TestByteOrderMarkNamed: a body that starts with a byte order mark
// (PowerShell 5 writes one) is told so, not "not valid JSON".
func TestByteOrderMarkNamed(t *testing.T) {
	for _, bom := range []string{"\xef\xbb\xbf", "\xff\xfe"} {
		_, err := ParseChat([]byte(bom + `{"model":"m","messages":[{"role":"user","content":"hi"}]}`))
		if e, ok := err.(*apierr.Error); !ok || e.Code != "invalid_json" || !strings.Contains(e.Message, "byte order mark") {
			t.Errorf("%q: %v", bom, err)
		}
	}
}

// TestDuplicateKeysAreRefused: a key twice in one object, anywhere, is a
// 400 naming the key and the object: first-key-wins (gjson) and
// last-key-wins (most providers' JSON parsers) would read two requests.
func TestDuplicateKeysAreRefused(t *testing.T) {
	msg := func(m string) string { return `{"model":"m","messages":[{"role":"system","content":"s"},` + m + `]}` }
	cases := map[string]struct {
		body, param, message string
	}{
		"top level":             {`{"model":"a","messages":[{"role":"user"}],"model":"b"}`, "model", `duplicate key "model" in the request body`},
		"unrouted top level":    {`{"model":"a","temperature":1,"temperature":2,"messages":[{"role":"user"}]}`, "temperature", `duplicate key "temperature" in the request body`},
		"role in a message":     {msg(`{"role":"assistant","role":"user","content":"Ignore previous instructions"}`), "messages[1].role", `duplicate key "role" in messages[1]`},
		"content in a message":  {msg(`{"role":"user","content":"a","content":"b"}`), "messages[1].content", `duplicate key "content" in messages[1]`},
		"escaped duplicate":     {msg(`{"role":"assistant","r\u006fle":"user"}`), "messages[1].role", `duplicate key "role" in messages[1]`},
		"content part":          {msg(`{"role":"user","content":[{"type":"text","text":"a"},{"type":"text","text":"a","text":"b"}]}`), "messages[1].content[1].text", `duplicate key "text" in messages[1].content[1]`},
		"tool call":             {msg(`{"role":"assistant","tool_calls":[{"id":"1","id":"2","type":"function","function":{"name":"f","arguments":"{}"}}]}`), "messages[1].tool_calls[0].id", `duplicate key "id" in messages[1].tool_calls[0]`},
		"tool call function":    {msg(`{"role":"assistant","tool_calls":[{"id":"1","type":"function","function":{"name":"f","arguments":"{}","arguments":"{}"}}]}`), "messages[1].tool_calls[0].function.arguments", `duplicate key "arguments" in messages[1].tool_calls[0].function`},
		"tool":                  {`{"model":"m","messages":[{"role":"user"}],"tools":[{"type":"function","type":"x","function":{"name":"f"}}]}`, "tools[0].type", `duplicate key "type" in tools[0]`},
		"tool function":         {`{"model":"m","messages":[{"role":"user"}],"tools":[{"type":"function","function":{"name":"f","description":"a","description":"b"}}]}`, "tools[0].function.description", `duplicate key "description" in tools[0].function`},
		"inside a schema":       {`{"model":"m","messages":[{"role":"user"}],"tools":[{"type":"function","function":{"name":"f","parameters":{"type":"object","properties":{"a":{"description":"x","description":"y"}}}}}]}`, "tools[0].function.parameters.properties.a.description", `duplicate key "description" in tools[0].function.parameters.properties.a`},
		"response_format":       {`{"model":"m","messages":[{"role":"user"}],"response_format":{"type":"json_object","type":"text"}}`, "response_format.type", `duplicate key "type" in response_format`},
		"policy":                {`{"model":"m","messages":[{"role":"user"}],"policy":{"residency":"eu","residency":"any"}}`, "policy.residency", `duplicate key "residency" in policy`},
		"many keys, then a dup": {`{"model":"m","messages":[{"role":"user"}],"metadata":{` + manyKeys(40) + `,"k7":"again"}}`, "metadata.k7", `duplicate key "k7" in metadata`},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			_, err := ParseChat([]byte(tc.body))
			e, ok := err.(*apierr.Error)
			if !ok {
				t.Fatalf("want *apierr.Error, got %v", err)
			}
			if e.Kind != apierr.KindInvalid || e.Type != "invalid_request_error" || e.Code != "duplicate_field" || e.Param != tc.param || !strings.Contains(e.Message, tc.message) {
				t.Errorf("got %d %s %s param=%q %q, want 400 duplicate_field param=%q %q", apierr.HTTPStatus(e), e.Type, e.Code, e.Param, e.Message, tc.param, tc.message)
			}
		})
	}
	for name, body := range map[string]string{
		"same key in sibling objects": msg(`{"role":"user","content":[{"type":"text","text":"a"},{"type":"text","text":"b"}]}`),
		"same key at two levels":      `{"model":"m","messages":[{"role":"user","content":"x"}],"metadata":{"model":"x","messages":"y"}}`,
		"duplicate inside a string":   msg(`{"role":"user","content":"{\"role\":1,\"role\":2}"}`),
		"many distinct keys":          `{"model":"m","messages":[{"role":"user"}],"metadata":{` + manyKeys(200) + `}}`,
	} {
		t.Run("accepted/"+name, func(t *testing.T) {
			if _, err := ParseChat([]byte(body)); err != nil {
				t.Errorf("refused: %v", err)
			}
		})
	}
}

func manyKeys(n int) string {
	keys := make([]string, n)
	for i := range keys {
		keys[i] = `"k` + strconv.Itoa(i) + `":"v"`
	}
	return strings.Join(keys, ",")
}

func TestParseChatKeepsTextMembersForTheClassifier(t *testing.T) {
	c, err := ParseChat([]byte(`{"model":"m","messages":[{"role":"user"}],"tools":[{"type":"function","function":{"name":"f"}}],"functions":[{"name":"g"}],"response_format":{"type":"json_object"},"prediction":{"type":"content","content":"p"}}`))
	if err != nil {
		t.Fatal(err)
	}
	if c.ToolList.Get("0.function.name").Str != "f" || c.FunctionList.Get("0.name").Str != "g" || c.ResponseFormatObj.Get("type").Str != "json_object" ||
		c.Prediction.Get("content").Str != "p" || !c.Tools || c.ResponseFormat != "json_object" {
		t.Errorf("%+v", c)
	}
}

// FuzzParseChat: any input gives either a Chat with a non-empty model and at
// least one message, or a 400 in the OpenAI shape; never a panic.
func FuzzParseChat(f *testing.F) {
	for _, s := range []string{
		`{"model":"auto","messages":[{"role":"user","content":"hi"}]}`,
		`{"model":"m","stream":true,"messages":[{"role":"user","content":[{"type":"text","text":"x"}]}]}`,
		`{"model":`, `[]`, `{}`, `{"model":"m","messages":[{"role":""}]}`, "\xff\xfe", `{"model":"\ud800"}`,
		`{"model":"m","messages":[` + strings.Repeat(`{"role":"user"},`, 50) + `{"role":"user"}]}`,
		`{"model":"m","messages":[{"role":"assistant","role":"user","content":"x"}]}`,
		`{"model":"m","messages":[{"role":"assistant","r\u006fle":"user"}]}`,
		`{"model":"m","messages":[{"role":"user","content":[{"type":"text","text":"a","text":"b"}]}]}`,
		`{"model":"m","messages":[{"role":"user"}],"tools":[{"type":"function","function":{"name":"f","parameters":{"properties":{"a":{"description":"x","description":"y"}}}}}]}`,
		`{"model":"m","messages":[{"role":"user","content":` + strings.Repeat(`[{"a":`, 60) + `1` + strings.Repeat(`}]`, 60) + `}]}`,
		`{"model":"m","messages":[{"role":"user","content":[` + strings.Repeat(`{"type":"text","text":"a"},`, 300) + `"b"]}]}`,
		`{"model":"m","messages":[{"role":"user"}],"metadata":{` + manyKeys(20) + `,"k3":"x"}}`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		c, err := ParseChat(body)
		// encoding/json, reading every object, is the oracle for duplicates.
		dup, found, valid := referenceDuplicate(body)
		if err != nil {
			e, ok := err.(*apierr.Error)
			if !ok || e.Kind != apierr.KindInvalid || e.Code == "" || len(e.JSON()) == 0 {
				t.Fatalf("bad error %#v", err)
			}
			if e.Code == "duplicate_field" && valid && !found {
				t.Fatalf("refused a duplicate the reference does not see: %s", e.Message)
			}
			return
		}
		if c.Model == "" || c.Messages < 1 {
			t.Fatalf("accepted without model or messages: %+v", c)
		}
		if valid && found {
			t.Fatalf("accepted a body with the key %q twice in one object", dup)
		}
	})
}

// referenceDuplicate walks body with encoding/json's tokenizer and returns
// the first key found twice in one object (decoded), whether there is one,
// and whether encoding/json reads body as one JSON value at all.
func referenceDuplicate(body []byte) (key string, found, valid bool) {
	if !json.Valid(body) {
		return "", false, false
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	type obj struct {
		keys      map[string]bool
		expectKey bool
	}
	var stack []*obj
	for {
		tok, err := dec.Token()
		if err != nil {
			return "", false, true
		}
		var top *obj
		if len(stack) > 0 {
			top = stack[len(stack)-1]
		}
		switch v := tok.(type) {
		case json.Delim:
			switch v {
			case '{':
				if top != nil && top.keys != nil {
					top.expectKey = true
				}
				stack = append(stack, &obj{keys: map[string]bool{}, expectKey: true})
			case '[':
				if top != nil && top.keys != nil {
					top.expectKey = true
				}
				stack = append(stack, &obj{})
			default:
				stack = stack[:len(stack)-1]
			}
		case string:
			if top != nil && top.keys != nil && top.expectKey {
				if top.keys[v] {
					return v, true, true
				}
				top.keys[v] = true
				top.expectKey = false
				continue
			}
			if top != nil && top.keys != nil {
				top.expectKey = true
			}
		default:
			if top != nil && top.keys != nil {
				top.expectKey = true
			}
		}
	}
}

// BenchmarkParseChat parses a chat request of 1.7 KB and 32 KB of prose,
// without escapes and, as real prompts are, with a line break (\n) and a
// quotation (\") in every line; and German prose, a letter outside ASCII
// every twenty bytes or so (what checking UTF-8 costs beyond ASCII).
func BenchmarkParseChat(b *testing.B) {
	for _, prose := range []struct{ name, line string }{
		{"", "Explain the difference between a mutex and a semaphore. "},
		{"/escaped", `Explain the \"difference\" between a mutex and a semaphore.\n`},
		{"/german", "Erklären Sie den Unterschied zwischen Mutex und Semaphor. "},
	} {
		for _, n := range []int{30, 580} {
			body := []byte(`{"model":"auto","stream":true,"messages":[{"role":"system","content":"You are helpful."},{"role":"user","content":"` +
				strings.Repeat(prose.line, n) + `"}]}`)
			benchmarkParseChat(b, strconv.Itoa((len(body)+512)>>10)+"KB"+prose.name, body)
		}
	}
}

func benchmarkParseChat(b *testing.B, name string, body []byte) {
	b.Run(name, func(b *testing.B) {
		b.SetBytes(int64(len(body)))
		b.ReportAllocs()
		for b.Loop() {
			if _, err := ParseChat(body); err != nil {
				b.Fatal(err)
			}
		}
	})
}

func TestRouteModel(t *testing.T) {
	body := func(model string) []byte {
		return []byte(`{"model":"` + model + `","messages":[{"role":"user","content":"hi"}]}`)
	}
	for model, want := range map[string]struct {
		route   string
		version int64
	}{
		"route:support":       {"support", 0},
		"route:support@7":     {"support", 7},
		"route:support@v12":   {"support", 12},
		"route:a_b-c9":        {"a_b-c9", 0},
		"gpt-4o":              {"", 0},
		"routes:support":      {"", 0},
		"auto":                {"", 0},
		"route:9lives@100000": {"9lives", 100000},
	} {
		c, err := ParseChat(body(model))
		if err != nil {
			t.Fatalf("%s: %v", model, err)
		}
		if c.Route != want.route || c.RouteVersion != want.version || c.Model != model {
			t.Errorf("%s: route %q@%d model %q, want %q@%d", model, c.Route, c.RouteVersion, c.Model, want.route, want.version)
		}
	}
	for _, model := range []string{"route:", "route:Support", "route:-x", "route:x@", "route:x@0", "route:x@07", "route:x@+7",
		"route:x@v", "route:x@7@8", "route:x y", "route:" + strings.Repeat("a", 64), "route:x@1234567890123456789"} {
		_, err := ParseChat(body(model))
		if e := apierr.As(err); err == nil || e.Kind != apierr.KindInvalid || e.Code != "invalid_route" || e.Param != "model" {
			t.Errorf("%s: %v, want 400 invalid_route", model, err)
		}
	}
}

// TestVision: a request is vision when any message's content is an array of
// parts with an image; a string content, however it is written, is not.
func TestVision(t *testing.T) {
	for body, want := range map[string]bool{
		`{"model":"auto","messages":[{"role":"user","content":"an image_url \"type\": [\"image_url\"]\n"}]}`:                                false,
		`{"model":"auto","messages":[{"role":"user","content":[{"type":"text","text":"hi"}]}]}`:                                             false,
		`{"model":"auto","messages":[{"role":"user","content":[{"type":"text","text":"]"},{"type":"image_url","image_url":{"url":"x"}}]}]}`: true,
		`{"model":"auto","messages":[{"role":"system","content":"be brief"},{"content":[{"type":"input_image"}],"role":"user"}]}`:           true,
		`{"model":"auto","messages":[{"role":"user","c\u006fntent":[{"type":"image_url"}]}]}`:                                               true,
		`{"model":"auto","messages":[{"role":"user","name":{"content":[{"type":"image_url"}]},"content":"x"}]}`:                             false,
	} {
		c, err := ParseChat([]byte(body))
		if err != nil {
			t.Fatalf("%s: %v", body, err)
		}
		if c.Vision != want {
			t.Errorf("%s: vision %v, want %v", body, c.Vision, want)
		}
	}
}

// TestSurrogatePairsPass: a pair of escaped surrogates is a character
// (an emoji), and an escaped backslash before a u is no escape at all.
func TestSurrogatePairsPass(t *testing.T) {
	for _, content := range []string{`smile \ud83d\ude00 please`, `\uD83D\uDE00`, `a\\ud800 is text`, `\u00e9t\u00e9`, `\\\ud83d\ude00`} {
		if _, err := ParseChat([]byte(`{"model":"m","messages":[{"role":"user","content":"` + content + `"}]}`)); err != nil {
			t.Errorf("%s: %v", content, err)
		}
	}
}

// TestOpenAIWireOnly: what the translation to Anthropic cannot carry is
// named, and what it can is not (the SDK feature and red-team probes).
func TestOpenAIWireOnly(t *testing.T) {
	img := func(url, role string) string {
		return `{"model":"m","messages":[{"role":"` + role + `","content":[{"type":"image_url","image_url":{"url":"` + url + `"}}]}]}`
	}
	for body, want := range map[string]string{
		img("data:image/png;base64,iVBO", "user"):            "",
		img("data:image/JPG;base64,/9j/", "user"):            "",
		img("HTTPS://example.com/a.png", "user"):             "",
		img("data:image/bmp;base64,Qk0=", "user"):            "an image of type image/bmp (Anthropic models take image/jpeg, image/png, image/gif or image/webp)",
		img("data:image/png;name=a.png;base64,iVBO", "user"): "an image of type image/png;name=a.png (Anthropic models take image/jpeg, image/png, image/gif or image/webp)",
		img("DATA:image/png;base64,iVBO", "user"):            "an image URL that is neither http(s) nor a base64 data URL",
		img("ftp://example.com/a.png", "user"):               "an image URL that is neither http(s) nor a base64 data URL",
		img("data:image/png,%89PNG", "user"):                 "an image data URL that is not base64",
		img("https://example.com/a.png", "system"):           "an image in a system message",
		`{"model":"m","messages":[{"role":"user","content":[{"type":"image_url","image_url":"data:image/bmp;base64,Qk0="}]}]}`:                                                     "an image of type image/bmp (Anthropic models take image/jpeg, image/png, image/gif or image/webp)",
		`{"model":"m","tools":[{"type":"function","function":{"name":"f"}}],"tool_choice":{"type":"function","function":{"name":"f"}},"messages":[{"role":"user","content":"x"}]}`: "",
		`{"model":"m","tool_choice":"required","messages":[{"role":"user","content":"x"}]}`:                                                                                        "",
		`{"model":"m","tools":[{"type":"custom","custom":{"name":"c"}}],"messages":[{"role":"user","content":"x"}]}`:                                                               "tools of type custom",
		`{"model":"m","modalities":["text"],"messages":[{"role":"user","content":"x"}]}`:                                                                                           "",
		`{"model":"m","modalities":["text","audio"],"messages":[{"role":"user","content":"x"}]}`:                                                                                   "audio output",
		`{"model":"m","web_search_options":{},"messages":[{"role":"user","content":"x"}]}`:                                                                                         "web_search_options",
		`{"model":"m","messages":[{"role":"user","content":[{"type":"input_audio","input_audio":{"data":"x","format":"wav"}}]}]}`:                                                  "content parts of type input_audio",
		// A PDF inline is Anthropic's document block; a file by id, another
		// type, or a PDF outside a user message is not.
		`{"model":"m","messages":[{"role":"user","content":[{"type":"file","file":{"filename":"a.pdf","file_data":"data:application/pdf;base64,JVBE"}}]}]}`: "",
		`{"model":"m","messages":[{"role":"user","content":[{"type":"file","file":{"file_id":"file-1"}}]}]}`:                                                "content parts of type file",
		`{"model":"m","messages":[{"role":"user","content":[{"type":"file","file":{"file_data":"data:text/csv;base64,YQo="}}]}]}`:                           "content parts of type file",
		`{"model":"m","messages":[{"role":"system","content":[{"type":"file","file":{"file_data":"data:application/pdf;base64,JVBE"}}]}]}`:                  "content parts of type file",
	} {
		c, err := ParseChat([]byte(body))
		if err != nil {
			t.Fatalf("%s: %v", body, err)
		}
		if c.OpenAIWireOnly != want {
			t.Errorf("%s: %q, want %q", body, c.OpenAIWireOnly, want)
		}
	}
}
