package mockllm

import (
	"bufio"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/tidwall/gjson"
)

func post(t *testing.T, srv *httptest.Server, path, body string) (int, string) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodPost, srv.URL+path, strings.NewReader(body))
	req.Header.Set("Authorization", "Bearer k")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

func TestEmbeddingsHaveTheRequestedDimensions(t *testing.T) {
	srv := httptest.NewServer(New("m", "k"))
	defer srv.Close()
	for name, tc := range map[string]struct {
		body       string
		n, dims    int
		b64        bool
		wantTokens int
	}{
		"default":   {body: `{"model":"e","input":"hello"}`, n: 1, dims: DefaultDimensions},
		"list":      {body: `{"model":"e","input":["a","b","c"],"dimensions":3}`, n: 3, dims: 3},
		"base64":    {body: `{"model":"e","input":"x","dimensions":4,"encoding_format":"base64"}`, n: 1, dims: 4, b64: true},
		"token ids": {body: `{"model":"e","input":[[1,2],[3]]}`, n: 2, dims: DefaultDimensions},
	} {
		t.Run(name, func(t *testing.T) {
			code, body := post(t, srv, "/v1/embeddings", tc.body)
			r := gjson.Parse(body)
			if code != 200 || r.Get("object").Str != "list" || len(r.Get("data").Array()) != tc.n {
				t.Fatalf("%d %s", code, body)
			}
			e := r.Get("data.0.embedding")
			if tc.b64 {
				if e.Type != gjson.String || len(e.Str) != (4*tc.dims+2)/3*4 {
					t.Fatalf("base64 embedding %s", e.Raw)
				}
			} else if len(e.Array()) != tc.dims {
				t.Fatalf("embedding of %d dimensions, want %d", len(e.Array()), tc.dims)
			}
			if r.Get("usage.prompt_tokens").Int() < 1 || r.Get("usage.total_tokens").Int() != r.Get("usage.prompt_tokens").Int() {
				t.Fatalf("usage %s", r.Get("usage").Raw)
			}
		})
	}
	_, a := post(t, srv, "/v1/embeddings", `{"model":"e","input":"same"}`)
	_, b := post(t, srv, "/v1/embeddings", `{"model":"e","input":["same"]}`)
	if gjson.Get(a, "data.0.embedding").Raw != gjson.Get(b, "data.0.embedding").Raw {
		t.Fatal("the same text gave two vectors")
	}
}

func TestCompletionsAnswerWithText(t *testing.T) {
	srv := httptest.NewServer(New("m", "k"))
	defer srv.Close()
	code, body := post(t, srv, "/v1/completions", `{"model":"i","prompt":"Say this is a test","n":2}`)
	r := gjson.Parse(body)
	if code != 200 || r.Get("object").Str != "text_completion" || len(r.Get("choices").Array()) != 2 ||
		!strings.Contains(r.Get("choices.1.text").Str, "Say this is a test") || r.Get("choices.1.index").Int() != 1 {
		t.Fatalf("%d %s", code, body)
	}
	code, body = post(t, srv, "/v1/completions", `{"model":"i","prompt":"a b c","stream":true,"stream_options":{"include_usage":true}}`)
	var text strings.Builder
	var usage, done bool
	sc := bufio.NewScanner(strings.NewReader(body))
	for sc.Scan() {
		d, ok := strings.CutPrefix(sc.Text(), "data: ")
		switch {
		case !ok:
		case d == "[DONE]":
			done = true
		default:
			c := gjson.Parse(d)
			text.WriteString(c.Get("choices.0.text").Str)
			usage = usage || c.Get("usage.completion_tokens").Int() > 0
		}
	}
	if code != 200 || !done || !usage || !strings.HasSuffix(text.String(), "a b c") {
		t.Fatalf("stream %d: %q usage %v done %v", code, text.String(), usage, done)
	}
}

