package request

import (
	"bytes"
	"strings"

	"github.com/tidwall/gjson"
)

// Cache writes a request may ask for, as CacheMarks reads them.
const (
	CacheWriteNone = iota
	// CacheWrite5m: a cache_control marker with the default time to live.
	CacheWrite5m
	// CacheWrite1h: a marker with "ttl": "1h".
	CacheWrite1h
)

// cacheControlName is searched without its quotes: bytes.Index finds it
// twice as fast so (it starts its search on the name's first byte).
var cacheControlName = []byte(`cache_control`)

// CacheMarks says whether a request body marks anything for a provider's
// prompt cache (Anthropic's cache_control, on the Messages API or passed
// on from chat content parts), and for how long: Anthropic bills a token
// written to its cache at 1.25 times the input price for five minutes and
// twice for an hour, so the budgets hold such a prompt at the write
// price. It reads the body as sent, without parsing it: a key is the
// member name "cache_control" outside a string (the quote before it not
// escaped, a colon after it); a string that merely contains the words is
// escaped and is not one. When in doubt it says more, which holds more.
func CacheMarks(body []byte) int {
	if asciiEscaped(body) {
		// A name may be written with escapes ("cache\u005fcontrol"),
		// which Anthropic and the translation read as the name: the raw
		// scan missed it and the hold with it (the red-team probe).
		return cacheMarksParsed(gjson.ParseBytes(body))
	}
	marks := CacheWriteNone
	for off := 0; ; {
		i := bytes.Index(body[off:], cacheControlName)
		if i < 0 {
			return marks
		}
		start := off + i
		end := start + len(cacheControlName)
		off = end
		if start == 0 || end >= len(body) || body[start-1] != '"' || body[end] != '"' || escaped(body, start-1) {
			continue // not the whole name between unescaped quotes
		}
		off = end + 1
		v := bytes.TrimLeft(body[off:], " \t\r\n")
		if len(v) == 0 || v[0] != ':' {
			continue
		}
		marks = max(marks, CacheWrite5m)
		// The marker's value is the next JSON value: its ttl says how long.
		if val := gjson.ParseBytes(bytes.TrimLeft(v[1:], " \t\r\n")); val.IsObject() && val.Get("ttl").String() == "1h" {
			return CacheWrite1h
		}
	}
}

// cacheMarksParsed is CacheMarks on the parsed body: every member named
// cache_control, however its name is written, at any depth.
func cacheMarksParsed(v gjson.Result) int {
	marks := CacheWriteNone
	v.ForEach(func(k, x gjson.Result) bool {
		if k.Str == "cache_control" {
			marks = max(marks, CacheWrite5m)
			if x.Get("ttl").String() == "1h" {
				marks = CacheWrite1h
			}
		}
		if x.IsObject() || x.IsArray() {
			marks = max(marks, cacheMarksParsed(x))
		}
		return marks < CacheWrite1h
	})
	return marks
}

// asciiEscaped reports whether body writes an ASCII character as a \u
// escape (\u0000 to \u007f), as a name written to hide from a byte
// search must. Clients escape characters beyond ASCII (Python's json does
// by default), which are no part of the names searched for.
func asciiEscaped(body []byte) bool {
	for off := 0; ; {
		i := bytes.Index(body[off:], asciiEscape)
		if i < 0 {
			return false
		}
		at := off + i + len(asciiEscape)
		if at < len(body) && body[at] >= '0' && body[at] <= '7' && !escaped(body, off+i) {
			return true
		}
		off = at
	}
}

var asciiEscape = []byte(`\u00`)

// escaped reports whether the byte at i is preceded by an odd number of
// backslashes (a quote inside a string). skipString, the parse's, asks it
// too.
func escaped(b []byte, i int) bool {
	n := 0
	for j := i - 1; j >= 0 && b[j] == '\\'; j-- {
		n++
	}
	return n%2 == 1
}

// DefaultWebSearches is how many searches a web search tool without
// max_uses is held at: Anthropic sets no bound of its own.
const DefaultWebSearches = 10

var webSearchType = []byte(`web_search_`)

// WebSearches is the most searches a Messages API request lets Anthropic's
// web search server tool run (a tool whose type starts web_search_): its
// max_uses, or DefaultWebSearches without one, summed over such tools.
// Anthropic bills each search (10 USD per 1,000) beside the tokens, and a
// request held at its tokens alone was charged 2 % of its bill (the
// reasoning probe). A body without such a type is not parsed.
func WebSearches(body []byte) int {
	if !bytes.Contains(body, webSearchType) && !asciiEscaped(body) {
		return 0 // the type is named nowhere, not even with escapes
	}
	n := 0
	gjson.GetBytes(body, "tools").ForEach(func(_, t gjson.Result) bool {
		if strings.HasPrefix(t.Get("type").Str, "web_search_") {
			if mu := t.Get("max_uses"); mu.Type == gjson.Number && mu.Num >= 0 {
				n += int(min(mu.Num, 1e6))
			} else {
				n += DefaultWebSearches
			}
		}
		return true
	})
	return n
}
