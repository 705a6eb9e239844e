package translate

import (
	"errors"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/tidwall/gjson"

	"github.com/stellwerk/stellwerk/internal/apierr"
)

// The Responses API's translations, golden files in testdata/responses
// (inputs shared with testdata/anthropic where the chat side is the same):
//
//	request/NAME.responses.json → NAME.chat.json and NAME.anthropic.json (or NAME.error.json)
//	anthropic/response/NAME.openai.json (chat) → responses/from_chat/NAME.json
//	anthropic/response/NAME.anthropic.json     → responses/from_anthropic/NAME.json
//	anthropic/stream/NAME.openai.sse (chat)    → responses/from_chat/NAME.sse
//	anthropic/stream/NAME.sse                  → responses/from_anthropic/NAME.sse
const responsesDir = "testdata/responses"

func globGolden(t *testing.T, pattern string) map[string][]byte {
	t.Helper()
	paths, err := filepath.Glob(pattern)
	if err != nil || len(paths) == 0 {
		t.Fatalf("no cases %s: %v", pattern, err)
	}
	out := map[string][]byte{}
	for _, p := range paths {
		b, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		out[p] = b
	}
	return out
}

func TestResponsesRequestGolden(t *testing.T) {
	for path, in := range globGolden(t, filepath.Join(responsesDir, "request", "*.responses.json")) {
		base := strings.TrimSuffix(path, ".responses.json")
		t.Run(filepath.Base(base), func(t *testing.T) {
			chat, err := ResponsesToChat(in)
			anth, aerr := ResponsesToAnthropic(in, testModel)
			errPath := base + ".error.json"
			if err != nil {
				var ae *apierr.Error
				if !errors.As(err, &ae) || ae.Kind != apierr.KindInvalid || ae.Param == "" || aerr == nil {
					t.Fatalf("error %v is not an *apierr.Error 400 naming the member (anthropic: %v)", err, aerr)
				}
				checkGolden(t, errPath, indent(t, ae.JSON()))
				// The same request is no error for the decision: a native
				// provider can take it.
				if _, needs, err := ResponsesForDecision(in); err != nil || needs.Native == "" {
					t.Errorf("for the decision: %+v, %v; want it needing a native provider", needs, err)
				}
				return
			}
			if aerr != nil {
				t.Fatalf("chat translated but anthropic: %v", aerr)
			}
			checkGolden(t, base+".chat.json", indent(t, chat))
			checkGolden(t, base+".anthropic.json", indent(t, anth))
			// The decision reads exactly what a translating provider gets.
			dec, needs, err := ResponsesForDecision(in)
			if err != nil || string(dec) != string(chat) || needs != (ResponsesNeeds{}) {
				t.Errorf("decision translation %s %+v %v differs from %s", dec, needs, err, chat)
			}
		})
	}
}

func TestResponsesAnswerGolden(t *testing.T) {
	pinNow(t)
	for path, in := range globGolden(t, filepath.Join(goldenDir, "response", "*.openai.json")) {
		name := strings.TrimSuffix(filepath.Base(path), ".openai.json")
		t.Run("chat/"+name, func(t *testing.T) {
			out, err := ChatToResponse(in, nil)
			if err != nil {
				t.Fatal(err)
			}
			checkGolden(t, filepath.Join(responsesDir, "from_chat", name+".json"), indent(t, out))
		})
	}
	for path, in := range globGolden(t, filepath.Join(goldenDir, "response", "*.anthropic.json")) {
		name := strings.TrimSuffix(filepath.Base(path), ".anthropic.json")
		t.Run("anthropic/"+name, func(t *testing.T) {
			out, err := AnthropicToResponse(in)
			if err != nil {
				t.Fatal(err)
			}
			checkGolden(t, filepath.Join(responsesDir, "from_anthropic", name+".json"), indent(t, out))
		})
	}
}

// runConv feeds a raw SSE stream through the Framer and a converter, in
// chunks of 7 bytes, the way the proxy meets them.
func runConv(in []byte, c StreamConverter) []byte {
	var f Framer
	var out []byte
	var evs []Event
	for len(in) > 0 {
		n := min(7, len(in))
		evs = f.Feed(in[:n], evs[:0])
		for _, ev := range evs {
			out = c.Event(ev, out)
		}
		in = in[n:]
	}
	for _, ev := range f.Flush(nil) {
		out = c.Event(ev, out)
	}
	return out
}