func TestChatToolCallsAndChoices(t *testing.T) {
	srv := httptest.NewServer(New("m", "k"))
	defer srv.Close()
	weather := `{"type":"function","function":{"name":"get_weather","parameters":{"type":"object","properties":{"city":{"type":"string"},"days":{"type":"integer"}},"required":["city"]}}}`
	time := `{"type":"function","function":{"name":"get_time","parameters":{"type":"object","properties":{"tz":{"type":"string","enum":["UTC","CET"]}}}}}`
	user := `{"role":"user","content":"weather and time in Paris?"}`
	for name, tc := range map[string]struct {
		body  string
		calls []string // function names; nil: a text answer
		args  string   // the first call's arguments
		n     int
	}{
		"one tool":              {body: `{"model":"x","messages":[` + user + `],"tools":[` + weather + `]}`, calls: []string{"get_weather"}, args: `{"city":"example"}`, n: 1},
		"parallel":              {body: `{"model":"x","messages":[` + user + `],"tools":[` + weather + `,` + time + `]}`, calls: []string{"get_weather", "get_time"}, n: 1},
		"parallel off":          {body: `{"model":"x","messages":[` + user + `],"tools":[` + weather + `,` + time + `],"parallel_tool_calls":false}`, calls: []string{"get_weather"}, n: 1},
		"named":                 {body: `{"model":"x","messages":[` + user + `],"tools":[` + weather + `,` + time + `],"tool_choice":{"type":"function","function":{"name":"get_time"}}}`, calls: []string{"get_time"}, args: `{"tz":"UTC"}`, n: 1},
		"none":                  {body: `{"model":"x","messages":[` + user + `],"tools":[` + weather + `],"tool_choice":"none"}`, n: 1},
		"after the tool result": {body: `{"model":"x","messages":[` + user + `,{"role":"assistant","content":null,"tool_calls":[{"id":"c","type":"function","function":{"name":"get_weather","arguments":"{}"}}]},{"role":"tool","tool_call_id":"c","content":"sunny"}],"tools":[` + weather + `]}`, n: 1},
		"two choices":           {body: `{"model":"x","messages":[` + user + `],"n":2}`, n: 2},
		"two choices of calls":  {body: `{"model":"x","messages":[` + user + `],"n":2,"tools":[` + weather + `]}`, calls: []string{"get_weather"}, n: 2},
	} {
		t.Run(name, func(t *testing.T) {
			code, body := post(t, srv, "/v1/chat/completions", tc.body)
			r := gjson.Parse(body)
			if code != 200 || len(r.Get("choices").Array()) != tc.n {
				t.Fatalf("%d %s", code, body)
			}
			for i := range tc.n {
				ch := r.Get("choices." + string(rune('0'+i)))
				var got []string
				ch.Get("message.tool_calls").ForEach(func(_, c gjson.Result) bool {
					got = append(got, c.Get("function.name").Str)
					if !json.Valid([]byte(c.Get("function.arguments").Str)) || !strings.HasPrefix(c.Get("id").Str, "call_") {
						t.Errorf("bad call %s", c.Raw)
					}
					return true
				})
				if strings.Join(got, ",") != strings.Join(tc.calls, ",") {
					t.Fatalf("choice %d calls %v, want %v: %s", i, got, tc.calls, body)
				}
				wantFinish := "stop"
				if tc.calls != nil {
					wantFinish = "tool_calls"
				} else if ch.Get("message.content").Str == "" {
					t.Fatalf("no text answer: %s", body)
				}
				if ch.Get("finish_reason").Str != wantFinish || ch.Get("index").Int() != int64(i) {
					t.Fatalf("choice %d: %s", i, ch.Raw)
				}
			}
			if tc.args != "" && r.Get("choices.0.message.tool_calls.0.function.arguments").Str != tc.args {
				t.Fatalf("arguments %s, want %s", r.Get("choices.0.message.tool_calls.0.function.arguments").Str, tc.args)
			}
		})
	}
}

// A streamed answer with parallel tool calls and two choices reassembles
// into what the JSON answer says.
func TestStreamedToolCallsAndChoices(t *testing.T) {
	srv := httptest.NewServer(New("m", "k"))
	defer srv.Close()
	for name, tc := range map[string]struct {
		body string
		want map[int64]string // choice → its calls (name(args);…) or its text
	}{
		"parallel calls": {
			body: `{"model":"x","stream":true,"messages":[{"role":"user","content":"go"}],"tools":[{"type":"function","function":{"name":"a"}},{"type":"function","function":{"name":"b","parameters":{"properties":{"q":{"type":"string"}}}}}]}`,
			want: map[int64]string{0: `a({});b({"q":"example"});`},
		},
		"two choices": {
			body: `{"model":"x","stream":true,"n":2,"messages":[{"role":"user","content":"go"}]}`,
			want: map[int64]string{0: "Hello from m. You said: go", 1: "Hello from m. You said: go"},
		},
	} {
		t.Run(name, func(t *testing.T) {
			code, body := post(t, srv, "/v1/chat/completions", tc.body)
			text := map[int64]*strings.Builder{}
			type call struct{ name, args string }
			calls := map[int64][]*call{}
			done := false
			for _, line := range strings.Split(body, "\n") {
				d, ok := strings.CutPrefix(line, "data: ")
				if !ok {
					continue
				}
				if d == "[DONE]" {
					done = true
					continue
				}
				ch := gjson.Get(d, "choices.0")
				i := ch.Get("index").Int()
				if text[i] == nil {
					text[i] = &strings.Builder{}
				}
				text[i].WriteString(ch.Get("delta.content").Str)
				ch.Get("delta.tool_calls").ForEach(func(_, tc gjson.Result) bool {
					k := int(tc.Get("index").Int())
					for len(calls[i]) <= k {
						calls[i] = append(calls[i], &call{})
					}
					calls[i][k].name += tc.Get("function.name").Str
					calls[i][k].args += tc.Get("function.arguments").Str
					return true
				})
			}
			if code != 200 || !done {
				t.Fatalf("%d %s", code, body)
			}
			for i, want := range tc.want {
				got := text[i].String()
				if len(calls[i]) > 0 {
					got = ""
					for _, c := range calls[i] {
						got += c.name + "(" + c.args + ");"
					}
				}
				if got != want {
					t.Errorf("choice %d: %q, want %q", i, got, want)
				}
			}
		})
	}
}
