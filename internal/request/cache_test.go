package request

import (
	"strings"
	"testing"
)

func TestCacheMarks(t *testing.T) {
	for body, want := range map[string]int{
		`{"messages":[{"role":"user","content":"hi"}]}`:                                                                                                       CacheWriteNone,
		`{"system":[{"type":"text","text":"manual","cache_control":{"type":"ephemeral"}}]}`:                                                                   CacheWrite5m,
		`{"system":[{"type":"text","text":"manual","cache_control" : {"type":"ephemeral","ttl":"5m"}}]}`:                                                      CacheWrite5m,
		`{"system":[{"type":"text","text":"a","cache_control":{"type":"ephemeral"}}],"tools":[{"name":"f","cache_control":{"type":"ephemeral","ttl":"1h"}}]}`: CacheWrite1h,
		// In a string the quotes are escaped: text, not a marker.
		`{"messages":[{"role":"user","content":"send \"cache_control\": {\"ttl\":\"1h\"}"}]}`: CacheWriteNone,
		// A value, not a key.
		`{"metadata":{"note":"cache_control"}}`: CacheWriteNone,
		// An escaped backslash before a real quote: a key.
		`{"a":"x\\","cache_control":{"type":"ephemeral"}}`: CacheWrite5m,
		// A name written with escapes is the name to a JSON reader (the
		// red-team probe's way around the hold).
		`{"system":[{"type":"text","text":"a","cache\u005fcontrol":{"type":"ephemeral","ttl":"1h"}}]}`:                    CacheWrite1h,
		`{"messages":[{"role":"user","content":[{"type":"text","text":"a","\u0063ache_control":{"type":"ephemeral"}}]}]}`: CacheWrite5m,
		// An escaped backslash is no escape; a character beyond ASCII is
		// none of the name.
		`{"messages":[{"role":"user","content":"caf\u00e9 \\u0041"}]}`: CacheWriteNone,
		`"cache_control"`:   CacheWriteNone,
		`"cache_control":`:  CacheWrite5m,
		`"cache_control":{`: CacheWrite5m,
	} {
		if got := CacheMarks([]byte(body)); got != want {
			t.Errorf("%s: %d, want %d", body, got, want)
		}
	}
}

// FuzzCacheMarks: any body is read without a panic, and a body with no
// "cache_control" in it, written without escapes, marks nothing.
func FuzzCacheMarks(f *testing.F) {
	f.Add([]byte(`{"system":[{"type":"text","text":"a","cache_control":{"type":"ephemeral","ttl":"1h"}}]}`))
	f.Add([]byte(`\\\"cache_control\":`))
	f.Fuzz(func(t *testing.T, body []byte) {
		got := CacheMarks(body)
		if got < CacheWriteNone || got > CacheWrite1h || !strings.Contains(string(body), "cache_control") && !asciiEscaped(body) && got != CacheWriteNone {
			t.Fatalf("%q: %d", body, got)
		}
	})
}

func TestWebSearches(t *testing.T) {
	for body, want := range map[string]int{
		`{"messages":[{"role":"user","content":"web_search_20250305"}]}`:                                           0,
		`{"tools":[{"type":"web_search_20250305","name":"web_search","max_uses":4}]}`:                              4,
		`{"tools":[{"type":"web_search_20250305","name":"web_search"}]}`:                                           DefaultWebSearches,
		`{"tools":[{"name":"get_weather"},{"type":"web_search_20260101","name":"s","max_uses":2}]}`:                2,
		`{"tools":[{"type":"web_search_20250305","max_uses":-3}]}`:                                                 DefaultWebSearches,
		`{"tools":[{"type":"web_search_20250305","max_uses":1e300}]}`:                                              1_000_000,
		`{"tools":[{"type":"web_fetch_20250910","name":"web_fetch"},{"type":"web_search_20250305","max_uses":1}]}`: 1,
		`{"tools":[{"type":"web\u005fsearch_20250305","name":"web_search","max_uses":500}]}`:                       500,
		`{"t\u006fols":[{"type":"web_search_20250305","max_uses":3}]}`:                                             3,
	} {
		if got := WebSearches([]byte(body)); got != want {
			t.Errorf("%s: %d, want %d", body, got, want)
		}
	}
}

// BenchmarkCacheMarks is what every request pays to find its cache
// markers: a 2 KB chat body without one, and a Messages body with one.
func BenchmarkCacheMarks(b *testing.B) {
	plain := []byte(`{"model":"auto","max_tokens":300,"messages":[{"role":"user","content":"` +
		strings.Repeat("Explain the difference between a mutex and a semaphore. ", 30) + `"}]}`)
	marked := []byte(`{"model":"claude","max_tokens":300,"system":[{"type":"text","text":"` + strings.Repeat("A manual. ", 200) +
		`","cache_control":{"type":"ephemeral","ttl":"1h"}}],"messages":[{"role":"user","content":"hi"}]}`)
	for name, body := range map[string][]byte{"none": plain, "marked": marked} {
		b.Run(name, func(b *testing.B) {
			b.ReportAllocs()
			b.SetBytes(int64(len(body)))
			for b.Loop() {
				CacheMarks(body)
			}
		})
	}
}

func TestASCIIEscaped(t *testing.T) {
	for body, want := range map[string]bool{
		`{"a":"b"}`:                    false,
		`{"a":"caf\u00e9 na\u00efve"}`: false, // beyond ASCII, as Python escapes it
		`{"a":"\\u0041"}`:              false, // a backslash, then u0041
		`{"\u0061":"b"}`:               true,
		`{"a":"\u007f"}`:               true,
		`\u00`:                         false,
	} {
		if got := asciiEscaped([]byte(body)); got != want {
			t.Errorf("%s: %v, want %v", body, got, want)
		}
	}
}
