package pii

import (
	"net/netip"
	"strings"
	"unicode"
	"unicode/utf8"
)

// Detectors for values that start at a word: IP addresses, email, IBAN and
// the national ids. Each returns the end of what it recorded, or 0.

// ipv4 matches a dotted quad of decimal octets 0-255 without leading zeros
// that is not part of a longer dotted number ("1.2.3.4.5").
func (d *detector) ipv4(i int) int {
	s := d.s
	if leftGlued(s, i) || i > 0 && s[i-1] == '.' {
		return 0
	}
	pos := ipv4End(s, i)
	if pos == 0 {
		return 0
	}
	// A port (":8080") or prefix length ("/24") may follow; a further dotted
	// part may not.
	if pos < len(s) && (isAlnum(s[pos]) || s[pos] == '_' || s[pos] == '@') || pos+1 < len(s) && (s[pos] == '.' || s[pos] == '-') && isAlnum(s[pos+1]) {
		return 0
	}
	if !noOnesAddress(s[i:pos]) && !numbersSection(s, i) {
		d.add(Match{TypeIPAddress, i, pos})
	}
	return pos
}

// sectionWords are the words after which four dotted numbers are a
// section of a document ("Section 8.1.2.2", "sec 5.1.1.5", "§ 4.1.2.7"),
// not an address.
var sectionWords = [...]string{"section", "sections", "sec", "sect", "chapter", "clause", "paragraph", "step", "version", "release", "figure", "table", "appendix", "\u00a7"}

// numbersSection reports whether the dotted quad at i follows one of
// sectionWords, across at most one space, tab or no-break space.
func numbersSection(s string, i int) bool {
	b := i
	switch {
	case b >= 2 && s[b-2] == 0xc2 && s[b-1] == 0xa0: // U+00A0
		b -= 2
	case b >= 1 && (s[b-1] == ' ' || s[b-1] == '\t'):
		b--
	}
	for _, w := range sectionWords {
		if k := b - len(w); k >= 0 && hasPrefixFold(s, k, w) && (k == 0 || !isAlnum(s[k-1])) {
			return true
		}
	}
	return false
}

// documentation are the address ranges set aside for examples (RFC 5737,
// RFC 3849).
var documentation = [...]netip.Prefix{
	netip.MustParsePrefix("192.0.2.0/24"),
	netip.MustParsePrefix("198.51.100.0/24"),
	netip.MustParsePrefix("203.0.113.0/24"),
	netip.MustParsePrefix("2001:db8::/32"),
}

// noOnesAddress reports whether the address v belongs to no one: loopback
// (127.0.0.1, ::1), unspecified (0.0.0.0), link-local (169.254.169.254,
// fe80::1), multicast, the broadcast address or a documentation range. They
// fill pasted configs, logs and code, and say nothing about a person, so
// they are not personal data; the scanner still consumes them, so their
// digits are not read as anything else.
func noOnesAddress(v string) bool {
	a, err := netip.ParseAddr(v)
	if err != nil {
		return false
	}
	a = a.Unmap()
	if a.IsLoopback() || a.IsUnspecified() || a.IsLinkLocalUnicast() || a.IsMulticast() ||
		a == netip.AddrFrom4([4]byte{255, 255, 255, 255}) {
		return true
	}
	for _, p := range documentation {
		if p.Contains(a) {
			return true
		}
	}
	return false
}

func isHex(c byte) bool { return class[c]&cAlnum != 0 && class[c]&cNonHex == 0 }

