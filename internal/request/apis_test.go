package request

import (
	"strings"
	"testing"

	"github.com/stellwerk/stellwerk/internal/apierr"
)

func TestParseEmbeddings(t *testing.T) {
	for name, tc := range map[string]struct {
		body      string
		code, prm string
		tokenIDs  bool
		wantRoute string
	}{
		"string":           {body: `{"model":"auto","input":"hello"}`},
		"strings":          {body: `{"model":"auto","input":["a","b"],"dimensions":16,"encoding_format":"base64"}`},
		"tokens":           {body: `{"model":"auto","input":[1,2,3]}`, tokenIDs: true},
		"token arrays":     {body: `{"model":"auto","input":[[1,2],[3]]}`, tokenIDs: true},
		"route":            {body: `{"model":"route:emb","input":"x"}`, wantRoute: "emb"},
		"no model":         {body: `{"input":"x"}`, code: "missing_model", prm: "model"},
		"no input":         {body: `{"model":"auto"}`, code: "missing_input", prm: "input"},
		"null input":       {body: `{"model":"auto","input":null}`, code: "invalid_type", prm: "input"},
		"empty input":      {body: `{"model":"auto","input":""}`, code: "invalid_value", prm: "input"},
		"empty array":      {body: `{"model":"auto","input":[]}`, code: "invalid_value", prm: "input"},
		"empty element":    {body: `{"model":"auto","input":["a",""]}`, code: "invalid_value", prm: "input"},
		"mixed":            {body: `{"model":"auto","input":["a",1]}`, code: "invalid_type", prm: "input"},
		"object element":   {body: `{"model":"auto","input":[{"text":"a"}]}`, code: "invalid_type", prm: "input"},
		"negative token":   {body: `{"model":"auto","input":[-1]}`, code: "invalid_value", prm: "input"},
		"empty token list": {body: `{"model":"auto","input":[[]]}`, code: "invalid_value", prm: "input"},
		"bad format":       {body: `{"model":"auto","input":"x","encoding_format":"int8"}`, code: "invalid_value", prm: "encoding_format"},
		"bad dimensions":   {body: `{"model":"auto","input":"x","dimensions":0}`, code: "invalid_value", prm: "dimensions"},
		"duplicate":        {body: `{"model":"auto","input":"x","input":"y"}`, code: "duplicate_field", prm: "input"},
		"not an object":    {body: `["x"]`, code: "invalid_request_body"},
		"empty":            {body: ``, code: "invalid_request_body"},
	} {
		t.Run(name, func(t *testing.T) {
			c, err := ParseEmbeddings([]byte(tc.body))
			checkParse(t, err, tc.code, tc.prm)
			if err == nil {
				if c.API != APIEmbeddings || !c.Input.Exists() || TokenIDs(c.Input) != tc.tokenIDs || c.Route != tc.wantRoute {
					t.Fatalf("got %+v", c)
				}
			}
		})
	}
}

func TestParseCompletions(t *testing.T) {
	for name, tc := range map[string]struct {
		body      string
		code, prm string
		stream    bool
		n, max    int
	}{
		"string": {body: `{"model":"auto","prompt":"Say this is a test","max_tokens":7}`, n: 1, max: 7},
		// Two prompts, two completions each: four billed.
		"stream n":           {body: `{"model":"auto","prompt":["a","b"],"stream":true,"n":2,"suffix":"end"}`, stream: true, n: 4},
		"best_of":            {body: `{"model":"auto","prompt":"x","n":2,"best_of":5}`, n: 5},
		"token id prompt":    {body: `{"model":"auto","prompt":[1,2,3],"n":3}`, n: 3},
		"token id prompts":   {body: `{"model":"auto","prompt":[[1],[2]]}`, n: 2},
		"bad best_of":        {body: `{"model":"auto","prompt":"x","best_of":21}`, code: "invalid_value", prm: "best_of"},
		"no prompt":          {body: `{"model":"auto"}`, code: "missing_prompt", prm: "prompt"},
		"bad prompt":         {body: `{"model":"auto","prompt":3}`, code: "invalid_type", prm: "prompt"},
		"bad suffix":         {body: `{"model":"auto","prompt":"x","suffix":1}`, code: "invalid_type", prm: "suffix"},
		"bad stream":         {body: `{"model":"auto","prompt":"x","stream":"yes"}`, code: "invalid_type", prm: "stream"},
		"bad stream_options": {body: `{"model":"auto","prompt":"x","stream":true,"stream_options":[1]}`, code: "invalid_type", prm: "stream_options"},
		"bad n":              {body: `{"model":"auto","prompt":"x","n":0}`, code: "invalid_value", prm: "n"},
		"bad max":            {body: `{"model":"auto","prompt":"x","max_tokens":1.5}`, code: "invalid_value", prm: "max_tokens"},
		"model number":       {body: `{"model":1,"prompt":"x"}`, code: "invalid_type", prm: "model"},
	} {
		t.Run(name, func(t *testing.T) {
			c, err := ParseCompletions([]byte(tc.body))
			checkParse(t, err, tc.code, tc.prm)
			if err == nil && (c.API != APICompletions || c.Stream != tc.stream || c.Choices != tc.n || c.MaxTokens != tc.max) {
				t.Fatalf("got %+v", c)
			}
		})
	}
}

