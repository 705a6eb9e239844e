package translate

import (
	"bytes"
	"encoding/json"
	"errors"
	"math/rand"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/tidwall/gjson"
	"github.com/tidwall/sjson"

	"github.com/stellwerk/stellwerk/internal/apierr"
)

const messagesDir = "testdata/messages"

func messagesCases(t *testing.T, dir, suffix string) map[string][]byte {
	t.Helper()
	paths, err := filepath.Glob(filepath.Join(messagesDir, dir, "*"+suffix))
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

// TestMessagesToChatGolden: NAME.anthropic.json becomes NAME.openai.json,
// or NAME.error.json (an Anthropic-shaped 400 naming the member) when
// refused.
func TestMessagesToChatGolden(t *testing.T) {
	for base, in := range messagesCases(t, "request", ".anthropic.json") {
		t.Run(filepath.Base(base), func(t *testing.T) {
			out, _, err := MessagesToChat(in)
			okPath, errPath := base+".openai.json", base+".error.json"
			if err != nil {
				var ae *apierr.Error
				if !errors.As(err, &ae) || ae.Kind != apierr.KindInvalid {
					t.Fatalf("error %v is not an *apierr.Error 400", err)
				}
				if ae.Param == "" {
					t.Errorf("error %q does not name the member", ae.Message)
				}
				if *update {
					os.Remove(okPath)
				}
				checkGolden(t, errPath, indent(t, AnthropicError(ae)))
				return
			}
			if *update {
				os.Remove(errPath)
			}
			checkGolden(t, okPath, indent(t, out))
		})
	}
}

// TestChatToMessageGolden: NAME.openai.json (a chat.completion) becomes
// NAME.anthropic.json (a message).
func TestChatToMessageGolden(t *testing.T) {
	for base, in := range messagesCases(t, "response", ".openai.json") {
		t.Run(filepath.Base(base), func(t *testing.T) {
			out, err := ChatToMessage(in, nil)
			if err != nil {
				t.Fatal(err)
			}
			checkGolden(t, base+".anthropic.json", indent(t, out))
		})
	}
}

func runMessagesStream(in []byte) (*MessagesStream, []byte) {
	var f Framer
	s := NewMessagesStream()
	var out []byte
	for _, ev := range f.Flush(f.Feed(in, nil)) {
		out = s.Event(ev, out)
	}
	return s, out
}

// TestMessagesStreamGolden: NAME.sse (chat chunks) becomes
// NAME.anthropic.sse; every event is named, its data JSON of that type.
func TestMessagesStreamGolden(t *testing.T) {
	for base, in := range messagesCases(t, "stream", ".sse") {
		if strings.HasSuffix(base, ".anthropic") {
			continue
		}
		t.Run(filepath.Base(base), func(t *testing.T) {
			_, out := runMessagesStream(in)
			if err := checkMessagesEvents(out); err != nil {
				t.Fatalf("%v\n%s", err, out)
			}
			checkGolden(t, base+".anthropic.sse", out)
		})
	}
}

// checkMessagesEvents reports whether out is only complete Anthropic
// events: "event: T\ndata: {…"type":"T"…}\n\n", blocks opened before their
// deltas and closed before the next opens.
func checkMessagesEvents(out []byte) error {
	var f Framer
	open, next := int64(-1), int64(0)
	blank := false // the open block is text, so far whitespace only
	blanks := 0
	for _, ev := range f.Flush(f.Feed(out, nil)) {
		if !gjson.ValidBytes(ev.Data) {
			return errors.New("event data is not JSON: " + string(ev.Data))
		}
		d := gjson.ParseBytes(ev.Data)
		if d.Get("type").Str != ev.Name {
			return errors.New("event " + ev.Name + " has data of type " + d.Get("type").Str)
		}
		switch ev.Name {
		case "content_block_start":
			if open >= 0 {
				return errors.New("block opened while another is open")
			}
			if open = d.Get("index").Int(); open != next {
				return errors.New("block " + strconv.FormatInt(open, 10) + " opened where " + strconv.FormatInt(next, 10) + " is next")
			}
			next++
			blank = d.Get("content_block.type").Str == "text"
		case "content_block_delta":
			if d.Get("index").Int() != open {
				return errors.New("delta outside its open block")
			}
			blank = blank && strings.TrimSpace(d.Get("delta.text").Str) == ""
		case "content_block_stop":
			if d.Get("index").Int() != open {
				return errors.New("stop of a block that is not open")
			}
			if blank {
				blanks++
			}
			open = -1
		}
	}
	// A text block of whitespace only, which Anthropic refuses when it is
	// sent back, beside other blocks; alone it is the whole answer, which
	// sent back without it would be refused on every model.
	if blanks > 0 && next > 1 {
		return errors.New("a text block of whitespace only beside other blocks, which Anthropic refuses when it is sent back")
	}
	if !strings.HasSuffix(string(out), "\n\n") {
		return errors.New("output does not end with a complete event")
	}
	return nil
}

func TestMessagesStreamUsage(t *testing.T) {
	in, err := os.ReadFile(filepath.Join(messagesDir, "stream", "tool_calls.sse"))
	if err != nil {
		t.Fatal(err)
	}
	s, out := runMessagesStream(in)
	pt, ct, ok := s.Usage()
	if !ok || pt != 50 || ct != 20 || !s.Ended() {
		t.Errorf("usage %d/%d %v, ended %v", pt, ct, ok, s.Ended())
	}
	// Anthropic counts cached tokens apart from input_tokens.
	if !strings.Contains(string(out), `"usage":{"input_tokens":40,"output_tokens":20,"cache_creation_input_tokens":0,"cache_read_input_tokens":10}`) {
		t.Errorf("message_delta usage: %s", out)
	}
	tr, err := os.ReadFile(filepath.Join(messagesDir, "stream", "truncated.sse"))
	if err != nil {
		t.Fatal(err)
	}
	if s, _ := runMessagesStream(tr); s.Ended() {
		t.Error("a stream without [DONE] reports itself ended")
	}
}

func TestChatToMessageRefusesBadArguments(t *testing.T) {
	for name, in := range map[string]string{
		"not json":        `nope`,
		"no choices":      `{"id":"x"}`,
		"array arguments": `{"choices":[{"message":{"tool_calls":[{"id":"c","function":{"name":"f","arguments":"[1]"}}]}}]}`,
		"broken":          `{"choices":[{"message":{"tool_calls":[{"id":"c","function":{"name":"f","arguments":"{\"a\":"}}]}}]}`,
	} {
		if out, err := ChatToMessage([]byte(in), nil); err == nil {
			t.Errorf("%s: translated to %s", name, out)
		}
	}
}

// TestChatToMessageCutToolCall: a tool call cut off at max_tokens (its
// arguments end mid-JSON) is a tool_use with an empty input and
// stop_reason max_tokens, with the answer's usage — it was no answer at
// all, a 502 charged nothing (the agent probe).
func TestChatToMessageCutToolCall(t *testing.T) {
	in := `{"id":"chatcmpl-1","model":"m","choices":[{"finish_reason":"length","message":{"role":"assistant","content":null,"tool_calls":[` +
		`{"id":"call_1","type":"function","function":{"name":"Write","arguments":"{\"path\":\"a.go\",\"content\":\"package ma"}}]}}],` +
		`"usage":{"prompt_tokens":40,"completion_tokens":20}}`
	out, err := ChatToMessage([]byte(in), nil)
	if err != nil {
		t.Fatal(err)
	}
	m := gjson.ParseBytes(out)
	if m.Get("stop_reason").Str != "max_tokens" || m.Get("content.0.type").Str != "tool_use" || m.Get("content.0.name").Str != "Write" ||
		m.Get("content.0.input").Raw != "{}" || m.Get("usage.output_tokens").Int() != 20 {
		t.Errorf("got %s", out)
	}
}

func TestChatErrorToAnthropic(t *testing.T) {
	got := ChatErrorToAnthropic(429, []byte(`{"error":{"message":"slow down","type":"rate_limit_error","code":"rate_limited","param":null}}`))
	want := `{"type":"error","error":{"type":"rate_limit_error","message":"slow down","code":"rate_limited"}}`
	if string(got) != want {
		t.Errorf("got %s, want %s", got, want)
	}
	// Other servers' error shapes keep their words.
	for body, want := range map[string]string{
		`{"object":"error","message":"max_tokens too large","type":"BadRequestError","param":null,"code":400}`: "max_tokens too large",
		`{"detail":"Model not found"}`: "Model not found",
		`{"message":{"detail":[{"loc":["body","store"],"msg":"extra fields not permitted"}]}}`: `{"detail":[{"loc":["body","store"],"msg":"extra fields not permitted"}]}`,
		`{"error":"quota exceeded"}`: "quota exceeded",
	} {
		if got := gjson.GetBytes(ChatErrorToAnthropic(422, []byte(body)), "error.message").Str; got != want {
			t.Errorf("%s: message %q, want %q", body, got, want)
		}
	}
	if got := ChatErrorToAnthropic(502, []byte("<html>bad gateway</html>")); gjson.GetBytes(got, "error.type").Str != "api_error" ||
		gjson.GetBytes(got, "type").Str != "error" {
		t.Errorf("non-JSON error: %s", got)
	}
}

func FuzzMessagesToChat(f *testing.F) {
	addGoldenSeeds(f, filepath.Join("..", "messages", "request", "*.anthropic.json"), func(b []byte) { f.Add(b) })
	f.Fuzz(func(t *testing.T, in []byte) {
		out, _, err := MessagesToChat(in)
		dec, _, unread, native, derr := MessagesForDecision(in)
		// The decision copy takes what the translation does, and what only
		// an Anthropic-wire provider can (native names it), which the
		// translation refuses.
		if (err == nil && (derr != nil || native != "")) || (err != nil && derr == nil && native == "") ||
			(err == nil && string(withoutUnread(t, dec, unread)) != string(out)) {
			t.Fatalf("translation %s %v; decision copy %s %v (native %q)", out, err, dec, derr, native)
		}
		if err != nil {
			var ae *apierr.Error
			if !errors.As(err, &ae) || ae.Kind != apierr.KindInvalid {
				t.Fatalf("error %v is not a 400", err)
			}
			return
		}
		if !gjson.ValidBytes(out) || !gjson.GetBytes(out, "messages.0").Exists() {
			t.Fatalf("accepted %q as %s", in, out)
		}
		// count_tokens' copy reads what the translation reads (the
		// fuzzing probe found it unfuzzed).
		if c, cerr := MessagesCountForDecision(in); cerr != nil || !gjson.ValidBytes(c) {
			t.Fatalf("count_tokens' copy of %q: %s %v", in, c, cerr)
		}
	})
}

func FuzzChatToMessage(f *testing.F) {
	addGoldenSeeds(f, filepath.Join("..", "messages", "response", "*.openai.json"), func(b []byte) { f.Add(b) })
	f.Fuzz(func(t *testing.T, in []byte) {
		out, err := ChatToMessage(in, nil)
		if err == nil && !gjson.ValidBytes(out) {
			t.Fatalf("invalid JSON from %q: %s", in, out)
		}
	})
}

func FuzzMessagesStream(f *testing.F) {
	addGoldenSeeds(f, filepath.Join("..", "messages", "stream", "*.sse"), func(b []byte) { f.Add(b) })
	f.Fuzz(func(t *testing.T, in []byte) {
		s, out := runMessagesStream(in)
		if s.Ended() {
			if err := checkMessagesEvents(out); err != nil {
				t.Fatalf("%v\n%q → %s", err, in, out)
			}
		}
	})
}

// BenchmarkMessages measures what a Messages API request costs on the
// request path (validate and translate to chat) and on the answer path
// (a chat.completion to a message, and a streamed answer's events).
func BenchmarkMessages(b *testing.B) {
	read := func(p string) []byte {
		buf, err := os.ReadFile(filepath.Join(messagesDir, p))
		if err != nil {
			b.Fatal(err)
		}
		return buf
	}
	req, answer := read("request/tools.anthropic.json"), read("response/tool_calls.openai.json")
	b.Run("request", func(b *testing.B) {
		b.ReportAllocs()
		b.SetBytes(int64(len(req)))
		for b.Loop() {
			if _, _, err := MessagesToChat(req); err != nil {
				b.Fatal(err)
			}
		}
	})
	// Claude Code's MCP tools: names past chat's 64 characters, in the
	// tools and the history's tool calls.
	long := bytes.ReplaceAll(req, []byte(`"get_weather"`), []byte(`"`+longTool+`"`))
	b.Run("request_long_tool_names", func(b *testing.B) {
		b.ReportAllocs()
		b.SetBytes(int64(len(long)))
		for b.Loop() {
			if _, names, err := MessagesToChat(long); err != nil || len(names) != 1 {
				b.Fatal(err, names)
			}
		}
	})
	b.Run("answer", func(b *testing.B) {
		b.ReportAllocs()
		b.SetBytes(int64(len(answer)))
		for b.Loop() {
			if _, err := ChatToMessage(answer, nil); err != nil {
				b.Fatal(err)
			}
		}
	})
	for name, file := range map[string]string{"stream": "text", "stream_tools": "tool_calls", "stream_interleaved": "interleaved", "stream_blank": "blank_text"} {
		stream := read("stream/" + file + ".sse")
		var f Framer
		events := f.Flush(f.Feed(stream, nil))
		b.Run(name, func(b *testing.B) {
			b.ReportAllocs()
			b.SetBytes(int64(len(stream)))
			out := make([]byte, 0, 4096)
			for b.Loop() {
				s := NewMessagesStream()
				out = out[:0]
				for _, ev := range events {
					out = s.Event(ev, out)
				}
			}
		})
	}
}

// TestMessagesStreamInterleavedCalls: a chat stream that interleaves its
// parallel tool calls, their arguments cut anywhere (inside strings, next
// to escapes and braces), and text between them, becomes a valid Anthropic
// stream whose tool_use blocks carry every call's arguments whole, and
// whose text is all the text; nothing is dropped.
func TestMessagesStreamInterleavedCalls(t *testing.T) {
	args := []string{
		`{"city":"Oslo","note":"a \"quoted\" {brace} [x]"}`,
		`{"list":[1,2,{"deep":["}"]}],"esc":"\\"}`,
		`{}`,
	}
	for seed := int64(1); seed <= 300; seed++ {
		rng := rand.New(rand.NewSource(seed))
		type piece struct {
			call int // -1 for text
			s    string
		}
		queues := make([][]piece, len(args)+1)
		for i, a := range args {
			for len(a) > 0 {
				n := 1 + rng.Intn(len(a))
				queues[i] = append(queues[i], piece{i, a[:n]})
				a = a[n:]
			}
		}
		text := []string{"Checking ", "all ", "three.", " Done."}
		for _, s := range text {
			queues[len(args)] = append(queues[len(args)], piece{-1, s})
		}
		var in strings.Builder
		started := make([]bool, len(args))
		for {
			var live []int
			for i, q := range queues {
				if len(q) > 0 {
					live = append(live, i)
				}
			}
			if len(live) == 0 {
				break
			}
			q := live[rng.Intn(len(live))]
			p := queues[q][0]
			queues[q] = queues[q][1:]
			var delta map[string]any
			if p.call < 0 {
				delta = map[string]any{"content": p.s}
			} else {
				c := map[string]any{"index": p.call, "function": map[string]any{"arguments": p.s}}
				if !started[p.call] {
					started[p.call] = true
					c["id"], c["type"] = "call_"+strconv.Itoa(p.call), "function"
					c["function"].(map[string]any)["name"] = "f" + strconv.Itoa(p.call)
				}
				delta = map[string]any{"tool_calls": []any{c}}
			}
			b, _ := json.Marshal(map[string]any{"id": "c", "model": "m", "choices": []any{map[string]any{"index": 0, "delta": delta}}})
			in.WriteString("data: " + string(b) + "\n\n")
		}
		in.WriteString(`data: {"id":"c","choices":[{"index":0,"delta":{},"finish_reason":"tool_calls"}]}` + "\n\ndata: [DONE]\n\n")

		s, out := runMessagesStream([]byte(in.String()))
		if err := checkMessagesEvents(out); err != nil || !s.Ended() {
			t.Fatalf("seed %d: %v (ended %v)\n%s", seed, err, s.Ended(), out)
		}
		var f Framer
		inputs := map[int64]*strings.Builder{}
		ids := map[int64]string{}
		var gotText strings.Builder
		for _, ev := range f.Flush(f.Feed(out, nil)) {
			d := gjson.ParseBytes(ev.Data)
			switch ev.Name {
			case "content_block_start":
				if d.Get("content_block.type").Str == "tool_use" {
					ids[d.Get("index").Int()] = d.Get("content_block.id").Str
					inputs[d.Get("index").Int()] = &strings.Builder{}
				}
			case "content_block_delta":
				if b := inputs[d.Get("index").Int()]; b != nil {
					b.WriteString(d.Get("delta.partial_json").Str)
				} else {
					gotText.WriteString(d.Get("delta.text").Str)
				}
			}
		}
		if len(ids) != len(args) {
			t.Fatalf("seed %d: %d tool_use blocks, want %d\n%s", seed, len(ids), len(args), out)
		}
		for idx, id := range ids {
			want := args[int(id[len(id)-1]-'0')]
			if got := inputs[idx].String(); got != want {
				t.Fatalf("seed %d: %s has %s, want %s\n%s", seed, id, got, want, out)
			}
		}
		if gotText.String() != strings.Join(text, "") {
			t.Fatalf("seed %d: text %q\n%s", seed, gotText.String(), out)
		}
	}
}

// FuzzJSONEnd: fed a JSON object or array in two pieces, jsonEnd tells it
// has ended at its last byte and not before.
func FuzzJSONEnd(f *testing.F) {
	for _, s := range []string{`{}`, `{"a":"}"}`, `[1,{"b":["\\\"]"]}]`, ` {"x":"\u007d"} `, `{"a":{"b":{}}}`} {
		f.Add(s, 1)
	}
	f.Fuzz(func(t *testing.T, s string, cut int) {
		v := strings.TrimSpace(s)
		if !gjson.Valid(v) || v == "" || (v[0] != '{' && v[0] != '[') {
			return
		}
		for end := 1; end <= len(v); end++ {
			var j jsonEnd
			k := min(max(cut, 0), end)
			j.feed(v[:k])
			j.feed(v[k:end])
			if j.end != (end == len(v)) {
				t.Fatalf("%q cut at %d, fed %d bytes: end %v", v, k, end, j.end)
			}
		}
	})
}

// withoutUnread is a decision copy less its UnreadMember, which it must
// hold exactly when unread says so.
func withoutUnread(t *testing.T, dec []byte, unread bool) []byte {
	t.Helper()
	if dec == nil {
		return nil
	}
	if gjson.GetBytes(dec, UnreadMember).Exists() != unread {
		t.Fatalf("unread %v for %s", unread, dec)
	}
	if !unread {
		return dec
	}
	out, err := sjson.DeleteBytes(dec, UnreadMember)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// TestDecisionCopyReadsWhatTranslationDrops: what a provider taking the
// request as sent gets and the chat translation has no field for is in
// the decision copy's UnreadMember (a helper's findings, each of which had
// reached a US model unread), and in no provider's translation.
func TestDecisionCopyReadsWhatTranslationDrops(t *testing.T) {
	const key = "AKIAIOSFODNN7EXAMPLE"
	for _, body := range []string{
		`{"model":"m","input":"hi","include":["` + key + `"]}`,
		`{"model":"m","input":"hi","truncation":"` + key + `"}`,
		`{"model":"m","input":"hi","stream_options":{"x":"` + key + `"}}`,
		`{"model":"m","input":"hi","reasoning":{"effort":"low","summary":"` + key + `"}}`,
		`{"model":"m","input":"hi","text":{"verbosity":"` + key + `"}}`,
		`{"model":"m","input":"hi","tools":[{"type":"function","name":"f","parameters":{}}],"tool_choice":{"type":"allowed_tools","mode":"auto","tools":[{"type":"function","name":"` + key + `"}]}}`,
		`{"model":"m","input":[{"role":"user","content":[{"type":"input_text","text":"hi","x":"` + key + `"}]}]}`,
		`{"model":"m","input":[{"role":"assistant","content":[{"type":"output_text","text":"ok","annotations":[{"type":"url_citation","url":"https://x.example/` + key + `"}]}]},{"role":"user","content":"go"}]}`,
		`{"model":"m","input":[{"type":"message","id":"` + key + `","role":"user","content":"hi"}]}`,
		`{"model":"m","input":[{"type":"message","status":"` + key + `","role":"user","content":"hi"}]}`,
		`{"model":"m","input":[{"type":"function_call","id":"` + key + `","call_id":"c","name":"f","arguments":"{}"},{"type":"function_call_output","call_id":"c","output":"r"}]}`,
		`{"model":"m","input":[{"type":"function_call","call_id":"c","name":"f","arguments":"{}"},{"type":"function_call_output","id":"` + key + `","call_id":"c","output":[{"type":"input_text","text":"r","x":"` + key + `"}]}]}`,
	} {
		dec, needs, err := ResponsesForDecision([]byte(body))
		if err != nil || !needs.Unread || !strings.Contains(gjson.GetBytes(dec, UnreadMember).Raw, key) {
			t.Errorf("%s: the decision copy %s (%+v, %v) does not read the key", body, dec, needs, err)
		}
		if out, err := ResponsesToChat([]byte(body)); err == nil && strings.Contains(string(out), UnreadMember) {
			t.Errorf("%s: the translation carries %s", body, out)
		}
	}
	for _, body := range []string{
		`{"model":"m","max_tokens":5,"messages":[{"role":"assistant","content":[{"type":"text","text":"ok","citations":[{"type":"char_location","cited_text":"` + key + `"}]}]},{"role":"user","content":"go"}]}`,
		`{"model":"m","max_tokens":5,"messages":[{"role":"user","content":[{"type":"text","text":"hi","cache_control":{"type":"ephemeral","ttl":"` + key + `"}}]}]}`,
		`{"model":"m","max_tokens":5,"system":[{"type":"text","text":"s","citations":[{"cited_text":"` + key + `"}]}],"messages":[{"role":"user","content":"hi"}]}`,
		`{"model":"m","max_tokens":5,"tools":[{"name":"t","input_schema":{"type":"object"},"cache_control":{"type":"` + key + `"}}],"messages":[{"role":"user","content":"hi"}]}`,
		`{"model":"m","max_tokens":5,"messages":[{"role":"assistant","content":[{"type":"tool_use","id":"c","name":"t","input":{}}]},{"role":"user","content":[{"type":"tool_result","tool_use_id":"c","content":[{"type":"text","text":"r","citations":[{"cited_text":"` + key + `"}]}]}]}]}`,
	} {
		dec, _, unread, _, err := MessagesForDecision([]byte(body))
		if err != nil || !unread || !strings.Contains(gjson.GetBytes(dec, UnreadMember).Raw, key) {
			t.Errorf("%s: the decision copy %s (%v) does not read the key", body, dec, err)
		}
		if out, _, err := MessagesToChat([]byte(body)); err != nil || strings.Contains(string(out), UnreadMember) {
			t.Errorf("%s: the translation %s %v", body, out, err)
		}
	}
	// A member of a tool result's text block that the translation would
	// drop is refused, as everywhere else in a message's blocks.
	_, _, err := MessagesToChat([]byte(`{"model":"m","max_tokens":5,"messages":[{"role":"user","content":[{"type":"tool_result","tool_use_id":"c","content":[{"type":"text","text":"r","x":"` + key + `"}]}]}]}`))
	if err == nil || !strings.Contains(err.Error(), "content[0].content[0].x") {
		t.Errorf("an unknown member of a tool result's text block: %v", err)
	}
}

// TestMessagesNativeReadForTheClassifiers: what only an Anthropic-wire
// provider takes is in the decision copy, for the classifiers, and native
// names the first of it; the translation refuses it. Every member counts:
// one the handling of its block does not name (a message's own, a
// document's) reaches the provider too.
func TestMessagesNativeReadForTheClassifiers(t *testing.T) {
	const secret = "AKIAIOSFODNN7EXAMPLE"
	msg := func(content string) string {
		return `{"model":"m","max_tokens":10,"messages":[{"role":"user","content":` + content + `}]}`
	}
	for name, c := range map[string]struct{ body, native, want string }{
		"thinking":               {`{"model":"m","max_tokens":10,"thinking":{"type":"enabled","budget_tokens":1024},"messages":[{"role":"user","content":"hi"},{"role":"assistant","content":[{"type":"thinking","thinking":"` + secret + `","signature":"c2ln"}]},{"role":"user","content":"go"}]}`, "thinking", secret},
		"a message's own member": {`{"model":"m","max_tokens":10,"messages":[{"role":"user","content":"hi","x_note":"` + secret + `"}]}`, "messages[0].x_note", secret},
		"a document's text":      {msg(`[{"type":"document","source":{"type":"text","media_type":"text/plain","data":"` + secret + `"}}]`), "messages[0].content[0].type document", secret},
		"a document's member":    {msg(`[{"type":"document","source":{"type":"url","url":"https://x.example/a.pdf"},"note":"` + secret + `"}]`), "messages[0].content[0].type document", secret},
		"a PDF":                  {msg(`[{"type":"document","source":{"type":"base64","media_type":"application/pdf","data":"JVBERi0="}}]`), "messages[0].content[0].type document", `"file_data":"data:application/pdf;base64,JVBERi0="`},
		// The red-team probe's second round (h96).
		"a document in a server tool's result": {`{"model":"m","max_tokens":10,"messages":[{"role":"user","content":"fetch"},{"role":"assistant","content":[{"type":"web_fetch_tool_result","tool_use_id":"s","content":{"type":"web_fetch_result","url":"https://x.example/a","content":{"type":"document","source":{"type":"base64","media_type":"text/plain","data":"QUtJQUlPU0ZPRE5ON0VYQU1QTEU="}}}}]},{"role":"user","content":"go"}]}`,
			"messages[1].content[0].type web_fetch_tool_result", `"file_data":"data:text/plain;base64,QUtJQUlPU0ZPRE5ON0VYQU1QTEU="`},
		"a container upload":          {msg(`[{"type":"text","text":"analyse"},{"type":"container_upload","file_id":"file_011"}]`), "messages[0].content[1].type container_upload", `"file_id":"file_011"`},
		"disabled thinking's note":    {`{"model":"m","max_tokens":10,"thinking":{"type":"disabled","note":"` + secret + `"},"messages":[{"role":"user","content":"hi"}]}`, "", secret},
		"an image source's note":      {msg(`[{"type":"image","source":{"type":"url","url":"https://x.example/a.png","note":"` + secret + `"}}]`), "", secret},
		"a document's title object":   {msg(`[{"type":"document","source":{"type":"text","media_type":"text/plain","data":"x"},"title":{"t":"` + secret + `"}}]`), "messages[0].content[0].type document", secret},
		"an image of text in history": {`{"model":"m","max_tokens":10,"messages":[{"role":"user","content":"hi"},{"role":"assistant","content":[{"type":"image","source":{"type":"text","media_type":"text/plain","data":"` + secret + `"}}]},{"role":"user","content":"go"}]}`, "messages[1].content[0].type image", secret},
		"an image in a result":        {`{"model":"m","max_tokens":10,"messages":[{"role":"assistant","content":[{"type":"tool_use","id":"t","name":"r","input":{}}]},{"role":"user","content":[{"type":"tool_result","tool_use_id":"t","content":[{"type":"image","source":{"type":"url","url":"https://x.example/s.png?u=` + secret + `"}}]}]}]}`, "messages[1].content[0].content[0].type image", secret},
	} {
		dec, _, _, native, err := MessagesForDecision([]byte(c.body))
		if err != nil || native != c.native || !strings.Contains(string(dec), c.want) {
			t.Errorf("%s: native %q, %v\n%s", name, native, err, dec)
		}
		if _, _, err := MessagesToChat([]byte(c.body)); (err == nil) != (c.native == "") {
			t.Errorf("%s: translation %v, native %q", name, err, c.native)
		}
	}
}

// A token count's copy needs no max_tokens (count_tokens takes none); a
// message's still does, and a count still refuses what a message would.
func TestMessagesCountForDecision(t *testing.T) {
	const req = `{"model":"m","system":"be brief","tools":[{"name":"t","input_schema":{"type":"object"}}],"messages":[{"role":"user","content":"hi"}]}`
	chat, err := MessagesCountForDecision([]byte(req))
	if err != nil {
		t.Fatal(err)
	}
	if c := gjson.ParseBytes(chat); c.Get("messages.#").Int() != 2 || c.Get("tools.0.function.name").Str != "t" || c.Get("max_completion_tokens").Int() != 1 {
		t.Errorf("count copy %s", chat)
	}
	if _, _, _, _, err := MessagesForDecision([]byte(req)); apierr.As(err).Code != "missing_max_tokens" {
		t.Errorf("a message without max_tokens: %v", err)
	}
	if _, err := MessagesCountForDecision([]byte(`{"model":"m","systme":"x","messages":[{"role":"user","content":"hi"}]}`)); apierr.As(err).Code != "unsupported_parameter" {
		t.Errorf("a typo counted: %v", err)
	}
}

// messageBlocks is the content of an Anthropic message, as a message
// carries it or as its stream's events build it: text:"…" or
// tool_use:ID per block, in index order.
func messageBlocks(t *testing.T, content gjson.Result) []string {
	t.Helper()
	var out []string
	content.ForEach(func(_, b gjson.Result) bool {
		if b.Get("type").Str == "text" {
			out = append(out, "text:"+strconv.Quote(b.Get("text").Str))
		} else {
			out = append(out, b.Get("type").Str+":"+b.Get("id").Str)
		}
		return true
	})
	return out
}

func streamBlocks(t *testing.T, out []byte) []string {
	t.Helper()
	var f Framer
	blocks := []map[string]any{}
	for _, ev := range f.Flush(f.Feed(out, nil)) {
		d := gjson.ParseBytes(ev.Data)
		switch ev.Name {
		case "content_block_start":
			if i := d.Get("index").Int(); i != int64(len(blocks)) {
				t.Fatalf("block %d opened after %d blocks\n%s", i, len(blocks), out)
			}
			blocks = append(blocks, d.Get("content_block").Value().(map[string]any))
		case "content_block_delta":
			if d.Get("delta.type").Str == "text_delta" {
				b := blocks[d.Get("index").Int()]
				b["text"] = b["text"].(string) + d.Get("delta.text").Str
			}
		}
	}
	b, _ := json.Marshal(blocks)
	return messageBlocks(t, gjson.ParseBytes(b))
}

// TestMessagesAnswerHasNoBlankTextBlock: text that is only whitespace
// (the "\n\n" models send beside their tool calls) is no text block of a
// translated answer, streamed or not. Sent back in the conversation's
// history, such a block has Anthropic refuse every later turn ("text
// content blocks must contain non-whitespace text"): a Claude Code
// session served once by an OpenAI-wire model failed from then on.
func TestMessagesAnswerHasNoBlankTextBlock(t *testing.T) {
	call := func(id string) string {
		return `{"id":"` + id + `","type":"function","function":{"name":"f","arguments":"{}"}}`
	}
	for name, c := range map[string]struct {
		content, calls string
		want           []string
	}{
		"beside tool calls":       {`"\n\n"`, `[` + call("call_a") + `,` + call("call_b") + `]`, []string{"tool_use:call_a", "tool_use:call_b"}},
		"whitespace parts":        {`[{"type":"text","text":" \n"},{"type":"text","text":"\t"}]`, `[` + call("call_a") + `]`, []string{"tool_use:call_a"}},
		"whitespace alone":        {`"\n \n"`, `null`, []string{`text:"\n \n"`}}, // the whole answer
		"text around whitespace":  {`"\n\nOn it.\n"`, `[` + call("call_a") + `]`, []string{`text:"\n\nOn it.\n"`, "tool_use:call_a"}},
		"empty beside tool calls": {`""`, `[` + call("call_a") + `]`, []string{"tool_use:call_a"}},
	} {
		t.Run(name, func(t *testing.T) {
			out, err := ChatToMessage([]byte(`{"id":"chatcmpl-1","model":"m","choices":[{"finish_reason":"tool_calls","message":{"role":"assistant","content":`+
				c.content+`,"tool_calls":`+c.calls+`}}]}`), nil)
			if err != nil {
				t.Fatal(err)
			}
			m := gjson.ParseBytes(out)
			if got := messageBlocks(t, m.Get("content")); strings.Join(got, " ") != strings.Join(c.want, " ") || !m.Get("content").IsArray() {
				t.Errorf("content %v, want %v\n%s", got, c.want, out)
			}
		})
	}

	chunk := func(delta string) string {
		return `data: {"id":"chatcmpl-1","model":"m","choices":[{"index":0,"delta":` + delta + `}]}` + "\n\n"
	}
	text := func(s string) string { return chunk(`{"content":` + strconv.Quote(s) + `}`) }
	callStart := func(i int, id, args string) string {
		return chunk(`{"tool_calls":[{"index":` + strconv.Itoa(i) + `,"id":"` + id + `","type":"function","function":{"name":"f","arguments":` + strconv.Quote(args) + `}}]}`)
	}
	callArgs := func(i int, args string) string {
		return chunk(`{"tool_calls":[{"index":` + strconv.Itoa(i) + `,"function":{"arguments":` + strconv.Quote(args) + `}}]}`)
	}
	for name, c := range map[string]struct {
		chunks []string
		want   []string
	}{
		"before tool calls":         {[]string{text("\n"), text("\n"), callStart(0, "call_a", "{}"), callStart(1, "call_b", "{}")}, []string{"tool_use:call_a", "tool_use:call_b"}},
		"between tool calls":        {[]string{text("On it."), callStart(0, "call_a", "{}"), text("\n\n"), callStart(1, "call_b", "{}")}, []string{`text:"On it."`, "tool_use:call_a", "tool_use:call_b"}},
		"after tool calls":          {[]string{callStart(0, "call_a", "{}"), text(" \n")}, []string{"tool_use:call_a"}},
		"whitespace alone":          {[]string{text("\n\n"), text(" ")}, []string{`text:"\n\n "`}},
		"held back, then more text": {[]string{text("\n\n"), text("Hello"), text(" ")}, []string{`text:"\n\nHello "`}},
		"held while a call is open": {[]string{callStart(0, "call_a", `{"a":`), text("\n"), callStart(1, "call_b", "{}"), callArgs(0, "1}")}, []string{"tool_use:call_a", "tool_use:call_b"}},
		"held, then text after the call": {[]string{callStart(0, "call_a", `{"a":`), text("\n"), callArgs(0, "1}"), text("Done.")},
			[]string{"tool_use:call_a", `text:"\nDone."`}},
	} {
		t.Run("stream "+name, func(t *testing.T) {
			s, out := runMessagesStream([]byte(strings.Join(c.chunks, "") + chunk(`{},"finish_reason":"tool_calls"`) + "data: [DONE]\n\n"))
			if err := checkMessagesEvents(out); err != nil || !s.Ended() {
				t.Fatalf("%v (ended %v)\n%s", err, s.Ended(), out)
			}
			if got := streamBlocks(t, out); strings.Join(got, " ") != strings.Join(c.want, " ") {
				t.Errorf("blocks %v, want %v\n%s", got, c.want, out)
			}
		})
	}
}
