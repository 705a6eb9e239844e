package translate

import (
	"errors"
	"strconv"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/tidwall/gjson"

	"github.com/stellwerk/stellwerk/internal/apierr"
)

// Two MCP tools of one server: longer than the 64 characters OpenAI's
// API takes, alike in their first 70.
const (
	longTool      = "mcp__github_enterprise_server__create_pull_request_review_comment_reply_v1"
	otherLongTool = "mcp__github_enterprise_server__create_pull_request_review_comment_reply_v2"
)

// TestMessagesToChatShortensLongToolNames: a tool name chat would refuse
// ("string too long") is one of at most 64 characters in the chat
// request, the same in tools, tool_choice and the history's tool calls;
// two long names with a common prefix stay two names; names of 64
// characters or fewer are as sent. The decision copy keeps the long names
// for the classifiers, and is otherwise the translation.
func TestMessagesToChatShortensLongToolNames(t *testing.T) {
	schema := `"input_schema":{"type":"object"}`
	just64 := strings.Repeat("x", 64)
	body := []byte(`{"model":"m","max_tokens":5,"tools":[{"name":"Read",` + schema + `},{"name":"` + longTool + `",` + schema + `},` +
		`{"name":"` + otherLongTool + `",` + schema + `},{"name":"` + just64 + `",` + schema + `}],"tool_choice":{"type":"tool","name":"` + otherLongTool + `"},` +
		`"messages":[{"role":"user","content":"review"},{"role":"assistant","content":[{"type":"tool_use","id":"toolu_1","name":"` + longTool + `","input":{}},` +
		`{"type":"tool_use","id":"toolu_2","name":"Read","input":{}}]},` +
		`{"role":"user","content":[{"type":"tool_result","tool_use_id":"toolu_1","content":"ok"},{"type":"tool_result","tool_use_id":"toolu_2","content":"ok"}]}]}`)
	out, names, err := MessagesToChat(body)
	if err != nil {
		t.Fatal(err)
	}
	chat := gjson.ParseBytes(out)
	tool := func(i int) string { return chat.Get("tools." + strconv.Itoa(i) + ".function.name").Str }
	short, otherShort := tool(1), tool(2)
	if tool(0) != "Read" || tool(3) != just64 {
		t.Errorf("names of 64 characters or fewer changed: %q, %q", tool(0), tool(3))
	}
	for _, s := range []string{short, otherShort} {
		if len(s) > 64 || !strings.HasPrefix(s, longTool[:55]) {
			t.Errorf("short name %q: want at most 64 characters, beginning as the name does", s)
		}
	}
	if short == otherShort {
		t.Errorf("two long names with a common prefix are both %q", short)
	}
	if got := chat.Get("tool_choice.function.name").Str; got != otherShort {
		t.Errorf("tool_choice names %q, want %q as in tools", got, otherShort)
	}
	if got := chat.Get(`messages.#(role=="assistant").tool_calls.#.function.name`).Raw; got != `["`+short+`","Read"]` {
		t.Errorf("the history's tool calls name %s, want %q as in tools, and Read", got, short)
	}
	if len(names) != 2 || names.original(short) != longTool || names.original(otherShort) != otherLongTool || names.original(just64) != just64 {
		t.Errorf("names %v", names)
	}

	dec, decNames, unread, _, err := MessagesForDecision(body)
	if err != nil || !strings.Contains(gjson.GetBytes(dec, UnreadMember).Raw, longTool) ||
		!strings.Contains(gjson.GetBytes(dec, UnreadMember).Raw, otherLongTool) || len(decNames) != len(names) {
		t.Fatalf("the decision copy %s (names %v, %v) does not read the long names", dec, decNames, err)
	}
	if string(withoutUnread(t, dec, unread)) != string(out) {
		t.Errorf("decision copy %s,\nwant the translation %s", dec, out)
	}

	if _, names, _ := MessagesToChat([]byte(`{"model":"m","max_tokens":5,"tools":[{"name":"Read",` + schema + `}],"messages":[{"role":"user","content":"hi"}]}`)); names != nil {
		t.Errorf("names %v for no long name", names)
	}
}

