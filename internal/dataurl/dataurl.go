// Package dataurl reads the text a data: URL carries, for the classifiers:
// a file a request sends inline (a chat "file" part's file_data, a
// Responses input_file) is text the model reads when it is a text file.
package dataurl

import (
	"bytes"
	"encoding/base64"
	"strings"
	"unicode/utf8"

	"golang.org/x/text/encoding"
	"golang.org/x/text/encoding/charmap"
	"golang.org/x/text/encoding/htmlindex"
	"golang.org/x/text/encoding/unicode"
	"golang.org/x/text/encoding/unicode/utf32"
)

// Status says what Text could read of a URL.
type Status uint8

const (
	// NotText: not a data URL, or one of a media type that is not text
	// (a PDF, an image): there is no text to read.
	NotText Status = iota
	// Read: the whole text.
	Read
	// Cut: the text's first limit bytes; more follows.
	Cut
	// Unreadable: a text media type whose payload does not decode (bad
	// base64, no payload, a charset no browser knows, mostly NUL bytes).
	// The model may read what the classifiers cannot, so a caller treats
	// it as text it has not read.
	Unreadable
)

// Text is the text of a data URL whose media type is text (text/*, JSON,
// XML, YAML, CSV, or none, which RFC 2397 reads as text/plain), as UTF-8,
// at most limit bytes of it (whole runes).
//
// The payload is base64 (standard or URL alphabet, padded or not, wrapped
// in lines or not, percent-escapes in it read first) or percent-encoded.
// Its bytes are read as a browser reads them (decode): a byte-order mark,
// else the charset label, else UTF-8 or, when they are not valid UTF-8,
// Windows-1252, a superset of Latin-1 (what spreadsheets export in Western
// Europe). A label no browser knows, and text that is mostly NUL bytes,
// are Unreadable: a provider may read what the classifiers cannot.
func Text(s string, limit int) (string, Status) {
	if len(s) < 5 || !strings.EqualFold(s[:5], "data:") {
		return "", NotText
	}
	meta, payload, found := strings.Cut(s[5:], ",")
	params := strings.Split(meta, ";")
	mediaType := strings.ToLower(strings.TrimSpace(params[0]))
	if mediaType == "" {
		mediaType = "text/plain"
	}
	if !isText(mediaType) {
		return "", NotText
	}
	if !found {
		return "", Unreadable
	}
	limit = max(limit, 0)
	b64, charset := false, ""
	for _, p := range params[1:] {
		p = strings.TrimSpace(p)
		if strings.EqualFold(p, "base64") {
			b64 = true
		} else if k, v, ok := strings.Cut(p, "="); ok && strings.EqualFold(strings.TrimSpace(k), "charset") {
			charset = strings.ToLower(strings.Trim(strings.TrimSpace(v), `"`))
		}
	}
	// Bytes of payload enough for limit bytes of UTF-8 text (up to four
	// per character in UTF-32, two in UTF-16, one otherwise), and a
	// character more to see whether anything follows.
	need := 4*limit + 8
	var raw []byte
	var more bool
	if b64 {
		if strings.IndexByte(payload, '%') >= 0 {
			// The URL's own escapes first, then base64 (WHATWG's data:
			// URL reading: "…%3D" is padding).
			p, _ := unescape(payload, len(payload))
			payload = string(p)
		}
		var ok bool
		if raw, more, ok = decodeBase64(payload, need); !ok {
			return "", Unreadable
		}
	} else {
		raw, more = unescape(payload, need)
	}
	text, ok := decode(raw, charset, more)
	if !ok {
		return "", Unreadable
	}
	// Text is not NUL bytes: UTF-16 or UTF-32 under a label this did not
	// know would read as letters between NULs, which no detector matches.
	if nul := strings.Count(text, "\x00"); nul > 0 && nul*100 >= len(text) {
		return "", Unreadable
	}
	if len(text) > limit {
		text, more = text[:limit], true
		for len(text) > 0 && !utf8.ValidString(text) {
			text = text[:len(text)-1]
		}
	}
	if more {
		return text, Cut
	}
	return text, Read
}