func TestAPIOf(t *testing.T) {
	for path, want := range map[string]string{PathChat: APIChat, PathEmbeddings: APIEmbeddings, PathCompletions: APICompletions,
		PathResponses: APIResponses, PathMessages: APIMessages, "/v1/messages/count_tokens": "", "/v1/embeddings/": ""} {
		if got := APIOf(path); got != want {
			t.Errorf("APIOf(%q) = %q, want %q", path, got, want)
		}
	}
}

func checkParse(t *testing.T, err error, code, param string) {
	t.Helper()
	if code == "" {
		if err != nil {
			t.Fatalf("unexpected error %v", err)
		}
		return
	}
	e, ok := err.(*apierr.Error)
	if !ok || e.Kind != apierr.KindInvalid || e.Code != code || e.Param != param {
		t.Fatalf("error %#v, want 400 %s (param %q)", err, code, param)
	}
}

func fuzzAPI(f *testing.F, parse func([]byte) (Chat, error), seeds []string) {
	for _, s := range seeds {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		c, err := parse(body)
		if err != nil {
			e, ok := err.(*apierr.Error)
			if !ok || e.Kind != apierr.KindInvalid || e.Code == "" || len(e.JSON()) == 0 {
				t.Fatalf("bad error %#v", err)
			}
			return
		}
		if c.Model == "" || !c.Input.Exists() || c.Choices < 1 {
			t.Fatalf("accepted without model or input: %+v", c)
		}
		if _, found, valid := referenceDuplicate(body); !valid || found {
			t.Fatalf("accepted invalid JSON or a duplicate key: %q", body)
		}
	})
}

func FuzzParseEmbeddings(f *testing.F) {
	fuzzAPI(f, ParseEmbeddings, []string{
		`{"model":"auto","input":"hi"}`, `{"model":"m","input":["a","b"],"dimensions":8}`, `{"model":"m","input":[[1,2],[3]]}`,
		`{"model":"m","input":[1,"a"]}`, `{"model":"m","input":[]}`, `{"model":`, `[]`, "\xff",
		`{"model":"m","input":"a","i\u006eput":"b"}`,
	})
}

func FuzzParseCompletions(f *testing.F) {
	fuzzAPI(f, ParseCompletions, []string{
		`{"model":"auto","prompt":"hi"}`, `{"model":"m","prompt":["a"],"stream":true,"n":3,"max_tokens":5}`,
		`{"model":"m","prompt":[[1]],"suffix":"x"}`, `{"model":"m","prompt":""}`, `{}`, `{"model":"m","prompt":"a","n":1e10}`,
	})
}