// TestMessagesAnswerNamesToolsAsSent: the tool call of a model that was
// given short names names the tool as the client did, in a JSON answer
// and streamed, whether the call opens its block as it comes (its name
// in its first delta) or is held back behind another call; short names
// are as the model sent them.
func TestMessagesAnswerNamesToolsAsSent(t *testing.T) {
	_, names, err := MessagesToChat([]byte(`{"model":"m","max_tokens":5,"tools":[{"name":"Read","input_schema":{"type":"object"}},` +
		`{"name":"` + longTool + `","input_schema":{"type":"object"}},{"name":"` + otherLongTool + `","input_schema":{"type":"object"}}],` +
		`"messages":[{"role":"user","content":"hi"}]}`))
	if err != nil {
		t.Fatal(err)
	}
	short, otherShort := shortToolName(longTool), shortToolName(otherLongTool)
	want := `["Read","` + longTool + `","` + otherLongTool + `"]`

	call := func(id, name string) string {
		return `{"id":"` + id + `","type":"function","function":{"name":"` + name + `","arguments":"{}"}}`
	}
	out, err := ChatToMessage([]byte(`{"id":"chatcmpl-1","model":"m","choices":[{"finish_reason":"tool_calls","message":{"role":"assistant","content":null,`+
		`"tool_calls":[`+call("call_a", "Read")+`,`+call("call_b", short)+`,`+call("call_c", otherShort)+`]}}]}`), names)
	if err != nil {
		t.Fatal(err)
	}
	if got := gjson.GetBytes(out, "content.#.name").Raw; got != want {
		t.Errorf("JSON answer names %s, want %s", got, want)
	}

	chunk := func(delta string) string {
		return `data: {"id":"chatcmpl-1","model":"m","choices":[{"index":0,"delta":` + delta + `}]}` + "\n\n"
	}
	callStart := func(i int, name, args string) string {
		return chunk(`{"tool_calls":[{"index":` + strconv.Itoa(i) + `,"id":"call_` + strconv.Itoa(i) + `","type":"function","function":{"name":"` + name + `","arguments":` + strconv.Quote(args) + `}}]}`)
	}
	callArgs := func(i int, args string) string {
		return chunk(`{"tool_calls":[{"index":` + strconv.Itoa(i) + `,"function":{"arguments":` + strconv.Quote(args) + `}}]}`)
	}
	for name, chunks := range map[string][]string{
		"one after another": {callStart(0, "Read", "{}"), callStart(1, short, "{}"), callStart(2, otherShort, "{}")},
		"held back":         {callStart(0, "Read", `{"a":`), callStart(1, short, "{}"), callStart(2, otherShort, "{}"), callArgs(0, "1}")},
	} {
		t.Run("stream "+name, func(t *testing.T) {
			var f Framer
			s := NewMessagesStream().WithToolNames(names)
			var out []byte
			in := strings.Join(chunks, "") + chunk(`{},"finish_reason":"tool_calls"`) + "data: [DONE]\n\n"
			for _, ev := range f.Flush(f.Feed([]byte(in), nil)) {
				out = s.Event(ev, out)
			}
			if err := checkMessagesEvents(out); err != nil {
				t.Fatalf("%v\n%s", err, out)
			}
			var got []string
			for _, ev := range f.Flush(f.Feed(out, nil)) {
				if ev.Name == "content_block_start" {
					got = append(got, strconv.Quote(gjson.GetBytes(ev.Data, "content_block.name").Str))
				}
			}
			if g := "[" + strings.Join(got, ",") + "]"; g != want {
				t.Errorf("streamed blocks name %s, want %s\n%s", g, want, out)
			}
		})
	}
}

// TestToolNamedAsAnothersShortName: a tool named exactly as another
// tool's short name is refused: chat would get two functions of one name,
// and its calls would come back as the long tool's (the red team).
func TestToolNamedAsAnothersShortName(t *testing.T) {
	long := strings.Repeat("mcp__server__", 6) + "tool"
	body := `{"model":"m","max_tokens":10,"messages":[{"role":"user","content":"x"}],"tools":[` +
		`{"name":"` + long + `","input_schema":{"type":"object"}},{"name":"` + shortToolName(long) + `","input_schema":{"type":"object"}}]}`
	_, _, err := MessagesToChat([]byte(body))
	var ae *apierr.Error
	if !errors.As(err, &ae) || ae.Kind != apierr.KindInvalid || ae.Param != "tools" {
		t.Errorf("want a 400 naming tools: %v", err)
	}
}

// TestShortToolNameKeepsCharactersWhole: a long name is cut between
// characters, not inside one (a name cut mid-character could never be
// mapped back: the red team), and still comes back whole.
func TestShortToolNameKeepsCharactersWhole(t *testing.T) {
	long := strings.Repeat("werkzeug_größe_", 6)
	short := shortToolName(long)
	if !utf8.ValidString(short) || len(short) > toolNameMax {
		t.Fatalf("short name %q (%d bytes)", short, len(short))
	}
	if got := (ToolNames{{short: short, long: long}}).original(short); got != long {
		t.Errorf("mapped back to %q", got)
	}
}
