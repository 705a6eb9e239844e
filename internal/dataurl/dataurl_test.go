package dataurl

import (
	"encoding/base64"
	"strings"
	"testing"
	"unicode/utf16"
	"unicode/utf8"
)

func TestText(t *testing.T) {
	csv := "name,iban\nAnna,DE89370400440532013000\n"
	b64 := base64.StdEncoding.EncodeToString([]byte(csv))
	latin1 := []byte("name;iban\nM\xfcller;DE89370400440532013000\n") // "Müller" in ISO-8859-1
	u16 := func(s string, bom bool, big bool) []byte {
		var b []byte
		units := utf16.Encode([]rune(s))
		if bom {
			units = append([]uint16{0xfeff}, units...)
		}
		for _, u := range units {
			if big {
				b = append(b, byte(u>>8), byte(u))
			} else {
				b = append(b, byte(u), byte(u>>8))
			}
		}
		return b
	}
	wrapped := base64.StdEncoding.EncodeToString([]byte(strings.Repeat(csv, 4)))
	var lines []string
	for len(wrapped) > 76 {
		lines, wrapped = append(lines, wrapped[:76]), wrapped[76:]
	}
	lines = append(lines, wrapped)
	u32 := func(s string, big, bom bool) []byte {
		var b []byte
		rs := []rune(s)
		if bom {
			rs = append([]rune{0xfeff}, rs...)
		}
		for _, r := range rs {
			if big {
				b = append(b, byte(r>>24), byte(r>>16), byte(r>>8), byte(r))
			} else {
				b = append(b, byte(r), byte(r>>8), byte(r>>16), byte(r>>24))
			}
		}
		return b
	}
	enc := base64.StdEncoding.EncodeToString
	for name, tc := range map[string]struct {
		in, want string
		st       Status
	}{
		// Labels as browsers know them, else unreadable (an attacker's
		// pass: each of these was read as UTF-8 or Latin-1 and its IBAN
		// missed, the scan complete).
		"whatwg unicode label":          {"data:text/csv;charset=unicode;base64," + enc(u16(csv, false, false)), csv, Read},
		"utf-16-be, no such label":      {"data:text/csv;charset=utf-16-be;base64," + enc(u16(csv, false, true)), "", Unreadable},
		"utf-32 by its mark":            {"data:text/csv;base64," + enc(u32(csv, false, true)), csv, Read},
		"utf-32be by its mark":          {"data:text/csv;base64," + enc(u32(csv, true, true)), csv, Read},
		"utf-32 label":                  {"data:text/csv;charset=utf-32;base64," + enc(u32(csv, false, false)), csv, Read},
		"shift_jis":                     {"data:text/plain;charset=shift_jis;base64," + enc([]byte{0x93, 0xfa, 0x96, 0x7b, '1', '2'}), "日本12", Read},
		"ebcdic":                        {"data:text/csv;charset=cp037;base64," + enc([]byte{0xc4, 0xc5, 0xf8, 0xf9}), "", Unreadable},
		"utf-7":                         {"data:text/plain;charset=utf-7,+AEQ-E89", "", Unreadable},
		"mostly NUL":                    {"data:text/csv;base64," + enc(u16(csv, false, false)), "", Unreadable},
		"utf-8 mark":                    {"data:text/plain;base64," + enc([]byte("\xef\xbb\xbfhello")), "hello", Read},
		"base64 csv":                    {"data:text/csv;base64," + b64, csv, Read},
		"plain text":                    {"data:text/plain,hello", "hello", Read},
		"scheme in capitals":            {"DATA:text/plain,hello", "hello", Read},
		"json":                          {"data:application/json;base64," + base64.StdEncoding.EncodeToString([]byte(`{"a":1}`)), `{"a":1}`, Read},
		"charset param":                 {"data:text/plain;charset=utf-8;base64," + b64, csv, Read},
		"unpadded":                      {"data:text/plain;base64," + base64.RawStdEncoding.EncodeToString([]byte("hi!!")), "hi!!", Read},
		"url alphabet":                  {"data:text/plain;base64," + base64.URLEncoding.EncodeToString([]byte("a>>?b~~")), "a>>?b~~", Read},
		"wrapped lines":                 {"data:text/csv;base64," + strings.Join(lines, "\r\n"), strings.Repeat(csv, 4), Read},
		"escaped padding":               {"data:text/plain;base64,aGk%3D", "hi", Read},
		"no media type":                 {"data:;base64," + b64, csv, Read},
		"no media type, only a charset": {"data:;charset=utf-8,hello", "hello", Read},
		"percent-encoded":               {"data:text/plain,anna.schmidt%40example.de%2C%20DE89%203704", "anna.schmidt@example.de, DE89 3704", Read},
		"a stray percent":               {"data:text/plain,100%25 and 5% more%", "100% and 5% more%", Read},
		"latin-1, declared":             {"data:text/csv;charset=iso-8859-1;base64," + base64.StdEncoding.EncodeToString(latin1), "name;iban\nMüller;DE89370400440532013000\n", Read},
		"latin-1, undeclared":           {"data:text/csv;base64," + base64.StdEncoding.EncodeToString(latin1), "name;iban\nMüller;DE89370400440532013000\n", Read},
		"windows-1252 euro":             {"data:text/plain;base64," + base64.StdEncoding.EncodeToString([]byte("12 \x80")), "12 €", Read},
		"utf-16le with bom":             {"data:text/csv;base64," + base64.StdEncoding.EncodeToString(u16(csv, true, false)), csv, Read},
		"utf-16be with bom":             {"data:text/csv;base64," + base64.StdEncoding.EncodeToString(u16(csv, true, true)), csv, Read},
		"utf-16le declared":             {"data:text/csv;charset=utf-16le;base64," + base64.StdEncoding.EncodeToString(u16(csv, false, false)), csv, Read},
		"utf-16be declared":             {"data:text/csv;charset=UTF-16BE;base64," + base64.StdEncoding.EncodeToString(u16(csv, false, true)), csv, Read},
		"pdf":                           {"data:application/pdf;base64,JVBERi0x", "", NotText},
		"image":                         {"data:image/png;base64,iVBORw0KGgo=", "", NotText},
		"not a data url":                {"https://example.com/a.txt", "", NotText},
		"bad base64":                    {"data:text/plain;base64,@@@", "", Unreadable},
		"base64 of one char":            {"data:text/plain;base64,QUJD" + "R", "", Unreadable},
		"no payload":                    {"data:text/plain;base64", "", Unreadable},
		"empty":                         {"data:text/plain,", "", Read},
	} {
		got, st := Text(tc.in, 1<<20)
		if st != tc.st || got != tc.want {
			t.Errorf("%s: %q %v, want %q %v", name, got, st, tc.want, tc.st)
		}
	}
}