// ipv6 matches full and "::"-compressed IPv6 addresses, optionally ending in
// an embedded IPv4. A compressed form needs a digit and two groups (or a
// leading "::"), so "a::b" in code is not an address.
func (d *detector) ipv6(i int) int {
	s := d.s
	n := len(s)
	if i > 0 && (isAlnum(s[i-1]) || s[i-1] == ':' || s[i-1] == '.' || s[i-1] == '_') {
		return 0
	}
	pos := i
	groups := 0
	compressed := false
	digit := false
	if hasPrefixFold(s, pos, "::") {
		compressed = true
		pos += 2
	}
	for groups < 8 {
		q := pos
		for q < n && isHex(s[q]) && q-pos < 5 {
			if isDigit(s[q]) {
				digit = true
			}
			q++
		}
		l := q - pos
		if l == 0 {
			break
		}
		if q < n && s[q] == '.' && groups <= 6 {
			// Embedded IPv4 takes the last two groups.
			e := ipv4End(s, pos)
			if e == 0 {
				return 0
			}
			groups += 2
			pos = e
			break
		}
		if l > 4 {
			return 0
		}
		groups++
		pos = q
		if pos+1 < n && s[pos] == ':' && s[pos+1] == ':' {
			if compressed {
				return 0
			}
			compressed = true
			pos += 2
			continue
		}
		if pos+1 < n && s[pos] == ':' && isHex(s[pos+1]) {
			pos++
			continue
		}
		break
	}
	switch {
	case !compressed && groups != 8, compressed && groups > 7:
		return 0
	case compressed && (!digit || groups < 2 && !hasPrefixFold(s, i, "::")):
		return 0
	}
	if pos < n && (isAlnum(s[pos]) || s[pos] == ':' || s[pos] == '_') {
		return 0
	}
	if !noOnesAddress(s[i:pos]) {
		d.add(Match{TypeIPAddress, i, pos})
	}
	return pos
}

// ipv4End returns the end of a dotted quad at i, or 0.
func ipv4End(s string, i int) int {
	pos := i
	for k := 0; k < 4; k++ {
		if k > 0 {
			if pos >= len(s) || s[pos] != '.' {
				return 0
			}
			pos++
		}
		q := pos
		v := 0
		for q < len(s) && isDigit(s[q]) && q-pos < 4 {
			v = v*10 + int(s[q]-'0')
			q++
		}
		if l := q - pos; l == 0 || l > 3 || v > 255 || l > 1 && s[pos] == '0' {
			return 0
		}
		pos = q
	}
	return pos
}

func isLocalByte(c byte) bool {
	return isAlnum(c) || c >= 0x80 || c == '.' || c == '_' || c == '%' || c == '+' || c == '-'
}

// email matches local@domain.tld around the '@' at at: a local part of at
// most 64 bytes that does not start or end with a dot, two or more domain
// labels of letters, digits and inner hyphens, and an alphabetic top-level
// domain of two or more letters. Trailing punctuation is not part of it.
func (d *detector) email(at int) int { return d.emailAt(at, at+1) }

// emailAt is email around an at sign that ends before domain: '@', or a
// URL-encoded "%40" (a link's ?e=anna.schmidt%40example.com, which a
// routing-quality probe sent to a US model).
func (d *detector) emailAt(at, domain int) int {
	s := d.s
	n := len(s)
	b := localStart(s, at)
	for b < at && (s[b] == '.' || s[b] == '-' || s[b] == '+') {
		b++
	}
	if b == at || s[at-1] == '.' {
		return 0
	}
	pos := domain
	labels := 0
	tldStart, tldEnd := 0, 0
	for pos < n && pos-at <= 254 {
		q := pos
		for q < n && (isAlnum(s[q]) || s[q] == '-') {
			q++
		}
		if q == pos || q-pos > 63 || s[pos] == '-' || s[q-1] == '-' {
			break
		}
		labels++
		tldStart, tldEnd = pos, q
		if q+1 < n && s[q] == '.' && isAlnum(s[q+1]) {
			pos = q + 1
			continue
		}
		break
	}
	if labels < 2 || tldEnd-tldStart < 2 || tldEnd-domain > 253 {
		return 0
	}
	for k := tldStart; k < tldEnd; k++ {
		if !isLetter(s[k]) {
			return 0
		}
	}
	// Text in another script may follow with no space: "…@example.jpです",
	// „…@example.de“, "…@example.fr »" with a no-break space.
	if tldEnd < n && (isAlnum(s[tldEnd]) || s[tldEnd] == '-' || s[tldEnd] == '_' || s[tldEnd] == '@') {
		return 0
	}
	if serviceAccount(s[domain:tldEnd]) {
		return tldEnd
	}
	d.add(Match{TypeEmail, b, tldEnd})
	return tldEnd
}