// A 2 KB embeddings request of 16 strings and a 2 KB completions prompt,
// as BenchmarkParseChat's 2 KB chat.
func BenchmarkParseAPIs(b *testing.B) {
	input := `"` + strings.Repeat("Explain the difference between a mutex and a semaphore. ", 2) + `"`
	emb := []byte(`{"model":"auto","input":[` + strings.Repeat(input+",", 15) + input + `],"dimensions":256}`)
	cmpl := []byte(`{"model":"auto","prompt":"` + strings.Repeat("Explain the difference between a mutex and a semaphore. ", 36) + `","max_tokens":64,"n":2}`)
	for name, tc := range map[string]struct {
		body  []byte
		parse func([]byte) (Chat, error)
	}{"embeddings": {emb, ParseEmbeddings}, "completions": {cmpl, ParseCompletions}} {
		b.Run(name, func(b *testing.B) {
			b.ReportAllocs()
			b.SetBytes(int64(len(tc.body)))
			for b.Loop() {
				if _, err := tc.parse(tc.body); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// TestParametersForTheClassifier: user (and a completion's stop) are kept
// as sent on every API, for the classifier: an embeddings or completions
// request's user went unread to the provider and the audit record (found
// by a helper).
func TestParametersForTheClassifier(t *testing.T) {
	e, err := ParseEmbeddings([]byte(`{"model":"auto","input":"x","user":"jane@example.com","metadata":{"k":"v"}}`))
	if err != nil || e.UserRaw.Str != "jane@example.com" || e.MetadataObj.Get("k").Str != "v" {
		t.Errorf("embeddings: %v %q %q", err, e.UserRaw.Raw, e.MetadataObj.Raw)
	}
	c, err := ParseCompletions([]byte(`{"model":"auto","prompt":"x","user":"u","stop":["IBAN"]}`))
	if err != nil || c.UserRaw.Str != "u" || c.StopList.Raw != `["IBAN"]` {
		t.Errorf("completions: %v %q %q", err, c.UserRaw.Raw, c.StopList.Raw)
	}
	ch, err := Parse(APIChat, []byte(`{"model":"auto","messages":[{"role":"user","content":"x"}],"safety_identifier":"s","prompt_cache_key":"k",`+
		`"temperature":0.2,"chat_template_kwargs":{"note":"n"},"system":"be brief"}`))
	if err != nil || ch.SafetyID.Str != "s" || ch.CacheKey.Str != "k" {
		t.Errorf("chat: %v %q %q", err, ch.SafetyID.Raw, ch.CacheKey.Raw)
	}
	// Members stellwerk has no use for but a provider may read (vLLM's
	// chat_template_kwargs), text only: a number carries none.
	if len(ch.Others) != 2 || ch.Others[0].Key != "chat_template_kwargs" || ch.Others[1].Value.Str != "be brief" {
		t.Errorf("others: %+v", ch.Others)
	}
}

// TestOtherMembersKept: a member with text that stellwerk has no use for
// is kept for the classifier on every endpoint, and stream_options when a
// member beside include_usage has text.
func TestOtherMembersKept(t *testing.T) {
	keys := func(c Chat) string {
		var ks []string
		for _, o := range c.Others {
			ks = append(ks, o.Key)
		}
		return strings.Join(ks, ",")
	}
	for _, tc := range []struct {
		parse func([]byte) (Chat, error)
		body  string
		want  string
	}{
		{ParseEmbeddings, `{"model":"m","input":"hi","extra":{"a":"x"},"dimensions":8,"flag":true}`, "extra"},
		{ParseCompletions, `{"model":"m","prompt":"hi","logit_bias":{"1":2},"echo":true,"foo":"x"}`, "logit_bias,foo"},
		{ParseCompletions, `{"model":"m","prompt":"hi","stream":true,"stream_options":{"include_usage":true}}`, ""},
		{ParseCompletions, `{"model":"m","prompt":"hi","stream":true,"stream_options":{"include_usage":true,"x":"y"}}`, "stream_options"},
		{ParseChat, `{"model":"m","messages":[{"role":"user","content":"hi"}],"stream":true,"stream_options":{"include_usage":true,"include_obfuscation":false}}`, ""},
		{ParseChat, `{"model":"m","messages":[{"role":"user","content":"hi"}],"stream":true,"stream_options":{"x":["y"]}}`, "stream_options"},
	} {
		c, err := tc.parse([]byte(tc.body))
		if err != nil || keys(c) != tc.want {
			t.Errorf("%s: kept %q (%v), want %q", tc.body, keys(c), err, tc.want)
		}
	}
}
