package secrets

// Byte classes, as lookup tables so the scanning loops stay branch-light.
var (
	identByte  [256]bool // [A-Za-z0-9_.-]: the runs Detect looks at
	alnumByte  [256]bool // [A-Za-z0-9]
	b64urlByte [256]bool // [A-Za-z0-9_-]
	b64Byte    [256]bool // [A-Za-z0-9+/]
	pemByte    [256]bool // what a PEM body may contain, incl. JSON "\n" escapes
)

func init() {
	for c := 0; c < 256; c++ {
		b := byte(c)
		an := 'a' <= b && b <= 'z' || 'A' <= b && b <= 'Z' || '0' <= b && b <= '9'
		alnumByte[c] = an
		identByte[c] = an || b == '_' || b == '.' || b == '-'
		b64urlByte[c] = an || b == '_' || b == '-'
		b64Byte[c] = an || b == '+' || b == '/'
		pemByte[c] = an || b == '+' || b == '/' || b == '=' || b == ' ' || b == '\t' ||
			b == '\r' || b == '\n' || b == '\\' || b == ':' || b == ',' || b == '-'
	}
}

func hasPrefixAt(s string, i int, p string) bool {
	return len(s)-i >= len(p) && s[i:i+len(p)] == p
}

// runEnd returns the end of the run of tab bytes starting at i.
func runEnd(s string, i int, tab *[256]bool) int {
	for i < len(s) && tab[s[i]] {
		i++
	}
	return i
}

// runEndMax is runEnd that stops after max bytes, so callers that only
// accept short values never read far.
func runEndMax(s string, i int, tab *[256]bool, max int) int {
	lim := i + max
	if lim > len(s) {
		lim = len(s)
	}
	for i < lim && tab[s[i]] {
		i++
	}
	return i
}

func lower(c byte) byte {
	if 'A' <= c && c <= 'Z' {
		return c + 'a' - 'A'
	}
	return c
}

func equalFold(a, b string) bool {
	if len(a) != len(b) {
		return false
	}
	for k := 0; k < len(a); k++ {
		if lower(a[k]) != lower(b[k]) {
			return false
		}
	}
	return true
}

const (
	classLower = 1 << iota
	classUpper
	classDigit
	classOther
)

// classes returns the character classes present in v and the longest run
// of one repeated byte.
func classes(v string) (set, maxRun int) {
	run := 0
	for k := 0; k < len(v); k++ {
		c := v[k]
		switch {
		case 'a' <= c && c <= 'z':
			set |= classLower
		case 'A' <= c && c <= 'Z':
			set |= classUpper
		case '0' <= c && c <= '9':
			set |= classDigit
		default:
			set |= classOther
		}
		if k > 0 && v[k-1] == c {
			run++
		} else {
			run = 1
		}
		if run > maxRun {
			maxRun = run
		}
	}
	return set, maxRun
}

func popcount4(set int) int {
	return set&1 + set>>1&1 + set>>2&1 + set>>3&1
}

// random reports whether v plausibly is a generated token body: at least
// two character classes and no run of four equal bytes. It rejects
// placeholders such as "xxxxxxxx…" or "ghp_aaaa…" at the cost of one pass.
func random(v string) bool {
	set, run := classes(v)
	return popcount4(set) >= 2 && run < 4
}