// localStart is where the local part of an address whose at sign is at
// s[at] begins: at most 64 bytes of letters, digits and ._%+-, and of
// Latin, Greek and Cyrillic letters with their marks (an internationalised
// address; the domain is ASCII here). Text in scripts without spaces runs
// up to an address ("メールはtanaka@…", "请发到邮箱wang@…"): it is not part
// of it. at itself when the local part would be longer.
func localStart(s string, at int) int {
	b := at
	for b > 0 {
		size := 1
		if c := s[b-1]; c < utf8.RuneSelf {
			if !isLocalByte(c) {
				break
			}
		} else {
			var r rune
			r, size = utf8.DecodeLastRuneInString(s[:b])
			if !unicode.IsMark(r) && !unicode.In(r, unicode.Latin, unicode.Greek, unicode.Cyrillic) {
				break
			}
		}
		if at-b+size > 64 {
			return at
		}
		b -= size
	}
	return b
}

// serviceAccount says whether an address's domain is Google Cloud's for
// service accounts (…@project.iam.gserviceaccount.com, in every GCS signed
// URL's X-Goog-Credential): a machine's name, not a person's.
func serviceAccount(domain string) bool {
	const suffix = ".gserviceaccount.com"
	return len(domain) > len(suffix) && strings.EqualFold(domain[len(domain)-len(suffix):], suffix)
}

// iban matches an IBAN at the run s[i:j]: written as one run, or in groups
// of up to four separated by single spaces (any numSep space, a tab) or
// hyphens. The length must be the country's and the mod-97 check must
// hold.
func (d *detector) iban(i, j int) int {
	s := d.s
	if leftGlued(s, i) {
		return 0
	}
	want := ibanLength(s[i], s[i+1])
	if want == 0 {
		return 0
	}
	var v [34]byte
	l := j - i
	end := j
	switch {
	case l == want:
		copy(v[:], s[i:j])
	case l == 4:
		copy(v[:], s[i:j])
		for l < want && end < len(s) {
			c, w := numSep(s, end)
			if s[end] == '\t' {
				c, w = ' ', 1
			}
			if c != ' ' && c != '-' || end+w >= len(s) || !isAlnum(s[end+w]) {
				break
			}
			q := end + w
			for q < len(s) && isAlnum(s[q]) {
				q++
			}
			if q-end-w > 4 || l+q-end-w > want {
				break
			}
			copy(v[l:], s[end+w:q])
			l += q - end - w
			end = q
		}
		if l != want {
			return 0
		}
	default:
		return 0
	}
	if rightGlued(s, end) || !ibanValid(v[:l]) {
		return 0
	}
	d.add(Match{TypeIBAN, i, end})
	return end
}

// codiceFiscale matches a 16-character Italian fiscal code at s[i:j].
func (d *detector) codiceFiscale(i, j int) int {
	if leftGlued(d.s, i) || rightGlued(d.s, j) {
		return 0
	}
	var v [16]byte
	copy(v[:], d.s[i:j])
	if !cfValid(v[:]) {
		return 0
	}
	d.add(Match{TypeITCodiceFiscale, i, j})
	return j
}

// dniPlain matches a DNI written as one run, "12345678Z".
func (d *detector) dniPlain(i, j int) int {
	if leftGlued(d.s, i) || rightGlued(d.s, j) || !isLetter(d.s[j-1]) {
		return 0
	}
	var v [9]byte
	copy(v[:], d.s[i:j])
	if !dniValid(v[:]) {
		return 0
	}
	d.add(Match{TypeESDNI, i, j})
	return j
}

// dniSeparated matches "12345678-Z" and "12345678 Z" where s[i:j] holds the
// eight digits.
func (d *detector) dniSeparated(i, j int) int {
	s := d.s
	if j+2 > len(s) || !(s[j] == '-' || s[j] == ' ') || !isLetter(s[j+1]) || s[j] == ' ' && !isUpper(s[j+1]) {
		return 0
	}
	if leftGlued(s, i) || rightGlued(s, j+2) {
		return 0
	}
	var v [9]byte
	copy(v[:], s[i:j])
	v[8] = s[j+1]
	if !dniValid(v[:]) {
		return 0
	}
	d.add(Match{TypeESDNI, i, j + 2})
	return j + 2
}

