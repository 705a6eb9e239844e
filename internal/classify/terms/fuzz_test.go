package terms

import (
	"strings"
	"testing"
	"unicode/utf8"
)

// naive counts a list's terms the slow, obvious way: every occurrence of
// every folded term in the folded text, at word borders.
func naive(lists []List, text string) []int {
	f := []byte(Fold(text))
	out := make([]int, len(lists))
	for i, l := range lists {
		seen := map[string]bool{}
		for _, t := range l.Terms {
			ft := strings.TrimSpace(Fold(t))
			if ft == "" || seen[ft] {
				continue
			}
			seen[ft] = true
			for at := 0; at+len(ft) <= len(f); at++ {
				if string(f[at:at+len(ft)]) != ft {
					continue
				}
				if isWordAt([]byte(ft), false) && isWordAt(f[:at], true) {
					continue
				}
				if isWordAt([]byte(ft), true) && isWordAt(f[at+len(ft):], false) {
					continue
				}
				out[i]++
			}
		}
	}
	return out
}

// FuzzCount: request text is untrusted. The matcher never panics, and it
// counts what the naive search counts, for terms that overlap each other
// (prefixes, suffixes, repeats) and arbitrary bytes, invalid UTF-8 included.
func FuzzCount(f *testing.F) {
	for _, s := range []string{"", "project zephyr", "PROJECT  ZÉPHYR zephyrzephyr", "aaaa aa a", "\xff\xfezephyr\x80", "abab ab b", "straße ß"} {
		f.Add(s, "zephyr")
	}
	f.Fuzz(func(t *testing.T, text, term string) {
		lists := []List{
			{Name: "a", Terms: []string{"project zephyr", "zephyr", "a", "aa", "ab", "b ab", "ss"}},
			{Name: "b", Terms: []string{term, "é"}},
		}
		m, err := New(lists)
		if err != nil {
			if strings.TrimSpace(Fold(term)) == "" || len(Fold(term)) > MaxTermBytes {
				return // refused at New, as it should be
			}
			t.Fatalf("New: %v", err)
		}
		// The text as sent, and long enough to be scanned in two halves.
		for _, text := range []string{text, strings.Repeat(text+" zephyr ", 1+2000/(len(text)+8))} {
			got := make([]int, 2)
			m.Count(text, got)
			want := naive(lists, text)
			if got[0] != want[0] || got[1] != want[1] {
				t.Fatalf("text %q term %q: got %v, naive %v", text, term, got, want)
			}
		}
	})
}

// refFold is Fold written the obvious way, rune by rune.
func refFold(prefix, s string) string {
	var b strings.Builder
	b.WriteString(prefix)
	space := strings.HasSuffix(prefix, " ")
	for _, r := range s {
		var f string
		if r < utf8.RuneSelf {
			f = string(rune(asciiFold[r]))
			if asciiFold[r] == 0 {
				f = " "
			}
		} else {
			f = foldRune(r)
		}
		switch {
		case f == "":
		case f == " ":
			if !space {
				b.WriteByte(' ')
			}
			space = true
		default:
			b.WriteString(f)
			space = false
		}
	}
	return b.String()
}

// FuzzFold: the in-place fold writes what the rune-by-rune one does, for
// any text (invalid UTF-8, folds longer than their rune) after any prefix.
func FuzzFold(f *testing.F) {
	for _, s := range []string{"", "Project  ZÉPHYR", "\xff\xfe a", "ẞẞẞ ǄȺȾ", "  \t\n x", "straße"} {
		f.Add("", s)
		f.Add("ab ", s)
	}
	f.Fuzz(func(t *testing.T, prefix, s string) {
		buf := make([]byte, len(prefix), len(prefix)+1) // little room: the growth path is taken
		copy(buf, prefix)
		if got, want := string(appendFold(buf, s)), refFold(prefix, s); got != want {
			t.Fatalf("prefix %q text %q: got %q, want %q", prefix, s, got, want)
		}
	})
}