// checkResponsesEvents reports whether out is only named Responses events
// numbered from 0, each data's type its name, ending in a terminal event.
func checkResponsesEvents(t *testing.T, out []byte) {
	t.Helper()
	var f Framer
	evs := f.Flush(f.Feed(out, nil))
	for i, ev := range evs {
		d := gjson.ParseBytes(ev.Data)
		if ev.Name == "" || d.Get("type").Str != ev.Name || d.Get("sequence_number").Int() != int64(i) {
			t.Fatalf("event %d: %q %s", i, ev.Name, ev.Data)
		}
	}
	if n := len(evs); n == 0 || !strings.HasPrefix(evs[n-1].Name, "response.") && evs[n-1].Name != "error" {
		t.Fatalf("no terminal event:\n%s", out)
	}
}

func TestResponsesStreamGolden(t *testing.T) {
	pinNow(t)
	for path, in := range globGolden(t, filepath.Join(goldenDir, "stream", "*.openai.sse")) {
		name := strings.TrimSuffix(filepath.Base(path), ".openai.sse")
		t.Run("chat/"+name, func(t *testing.T) {
			out := runConv(in, NewResponsesStream())
			checkResponsesEvents(t, out)
			checkGolden(t, filepath.Join(responsesDir, "from_chat", name+".sse"), out)
		})
	}
	for path, in := range globGolden(t, filepath.Join(goldenDir, "stream", "*.sse")) {
		if strings.HasSuffix(path, ".openai.sse") {
			continue
		}
		name := strings.TrimSuffix(filepath.Base(path), ".sse")
		t.Run("anthropic/"+name, func(t *testing.T) {
			s := NewAnthropicResponsesStream(nil)
			out := runConv(in, s)
			checkResponsesEvents(t, out)
			checkGolden(t, filepath.Join(responsesDir, "from_anthropic", name+".sse"), out)
			if !s.Ended() {
				t.Error("not ended")
			}
		})
	}
}

// TestResponsesFollower: a native stream passes through byte for byte,
// cut anywhere; its usage is response.completed's.
func TestResponsesFollower(t *testing.T) {
	in := globGolden(t, filepath.Join(responsesDir, "from_chat", "text_usage.sse"))
	for _, b := range in {
		f := NewResponsesFollower()
		if out := runConv(b, f); string(out) != string(b) {
			t.Fatalf("changed:\n%s\nwant\n%s", out, b)
		}
		in, out, ok := f.Usage()
		if !ok || in == 0 || out == 0 || !f.Ended() {
			t.Fatalf("usage %d %d %v, ended %v", in, out, ok, f.Ended())
		}
	}
}

// FuzzResponsesToAnthropic: any body gives a Messages request or an
// *apierr.Error 400, never a panic.
func FuzzResponsesToAnthropic(f *testing.F) {
	paths, _ := filepath.Glob(filepath.Join(responsesDir, "request", "*.responses.json"))
	for _, p := range paths {
		if b, err := os.ReadFile(p); err == nil {
			f.Add(b)
		}
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		out, err := ResponsesToAnthropic(body, testModel)
		if err != nil {
			var ae *apierr.Error
			if !errors.As(err, &ae) || ae.Kind != apierr.KindInvalid {
				t.Fatalf("error %v is not an *apierr.Error 400", err)
			}
			return
		}
		if !gjson.ValidBytes(out) || gjson.GetBytes(out, "model").Str != testModel {
			t.Fatalf("translated %q into %q", body, out)
		}
	})
}

// FuzzResponsesForDecision: the lenient translation accepts whatever the
// strict one does, and the same; it never panics.
func FuzzResponsesForDecision(f *testing.F) {
	paths, _ := filepath.Glob(filepath.Join(responsesDir, "request", "*.responses.json"))
	for _, p := range paths {
		if b, err := os.ReadFile(p); err == nil {
			f.Add(b)
		}
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		dec, needs, err := ResponsesForDecision(body)
		strict, serr := ResponsesToChat(body)
		// The decision copy is the translation, plus what it reads of the
		// request as sent (UnreadMember) when it says so.
		sent := withoutUnread(t, dec, needs.Unread)
		if serr == nil && (err != nil || string(sent) != string(strict) || needs.Native != "" || needs.Stored) {
			t.Fatalf("strict %s; lenient %s %+v %v", strict, dec, needs, err)
		}
		if err == nil && !gjson.ValidBytes(dec) {
			t.Fatalf("invalid %s", dec)
		}
	})
}

// FuzzAnthropicResponsesStream: whatever Anthropic streams, the composed
// translation emits only named, numbered Responses events.
func FuzzAnthropicResponsesStream(f *testing.F) {
	paths, _ := filepath.Glob(filepath.Join(goldenDir, "stream", "*.sse"))
	for _, p := range paths {
		if b, err := os.ReadFile(p); err == nil && !strings.HasSuffix(p, ".openai.sse") {
			f.Add(b)
		}
	}
	f.Fuzz(func(t *testing.T, in []byte) {
		out := runConv(in, NewAnthropicResponsesStream(nil))
		var fr Framer
		for i, ev := range fr.Flush(fr.Feed(out, nil)) {
			d := gjson.ParseBytes(ev.Data)
			if !gjson.ValidBytes(ev.Data) || d.Get("type").Str != ev.Name || d.Get("sequence_number").Int() != int64(i) {
				t.Fatalf("bad event %d %q: %s", i, ev.Name, ev.Data)
			}
		}
	})
}