// nie matches a Spanish foreigner number: X1234567L, X-1234567-L or
// X1234567-L (X, Y or Z first).
func (d *detector) nie(i int) int {
	s := d.s
	switch s[i] {
	case 'X', 'Y', 'Z':
	default:
		return 0
	}
	if leftGlued(s, i) {
		return 0
	}
	var v [9]byte
	v[0] = s[i]
	pos := i + 1
	if pos < len(s) && s[pos] == '-' {
		pos++
	}
	for k := 1; k < 8; k++ {
		if pos >= len(s) || !isDigit(s[pos]) {
			return 0
		}
		v[k] = s[pos]
		pos++
	}
	if pos+1 < len(s) && s[pos] == '-' {
		pos++
	}
	if pos >= len(s) || !isUpper(s[pos]) {
		return 0
	}
	v[8] = s[pos]
	pos++
	if rightGlued(s, pos) || !dniValid(v[:]) {
		return 0
	}
	d.add(Match{TypeESDNI, i, pos})
	return pos
}

// nino matches a UK National Insurance number: two prefix letters, six
// digits (together or as pairs separated by spaces) and a suffix A-D,
// "QQ123456C" or "QQ 12 34 56 C". Upper case only: there is no checksum, so
// the layout has to carry the evidence.
func (d *detector) nino(i int) int {
	s := d.s
	n := len(s)
	if i+9 > n || !ninoPrefix(s[i], s[i+1]) || leftGlued(s, i) {
		return 0
	}
	pos := i + 2
	spaced := s[pos] == ' '
	if spaced {
		pos++
	}
	for k := 0; k < 3; k++ {
		if k > 0 && spaced && pos < n && s[pos] == ' ' {
			pos++
		}
		if pos+2 > n || !isDigit(s[pos]) || !isDigit(s[pos+1]) {
			return 0
		}
		pos += 2
	}
	if pos < n && s[pos] == ' ' {
		pos++
	}
	if pos >= n || s[pos] < 'A' || s[pos] > 'D' {
		return 0
	}
	pos++
	if rightGlued(s, pos) {
		return 0
	}
	d.add(Match{TypeUKNINO, i, pos})
	return pos
}

// nirPlain matches a 15-character NIR with a Corsican department, written as
// one run ("2840520A12345xx"); all-digit runs go through number.
func (d *detector) nirPlain(i, j int) int {
	if leftGlued(d.s, i) || rightGlued(d.s, j) {
		return 0
	}
	var v [15]byte
	copy(v[:], d.s[i:j])
	if !nirValid(v[:]) {
		return 0
	}
	d.add(Match{TypeFRNIR, i, j})
	return j
}

// nirGrouped matches the printed NIR layout "1 84 12 76 451 089 46" (also
// with dots, and with 2A/2B for Corsica), starting at the one-digit run at i.
func (d *detector) nirGrouped(i int) int {
	s := d.s
	n := len(s)
	if i+21 > n || leftGlued(s, i) {
		return 0
	}
	sep, _ := numSep(s, i+1)
	if sep != ' ' && sep != '.' {
		return 0
	}
	var v [15]byte
	v[0] = s[i]
	pos := i + 1
	k := 1
	for _, l := range [...]int{2, 2, 2, 3, 3, 2} {
		if c, w := numSep(s, min(pos, n-1)); pos < n && w > 0 && c == sep {
			pos += w
		} else if l != 2 || k != 13 {
			return 0
		}
		for x := 0; x < l; x++ {
			if pos >= n {
				return 0
			}
			c := s[pos]
			if !isDigit(c) && !(k == 6 && (upper(c) == 'A' || upper(c) == 'B')) {
				return 0
			}
			v[k] = c
			k++
			pos++
		}
	}
	if rightGlued(s, pos) || !nirValid(v[:]) {
		return 0
	}
	d.add(Match{TypeFRNIR, i, pos})
	return pos
}
