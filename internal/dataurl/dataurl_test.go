package dataurl

import (
	"encoding/base64"
	"testing"
)

func TestText(t *testing.T) {
	csv := "name,iban\nAnna,DE89370400440532013000\n"
	b64 := base64.StdEncoding.EncodeToString([]byte(csv))
	for name, tc := range map[string]struct {
		in, want string
		ok       bool
	}{
		"base64 csv":       {"data:text/csv;base64," + b64, csv, true},
		"plain text":       {"data:text/plain,hello", "hello", true},
		"json":             {"data:application/json;base64," + base64.StdEncoding.EncodeToString([]byte(`{"a":1}`)), `{"a":1}`, true},
		"charset param":    {"data:text/plain;charset=utf-8;base64," + b64, csv, true},
		"unpadded":         {"data:text/plain;base64," + base64.RawStdEncoding.EncodeToString([]byte("hi!!")), "hi!!", true},
		"pdf":              {"data:application/pdf;base64,JVBERi0x", "", false},
		"image":            {"data:image/png;base64,iVBORw0KGgo=", "", false},
		"not a data url":   {"https://example.com/a.txt", "", false},
		"bad base64":       {"data:text/plain;base64,@@@", "", false},
		"not utf-8":        {"data:text/plain;base64," + base64.StdEncoding.EncodeToString([]byte{0xff, 0xfe, 'a'}), "", false},
		"cut to max bytes": {"data:text/plain;base64," + base64.StdEncoding.EncodeToString([]byte("abcdefghij")), "abcd", true},
	} {
		max := 1 << 20
		if name == "cut to max bytes" {
			max = 4
		}
		got, ok := Text(tc.in, max)
		if ok != tc.ok || got != tc.want {
			t.Errorf("%s: %q %v, want %q %v", name, got, ok, tc.want, tc.ok)
		}
	}
}

func FuzzText(f *testing.F) {
	f.Add("data:text/plain;base64,aGVsbG8=", 8)
	f.Fuzz(func(t *testing.T, s string, max int) {
		if max < 0 || max > 1<<16 {
			return
		}
		if out, ok := Text(s, max); ok && len(out) > max {
			t.Fatalf("%d bytes past max %d", len(out), max)
		}
	})
}
