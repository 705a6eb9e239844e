package translate

import (
	"bytes"
	"strings"
	"testing"
	"unicode"
)

func collect(chunks ...string) []Event {
	var f Framer
	var out []Event
	for _, c := range chunks {
		for _, e := range f.Feed([]byte(c), nil) {
			out = append(out, Event{Name: e.Name, Data: append([]byte(nil), e.Data...), ID: e.ID, Raw: append([]byte(nil), e.Raw...)})
		}
	}
	for _, e := range f.Flush(nil) {
		out = append(out, Event{Name: e.Name, Data: append([]byte(nil), e.Data...), ID: e.ID, Raw: append([]byte(nil), e.Raw...)})
	}
	return out
}

func TestFramer(t *testing.T) {
	cases := map[string]struct {
		chunks []string
		want   []string // name|data
	}{
		"openai":               {[]string{"data: {\"a\":1}\n\ndata: [DONE]\n\n"}, []string{"|{\"a\":1}", "|[DONE]"}},
		"split anywhere":       {[]string{"da", "ta: {\"a\"", ":1}\n", "\nda", "ta: x\n\n"}, []string{"|{\"a\":1}", "|x"}},
		"crlf":                 {[]string{"data: a\r\n\r\ndata: b\r\n\r\n"}, []string{"|a", "|b"}},
		"crlf split":           {[]string{"data: a\r", "\n\r", "\ndata: b\r\n\r\n"}, []string{"|a", "|b"}},
		"cr only":              {[]string{"data: a\r\rdata: b\r\r"}, []string{"|a", "|b"}},
		"comments":             {[]string{": keep-alive\n\n: ping\ndata: x\n\n"}, []string{"|", "|x"}},
		"multi-line data":      {[]string{"data: line1\ndata: line2\n\n"}, []string{"|line1\nline2"}},
		"anthropic":            {[]string{"event: message_start\ndata: {\"type\":\"message_start\"}\n\n"}, []string{"message_start|{\"type\":\"message_start\"}"}},
		"no final newline":     {[]string{"data: a\n\ndata: last"}, []string{"|a", "|last"}},
		"no space after colon": {[]string{"data:x\n\n"}, []string{"|x"}},
		"id and unknown field": {[]string{"id: 7\nretry: 10\nfoo: bar\ndata: y\n\n"}, []string{"|y"}},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			var got []string
			for _, e := range collect(tc.chunks...) {
				got = append(got, e.Name+"|"+string(e.Data))
			}
			if strings.Join(got, "\n---\n") != strings.Join(tc.want, "\n---\n") {
				t.Errorf("got %q, want %q", got, tc.want)
			}
		})
	}
}

func TestRawReassembles(t *testing.T) {
	in := "event: a\ndata: 1\n\n: c\ndata: 2\r\n\r\ndata: 3\n\n"
	var raw []byte
	for _, e := range collect(in[:7], in[7:19], in[19:]) {
		raw = append(raw, e.Raw...)
	}
	if string(raw) != in {
		t.Errorf("raw %q != %q", raw, in)
	}
}

// FuzzFramer: whatever the bytes and however they are split, the framer
// never panics, yields the same events as in one piece, and its raw event
// bytes reassemble the input exactly.
func FuzzFramer(f *testing.F) {
	for _, s := range []string{"data: a\n\n", "data: a\r\n\r\ndata: b", "event: x\ndata: 1\ndata: 2\n\n", ":c\n\n", "\r\r\r", "data:\n\n\n\n", "\n\r\n\r"} {
		f.Add([]byte(s), uint8(3))
	}
	f.Fuzz(func(t *testing.T, in []byte, split uint8) {
		whole := collect(string(in))
		var parts []string
		step := int(split%16) + 1
		for i := 0; i < len(in); i += step {
			parts = append(parts, string(in[i:min(len(in), i+step)]))
		}
		pieces := collect(parts...)
		if len(whole) != len(pieces) {
			t.Fatalf("%d events whole, %d split by %d", len(whole), len(pieces), step)
		}
		var raw []byte
		for i := range whole {
			if whole[i].Name != pieces[i].Name || !bytes.Equal(whole[i].Data, pieces[i].Data) {
				t.Fatalf("event %d differs: %+v vs %+v", i, whole[i], pieces[i])
			}
			raw = append(raw, pieces[i].Raw...)
		}
		if len(bytes.TrimSpace(in)) > 0 && !bytes.Equal(raw, in) && !bytes.Equal(bytes.TrimRightFunc(raw, unicode.IsSpace), bytes.TrimRightFunc(in, unicode.IsSpace)) {
			t.Fatalf("raw %q does not reassemble %q", raw, in)
		}
	})
}

func BenchmarkFramer(b *testing.B) {
	chunk := []byte(strings.Repeat(`data: {"id":"x","object":"chat.completion.chunk","choices":[{"index":0,"delta":{"content":"hello"}}]}`+"\n\n", 8))
	var f Framer
	var evs []Event
	b.SetBytes(int64(len(chunk)))
	b.ReportAllocs()
	for b.Loop() {
		evs = f.Feed(chunk, evs[:0])
	}
}

// TestFramerLongEvent: an event spanning many chunks is held whole (Pending
// counts it) and comes out once, with its data intact, when it ends; the
// framer then holds nothing.
func TestFramerLongEvent(t *testing.T) {
	data := strings.Repeat("0123456789abcdef", 1<<12)
	in := []byte("event: big\r\ndata: " + data + "\r\ndata: tail\r\n\r\ndata: next\n\n")
	var f Framer
	var got []Event
	for i := 0; i < len(in); i += 1000 {
		evs := f.Feed(in[i:min(len(in), i+1000)], nil)
		for _, e := range evs {
			got = append(got, Event{Name: e.Name, Data: append([]byte(nil), e.Data...)})
		}
		if len(got) == 0 && f.Pending() != min(len(in), i+1000) {
			t.Fatalf("pending %d after %d bytes", f.Pending(), i+1000)
		}
	}
	if len(got) != 2 || got[0].Name != "big" || string(got[0].Data) != data+"\ntail" || string(got[1].Data) != "next" || f.Pending() != 0 {
		t.Fatalf("%d events, pending %d", len(got), f.Pending())
	}
}