// decode reads raw in its charset as WHATWG's decoder does: a byte-order
// mark first (UTF-8, UTF-16, and UTF-32, which WHATWG leaves out), else the
// label (any of WHATWG's names), else UTF-8 when the bytes are valid UTF-8
// and Windows-1252 when not. A label it does not know (shift_jis is known;
// utf-7, EBCDIC, utf-16-be are not) is no text it can read: false, as for
// WHATWG's replacement encodings.
// A code unit cut in two at the end of a cut payload decodes as U+FFFD.
func decode(raw []byte, charset string, cut bool) (string, bool) {
	var enc encoding.Encoding
	switch {
	case bytes.HasPrefix(raw, []byte{0, 0, 0xfe, 0xff}):
		enc = utf32.UTF32(utf32.BigEndian, utf32.UseBOM)
	case bytes.HasPrefix(raw, []byte{0xff, 0xfe, 0, 0}):
		enc = utf32.UTF32(utf32.LittleEndian, utf32.UseBOM)
	case bytes.HasPrefix(raw, []byte{0xfe, 0xff}):
		enc = unicode.UTF16(unicode.BigEndian, unicode.UseBOM)
	case bytes.HasPrefix(raw, []byte{0xff, 0xfe}):
		enc = unicode.UTF16(unicode.LittleEndian, unicode.UseBOM)
	case bytes.HasPrefix(raw, []byte{0xef, 0xbb, 0xbf}):
		raw = raw[3:]
	case charset == "utf-32" || charset == "utf-32le":
		enc = utf32.UTF32(utf32.LittleEndian, utf32.IgnoreBOM)
	case charset == "utf-32be":
		enc = utf32.UTF32(utf32.BigEndian, utf32.IgnoreBOM)
	case charset != "":
		e, err := htmlindex.Get(charset)
		if err != nil || e == encoding.Replacement {
			return "", false
		}
		if n, _ := htmlindex.Name(e); n != "utf-8" {
			enc = e
		}
	}
	if enc == nil { // UTF-8, or Windows-1252 bytes
		valid := utf8.Valid(raw)
		if !valid && cut { // the payload was cut inside a rune
			if n := lastRuneStart(raw); n >= 0 && utf8.Valid(raw[:n]) {
				raw, valid = raw[:n], true
			}
		}
		if valid {
			return string(raw), true
		}
		enc = charmap.Windows1252
	}
	b, err := enc.NewDecoder().Bytes(raw)
	if err != nil {
		return "", false
	}
	return string(b), true
}

// decodeBase64 decodes up to need bytes of a base64 payload, skipping
// white space (wrapped lines), in either alphabet, with or without padding;
// more is true when the payload goes on past what was decoded.
func decodeBase64(payload string, need int) (raw []byte, more, ok bool) {
	chars := (need/3 + 1) * 4
	clean := make([]byte, 0, min(len(payload), chars))
	i := 0
	for ; i < len(payload) && len(clean) < chars; i++ {
		switch c := payload[i]; c {
		case ' ', '\t', '\r', '\n':
		default:
			clean = append(clean, c)
		}
	}
	for ; i < len(payload); i++ { // anything but white space and padding left?
		if c := payload[i]; c != ' ' && c != '\t' && c != '\r' && c != '\n' && c != '=' {
			more = true
			break
		}
	}
	for len(clean) > 0 && clean[len(clean)-1] == '=' {
		clean = clean[:len(clean)-1]
	}
	enc := base64.RawStdEncoding
	for _, c := range clean {
		if c == '-' || c == '_' {
			enc = base64.RawURLEncoding
			break
		}
	}
	raw = make([]byte, enc.DecodedLen(len(clean)))
	n, err := enc.Decode(raw, clean)
	if err != nil {
		return nil, false, false
	}
	return raw[:n], more, true
}

// unescape percent-decodes up to need bytes of a payload (RFC 2397: the
// URL's own encoding); a '%' not followed by two hex digits stays as it is.
func unescape(payload string, need int) (raw []byte, more bool) {
	raw = make([]byte, 0, min(len(payload), need))
	i := 0
	for ; i < len(payload) && len(raw) < need; i++ {
		c := payload[i]
		if c == '%' && i+2 < len(payload) {
			if h, l := unhex(payload[i+1]), unhex(payload[i+2]); h >= 0 && l >= 0 {
				raw = append(raw, byte(h<<4|l))
				i += 2
				continue
			}
		}
		raw = append(raw, c)
	}
	return raw, i < len(payload)
}

func unhex(c byte) int {
	switch {
	case '0' <= c && c <= '9':
		return int(c - '0')
	case 'a' <= c && c <= 'f':
		return int(c-'a') + 10
	case 'A' <= c && c <= 'F':
		return int(c-'A') + 10
	}
	return -1
}

// lastRuneStart is the index of the last byte that may start a rune, -1
// when there is none in the last four bytes.
func lastRuneStart(b []byte) int {
	for i := len(b) - 1; i >= 0 && i >= len(b)-4; i-- {
		if utf8.RuneStart(b[i]) {
			return i
		}
	}
	return -1
}

func isText(t string) bool {
	switch t {
	case "application/json", "application/xml", "application/yaml", "application/x-yaml", "application/csv", "application/x-ndjson":
		return true
	}
	return strings.HasPrefix(t, "text/")
}
