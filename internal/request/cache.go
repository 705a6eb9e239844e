package request

import (
	"bytes"

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

var cacheControlKey = []byte(`"cache_control"`)

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
	marks := CacheWriteNone
	for off := 0; ; {
		i := bytes.Index(body[off:], cacheControlKey)
		if i < 0 {
			return marks
		}
		at := off + i
		off = at + len(cacheControlKey)
		if escaped(body, at) {
			continue
		}
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

// escaped reports whether the byte at i is preceded by an odd number of
// backslashes (a quote inside a string).
func escaped(b []byte, i int) bool {
	n := 0
	for j := i - 1; j >= 0 && b[j] == '\\'; j-- {
		n++
	}
	return n%2 == 1
}
