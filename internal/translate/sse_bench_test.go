package translate

import (
	"bytes"
	"strings"
	"testing"
)

// BenchmarkFramerLongEvent is one 1 MiB event that arrives in 4 KiB chunks
// before its blank line: the framer must not rescan what it already held.
func BenchmarkFramerLongEvent(b *testing.B) {
	const size, chunk = 1 << 20, 4 << 10
	in := []byte("data: " + strings.Repeat("x", size-len("data: ")))
	var f Framer
	var evs []Event
	b.SetBytes(size)
	b.ReportAllocs()
	for b.Loop() {
		for i := 0; i < len(in); i += chunk {
			if evs = f.Feed(in[i:i+chunk], evs[:0]); len(evs) != 0 {
				b.Fatal("event ended early")
			}
		}
		if evs = f.Feed([]byte("\n\n"), evs[:0]); len(evs) != 1 || len(evs[0].Data) != size-len("data: ") {
			b.Fatalf("%d events", len(evs))
		}
	}
}

// BenchmarkFramerSplit is a typical stream whose chunk boundaries fall
// inside events: OpenAI chunks and Anthropic events (named, with CRLF),
// 1 KiB at a time.
func BenchmarkFramerSplit(b *testing.B) {
	streams := map[string]string{
		"openai": strings.Repeat(`data: {"id":"x","object":"chat.completion.chunk","choices":[{"index":0,"delta":{"content":"hello"}}]}`+"\n\n", 64),
		"anthropic": strings.Repeat("event: content_block_delta\r\ndata: {\"type\":\"content_block_delta\",\"index\":0,\"delta\":{\"type\":\"text_delta\",\"text\":\"hello\"}}\r\n\r\n", 64) +
			": ping\n\n",
	}
	for name, s := range streams {
		b.Run(name, func(b *testing.B) {
			in := []byte(s)
			var f Framer
			var evs []Event
			n := 0
			b.SetBytes(int64(len(in)))
			b.ReportAllocs()
			for b.Loop() {
				for i := 0; i < len(in); i += 1024 {
					evs = f.Feed(in[i:min(len(in), i+1024)], evs[:0])
					n += len(evs)
				}
				if f.Pending() != 0 {
					b.Fatalf("%d bytes held after a complete stream", f.Pending())
				}
			}
			if n == 0 || bytes.Count(in, []byte("\n\n"))+bytes.Count(in, []byte("\r\n\r\n")) == 0 {
				b.Fatal("no events")
			}
		})
	}
}
