package translate

import (
	"strings"

	"github.com/tidwall/gjson"
)

// AnswerText is the text of a chat answer's content, a message's or a
// stream delta's: a string, or, as Mistral's reasoning models (magistral)
// answer, an array of parts whose text parts are the answer (their
// thinking parts are the reasoning no translation carries). The answer
// disappeared behind a 200 when only strings were read (the provider-wire
// probe). A string costs no copy.
func AnswerText(v gjson.Result) string {
	switch {
	case v.Type == gjson.String:
		return v.Str
	case v.IsArray():
		var b strings.Builder
		v.ForEach(func(_, p gjson.Result) bool {
			if t := p.Get("text"); p.Get("type").Str == "text" && t.Type == gjson.String {
				b.WriteString(t.Str)
			}
			return true
		})
		return b.String()
	}
	return ""
}

// toolCalls is a chat answer's tool calls, a message's or a delta's: its
// array, or nothing. Mistral and servers built on pydantic send
// "tool_calls": null, which gjson's ForEach visits once as a value: an
// empty tool_use reached the client (the provider-wire probe).
func toolCalls(v gjson.Result) gjson.Result {
	if v.IsArray() {
		return v
	}
	return gjson.Result{}
}

// callSlot is the slot of a streamed tool-call delta among the n calls
// seen so far, lastID the id of the last of them: its index, or, from a
// provider that sends none (Gemini's OpenAI-compatible API streams each
// call whole, without one), the last call's, or the next slot when the
// delta names another call. Read as index 0, a second call was dropped, or
// its arguments glued to the first's (the provider-wire probe).
func callSlot(tc gjson.Result, n int, lastID string) int {
	if i := tc.Get("index"); i.Exists() {
		return int(i.Int())
	}
	if id := tc.Get("id").Str; n == 0 || (id != "" && id != lastID) {
		return n
	}
	return n - 1
}
