package spend

import "unicode/utf8"

// MaxLabel bounds an end user or a tag in the ledger, in bytes.
const MaxLabel = 128

// Label is what the ledger keeps of a value the client chose (Row.EndUser,
// Row.Tag): at most MaxLabel bytes, cut after the last whole character
// that fits, and "" for a value that is not UTF-8 or has a control
// character (C0, DEL, C1), which no report should print. It never
// allocates: the result is s or a prefix of it.
func Label(s string) string {
	if len(s) > MaxLabel {
		s = s[:MaxLabel]
		for i := 0; i < utf8.UTFMax && len(s) > 0; i++ {
			if r, n := utf8.DecodeLastRuneInString(s); r != utf8.RuneError || n > 1 {
				break
			}
			s = s[:len(s)-1]
		}
	}
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			if c < 0x20 || c == 0x7f {
				return ""
			}
			i++
			continue
		}
		r, n := utf8.DecodeRuneInString(s[i:])
		if (r == utf8.RuneError && n == 1) || (r >= 0x80 && r <= 0x9f) {
			return ""
		}
		i += n
	}
	return s
}
