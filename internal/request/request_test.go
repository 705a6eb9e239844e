package request

import (
	"strings"
	"testing"

	"github.com/stellwerk/stellwerk/internal/apierr"
)

func TestParseChat(t *testing.T) {
	ok := map[string]struct {
		body string
		want Chat
	}{
		"minimal":          {`{"model":"auto","messages":[{"role":"user","content":"hi"}]}`, Chat{Model: "auto", Messages: 1}},
		"stream":           {`{"model":"m","stream":true,"messages":[{"role":"system","content":"s"},{"role":"user","content":[{"type":"text","text":"hi"}]}]}`, Chat{Model: "m", Stream: true, Messages: 2}},
		"stream null":      {`{"model":"m","stream":null,"messages":[{"role":"user","content":"x"}]}`, Chat{Model: "m", Messages: 1}},
		"unicode model":    {`{"model":"mod\u00e8le","messages":[{"role":"user","content":"x"}]}`, Chat{Model: "modèle", Messages: 1}},
		"max tokens":       {`{"model":"m","max_tokens":256,"messages":[{"role":"user"}]}`, Chat{Model: "m", Messages: 1, MaxTokens: 256}},
		"max completion":   {`{"model":"m","max_completion_tokens":99,"max_tokens":5,"messages":[{"role":"user"}]}`, Chat{Model: "m", Messages: 1, MaxTokens: 99}},
		"deep but allowed": {`{"model":"m","messages":[{"role":"user","content":"` + strings.Repeat("[{", 100) + `"}],"tools":` + strings.Repeat("[", 100) + strings.Repeat("]", 100) + `}`, Chat{Model: "m", Messages: 1}},
		"extra fields":     {`{"model":"m","temperature":0.2,"tools":[],"messages":[{"role":"tool","content":"r","tool_call_id":"1"}]}`, Chat{Model: "m", Messages: 1}},
		"whitespace":       {" \n{ \"model\" : \"m\" , \"messages\" : [ { \"role\" : \"user\" } ] }\n", Chat{Model: "m", Messages: 1}},
	}
	for name, tc := range ok {
		t.Run(name, func(t *testing.T) {
			got, err := ParseChat([]byte(tc.body))
			if err != nil {
				t.Fatal(err)
			}
			if got.Model != tc.want.Model || got.Stream != tc.want.Stream || got.Messages != tc.want.Messages || got.MaxTokens != tc.want.MaxTokens {
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
		"message no role":    {`{"model":"m","messages":[{"content":"x"}]}`, "invalid_value", "messages"},
		"stream string":      {`{"model":"m","stream":"yes","messages":[{"role":"user"}]}`, "invalid_type", "stream"},
		"duplicate model":    {`{"model":"a","model":"b","messages":[{"role":"user"}]}`, "duplicate_field", "model"},
		"duplicate stream":   {`{"stream":false,"model":"a","stream":true,"messages":[{"role":"user"}]}`, "duplicate_field", "stream"},
		"max tokens string":  {`{"model":"m","max_tokens":"5","messages":[{"role":"user"}]}`, "invalid_value", "max_tokens"},
		"max tokens float":   {`{"model":"m","max_tokens":5.5,"messages":[{"role":"user"}]}`, "invalid_value", "max_tokens"},
		"max tokens zero":    {`{"model":"m","max_completion_tokens":0,"messages":[{"role":"user"}]}`, "invalid_value", "max_completion_tokens"},
		"nested too deep":    {`{"model":"m","messages":[{"role":"user","content":` + strings.Repeat("[", 200) + strings.Repeat("]", 200) + `}]}`, "invalid_request_body", ""},
		"trailing garbage":   {`{"model":"m","messages":[{"role":"user"}]} x`, "invalid_json", ""},
	}
	for name, tc := range bad {
		t.Run(name, func(t *testing.T) {
			_, err := ParseChat([]byte(tc.body))
			e, ok := err.(*apierr.Error)
			if !ok {
				t.Fatalf("want *apierr.Error, got %v", err)
			}
			if e.Status != 400 || e.Code != tc.code || e.Param != tc.param {
				t.Errorf("got %d %s param=%q (%s), want 400 %s param=%q", e.Status, e.Code, e.Param, e.Message, tc.code, tc.param)
			}
		})
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
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		c, err := ParseChat(body)
		if err != nil {
			e, ok := err.(*apierr.Error)
			if !ok || e.Status != 400 || e.Code == "" || len(e.JSON()) == 0 {
				t.Fatalf("bad error %#v", err)
			}
			return
		}
		if c.Model == "" || c.Messages < 1 {
			t.Fatalf("accepted without model or messages: %+v", c)
		}
	})
}

func BenchmarkParseChat(b *testing.B) {
	body := []byte(`{"model":"auto","stream":true,"messages":[{"role":"system","content":"You are helpful."},{"role":"user","content":"` +
		strings.Repeat("Explain the difference between a mutex and a semaphore. ", 30) + `"}]}`)
	b.SetBytes(int64(len(body)))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := ParseChat(body); err != nil {
			b.Fatal(err)
		}
	}
}