// TestTextCut: a text longer than the limit is cut at it and says so,
// whatever the encoding, and never cut inside a rune.
func TestTextCut(t *testing.T) {
	text := strings.Repeat("Grüße, Anna: DE89 3704 0044 0532 0130 00\n", 40)
	for _, enc := range []func(string) string{
		func(s string) string { return "data:text/plain;base64," + base64.StdEncoding.EncodeToString([]byte(s)) },
		func(s string) string {
			e := base64.StdEncoding.EncodeToString([]byte(s))
			var b strings.Builder
			for len(e) > 76 {
				b.WriteString(e[:76] + "\n")
				e = e[76:]
			}
			return "data:text/plain;base64," + b.String() + e
		},
		func(s string) string { return "data:text/plain," + s },
		func(s string) string { return "data:text/plain," + strings.ReplaceAll(s, " ", "%20") },
	} {
		url := enc(text)
		for limit := 0; limit <= len(text)+8; limit++ {
			got, st := Text(url, limit)
			if limit < len(text) {
				if st != Cut || len(got) > limit || len(got) < limit-3 || !strings.HasPrefix(text, got) || !utf8.ValidString(got) {
					t.Fatalf("limit %d of %d: %q %v, want a cut prefix", limit, len(text), got, st)
				}
			} else if st != Read || got != text {
				t.Fatalf("limit %d of %d: %v, want the whole text", limit, len(text), st)
			}
		}
	}
}

func FuzzText(f *testing.F) {
	f.Add("data:text/plain;base64,aGVsbG8=", 8)
	f.Add("data:text/csv;charset=utf-16;base64,//5hAGIA", 3)
	f.Add("data:,a%41%4", 2)
	f.Fuzz(func(t *testing.T, s string, limit int) {
		if limit < 0 || limit > 1<<16 {
			return
		}
		out, st := Text(s, limit)
		if len(out) > limit {
			t.Fatalf("%d bytes past the limit %d", len(out), limit)
		}
		if !utf8.ValidString(out) {
			t.Fatalf("not UTF-8: %q", out)
		}
		if st != Read && st != Cut && out != "" {
			t.Fatalf("text %q with status %v", out, st)
		}
	})
}