// FuzzResponsesFollower: a native stream is passed through as received.
func FuzzResponsesFollower(f *testing.F) {
	f.Add([]byte("event: response.completed\ndata: {\"type\":\"response.completed\",\"response\":{\"usage\":{\"input_tokens\":1,\"output_tokens\":2}}}\n\n"))
	f.Add([]byte("data: {\"type\":\"error\"}\n\n"))
	f.Fuzz(func(t *testing.T, in []byte) {
		var fr Framer
		f := NewResponsesFollower()
		var out []byte
		for _, ev := range fr.Flush(fr.Feed(in, nil)) {
			out = f.Event(ev, out)
		}
		if pt, ct, ok := f.Usage(); ok && (pt < 0 || ct < 0) {
			t.Fatal("negative usage")
		}
		_ = out
	})
}

// BenchmarkResponsesTranslations: the Responses API's new paths on a 2 KB
// request, its answer, and a stream of 64 text deltas: to and from
// Anthropic (composed through chat), the lenient decision translation,
// and following a native stream.
func BenchmarkResponsesTranslations(b *testing.B) {
	text := strings.Repeat("Explain the difference between a mutex and a semaphore. ", 30)
	req := []byte(`{"model":"auto","instructions":"You are helpful.","input":"` + text + `"}`)
	answer := []byte(`{"id":"msg_1","type":"message","role":"assistant","model":"c","content":[{"type":"text","text":"` + text +
		`"}],"stop_reason":"end_turn","usage":{"input_tokens":400,"output_tokens":400}}`)
	var anth, native strings.Builder
	anth.WriteString("event: message_start\ndata: {\"type\":\"message_start\",\"message\":{\"id\":\"msg_1\",\"model\":\"c\",\"usage\":{\"input_tokens\":400,\"output_tokens\":1}}}\n\n" +
		"event: content_block_start\ndata: {\"type\":\"content_block_start\",\"index\":0,\"content_block\":{\"type\":\"text\",\"text\":\"\"}}\n\n")
	native.WriteString("event: response.created\ndata: {\"type\":\"response.created\",\"sequence_number\":0,\"response\":{\"id\":\"resp_1\",\"status\":\"in_progress\",\"output\":[]}}\n\n")
	for i := range 64 {
		anth.WriteString("event: content_block_delta\ndata: {\"type\":\"content_block_delta\",\"index\":0,\"delta\":{\"type\":\"text_delta\",\"text\":\"word \"}}\n\n")
		native.WriteString("event: response.output_text.delta\ndata: {\"type\":\"response.output_text.delta\",\"sequence_number\":" + strconv.Itoa(i+1) +
			",\"item_id\":\"msg_1\",\"output_index\":0,\"content_index\":0,\"delta\":\"word \"}\n\n")
	}
	anth.WriteString("event: content_block_stop\ndata: {\"type\":\"content_block_stop\",\"index\":0}\n\n" +
		"event: message_delta\ndata: {\"type\":\"message_delta\",\"delta\":{\"stop_reason\":\"end_turn\"},\"usage\":{\"output_tokens\":64}}\n\n" +
		"event: message_stop\ndata: {\"type\":\"message_stop\"}\n\n")
	native.WriteString("event: response.completed\ndata: {\"type\":\"response.completed\",\"sequence_number\":66,\"response\":{\"id\":\"resp_1\",\"status\":\"completed\",\"usage\":{\"input_tokens\":400,\"output_tokens\":64}}}\n\n")
	stream := func(b *testing.B, in []byte, conv func() StreamConverter) {
		b.ReportAllocs()
		b.SetBytes(int64(len(in)))
		for b.Loop() {
			var f Framer
			c := conv()
			out := c.Event(Event{}, nil)
			for _, ev := range f.Flush(f.Feed(in, nil)) {
				out = c.Event(ev, out)
			}
			if !c.Ended() {
				b.Fatal("not ended")
			}
		}
	}
	b.Run("decision request", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if _, _, err := ResponsesForDecision(req); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("request to anthropic", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if _, err := ResponsesToAnthropic(req, testModel); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("answer from anthropic", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if _, err := AnthropicToResponse(answer); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("stream from anthropic", func(b *testing.B) {
		stream(b, []byte(anth.String()), func() StreamConverter { return NewAnthropicResponsesStream(nil) })
	})
	b.Run("native stream followed", func(b *testing.B) {
		stream(b, []byte(native.String()), func() StreamConverter { return NewResponsesFollower() })
	})
}
