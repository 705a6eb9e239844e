package pii

// Digit clusters: runs of digit groups joined by single separators, with an
// optional leading '+' and one parenthesised area code. One parse serves
// every number type; the checksummed readings are tried before phone.

const (
	maxGroups = 8
	maxDigits = 20
)

type numParse struct {
	start, end int // span of the groups
	nd, ng     int // digits, groups
	lens       [maxGroups]uint8
	seps       [maxGroups]byte // separator before group k (seps[0] unused; 0 after ')')
	paren      int             // index of the parenthesised group, -1 if none
	plus       bool
	dig        [maxDigits]byte
	extEnd     int // end of an extension ("x1234", "ext. 12"), 0 if none
}

// numSep reads a separator between digit groups at s[i]: ' ', '-', '.'
// and '/' as they are, and the Unicode spaces and hyphens formatting puts
// between groups — a no-break or narrow no-break space (French and German
// numbers, bank statements), a thin or figure space, a non-breaking hyphen,
// an en dash or a minus sign — as ' ' and '-'. It returns the separator and
// its width in bytes; width 0 when none starts at i.
func numSep(s string, i int) (sep byte, width int) {
	switch c := s[i]; c {
	case ' ', '-', '.', '/':
		return c, 1
	case 0xC2: // U+00A0
		if i+1 < len(s) && s[i+1] == 0xA0 {
			return ' ', 2
		}
	case 0xE2:
		if i+2 >= len(s) {
			break
		}
		switch b := s[i+2]; {
		case s[i+1] == 0x80 && (0x80 <= b && b <= 0x8A || b == 0xAF): // U+2000–U+200A, U+202F (not E2 80 and an ASCII byte: not UTF-8)
			return ' ', 3
		case s[i+1] == 0x80 && 0x90 <= b && b <= 0x93, s[i+1] == 0x88 && b == 0x92: // U+2010–U+2013, U+2212
			return '-', 3
		}
	}
	return 0, 0
}

// group returns the value of group k (at most 9 digits are meaningful).
func (p *numParse) group(k int) int {
	off := 0
	for g := 0; g < k; g++ {
		off += int(p.lens[g])
	}
	v := 0
	for _, c := range p.dig[off : off+int(p.lens[k])] {
		v = v*10 + int(c-'0')
	}
	return v
}

func (p *numParse) shape(lens ...uint8) bool {
	if p.ng != len(lens) {
		return false
	}
	for k, l := range lens {
		if p.lens[k] != l {
			return false
		}
	}
	return true
}

// sameSep reports whether every separator is c.
func (p *numParse) sameSep(c byte) bool {
	for k := 1; k < p.ng; k++ {
		if p.seps[k] != c {
			return false
		}
	}
	return true
}

// number parses the digit cluster starting at i ('+', '(' or a digit) and
// records the best reading. It returns the end of the match, or 0.
func (d *detector) number(i int) int {
	if i < d.numEnd {
		return 0
	}
	s := d.s
	n := len(s)
	if isDigit(s[i]) {
		// Fast exit for the common short figure ("12", "2024", "340"):
		// every number type needs six digits or more.
		q := i + 1
		for q < n && isDigit(s[q]) && q-i < 6 {
			q++
		}
		if q-i < 6 {
			w := 0
			if q < n {
				_, w = numSep(s, q)
			}
			if w == 0 || q+w >= n || !isDigit(s[q+w]) && s[q+w] != '(' {
				return 0
			}
		}
	}
	p := numParse{start: i, paren: -1}
	pos := i
	if s[pos] == '+' {
		p.plus = true
		pos++
	}
	var sep byte
	for {
		start := pos
		l := 0
		paren := false
		if s[pos] == '(' {
			q := pos + 1
			for q < n && isDigit(s[q]) && q-pos <= 5 {
				q++
			}
			// An area code opens the number, or follows a country code
			// ("+31(0)20") or a trunk prefix ("8 (812) 123-45-67"), and
			// digits follow it: a number does not end in one.
			if q == pos+1 || q >= n || s[q] != ')' || !(p.ng == 0 || p.ng == 1 && (p.plus || p.lens[0] <= 2)) || !digitsFollow(s, q+1) {
				break
			}
			start, l, paren, pos = pos+1, q-pos-1, true, q+1
		} else {
			q := pos
			for q < n && isDigit(s[q]) {
				q++
			}
			start, l, pos = pos, q-pos, q
		}
		if p.ng == maxGroups || p.nd+l > maxDigits {
			d.numEnd = skipNumber(s, pos)
			return 0
		}
		if paren {
			p.paren = p.ng
		}
		p.lens[p.ng] = uint8(l)
		p.seps[p.ng] = sep
		p.ng++
		copy(p.dig[p.nd:], s[start:start+l])
		p.nd += l
		p.end = pos
		if pos < n {
			if c, w := numSep(s, pos); w > 0 && pos+w < n && (isDigit(s[pos+w]) || s[pos+w] == '(') {
				sep = c
				pos += w
				continue
			}
		}
		if pos < n && (paren && isDigit(s[pos]) || p.plus && p.ng == 1 && s[pos] == '(') {
			sep = 0
			continue
		}
		break
	}
	if p.ng == 0 {
		return 0
	}
	d.numEnd = p.end
	p.extEnd = extension(s, p.end)
	if s[i] != '+' && s[i] != '(' && leftGlued(s, i) {
		return 0
	}
	if !p.plus && p.paren < 0 && !rightGlued(s, p.end) {
		t, ok := d.numberID(&p)
		if ok {
			d.add(Match{t, p.start, p.end})
			return p.end
		}
		if t != "" {
			// The layout of an id that failed its check: not a phone either.
			return 0
		}
	}
	if e := d.phone(&p); e > 0 {
		d.add(Match{TypePhone, p.start, e})
		return e
	}
	return 0
}

// digitsFollow reports whether a digit, or a separator and a digit, is at k.
func digitsFollow(s string, k int) bool {
	if k >= len(s) {
		return false
	}
	if isDigit(s[k]) {
		return true
	}
	_, w := numSep(s, k)
	return w > 0 && k+w < len(s) && isDigit(s[k+w])
}

// skipNumber returns the end of the digits-and-separators run at i, so an
// over-long number is skipped in one step.
func skipNumber(s string, i int) int {
	for i < len(s) {
		if isDigit(s[i]) || s[i] == '(' || s[i] == ')' {
			i++
		} else if _, w := numSep(s, i); w > 0 {
			i += w
		} else {
			break
		}
	}
	return i
}

// extension parses " x1234", "x1234", " ext. 1234" at e and returns its end.
func extension(s string, e int) int {
	k := e
	if k < len(s) && s[k] == ' ' {
		k++
	}
	switch {
	case k < len(s) && (s[k] == 'x' || s[k] == 'X'):
		k++
	case hasPrefixFold(s, k, "ext"):
		k += 3
		if k < len(s) && s[k] == '.' {
			k++
		}
		if k < len(s) && s[k] == ' ' {
			k++
		}
	default:
		return 0
	}
	q := k
	for q < len(s) && isDigit(s[q]) && q-k < 7 {
		q++
	}
	if q == k || q-k > 6 || rightGlued(s, q) {
		return 0
	}
	return q
}

// numberID reads p as a checksummed or rule-checked number. A non-empty
// type with ok false means the layout claims that type but the value fails
// its check.
func (d *detector) numberID(p *numParse) (string, bool) {
	dig := p.dig[:p.nd]
	switch p.nd {
	case 9:
		if p.shape(3, 2, 4) && p.sameSep('-') {
			return TypeUSSSN, ssnValid(dig)
		}
		if (p.shape(3, 2, 4) && p.sameSep(' ') || p.ng == 1 && d.cue(p.start, p.end, ssnCue)) && ssnValid(dig) && !d.addressNear(p.start, p.end) {
			return TypeUSSSN, true
		}
		// A Dutch BSN passes the 11-proof, as one nine-digit number in
		// eleven does: named ("BSN", "burgerservicenummer") beside it.
		if (p.ng == 1 || p.shape(4, 2, 3) && p.sameSep('.')) && d.cue(p.start, p.end, bsnCue) && bsnValid(dig) {
			return TypeNLBSN, true
		}
	case 11:
		if p.ng == 1 || p.shape(2, 3, 3, 3) && p.sameSep(' ') {
			if deTaxIDValid(dig) {
				return TypeDETaxID, true
			}
		}
		// A PESEL's check digit passes for one number in ten: named, and
		// its first six digits a birth date.
		if p.ng == 1 && d.cue(p.start, p.end, peselCue) && peselValid(dig) {
			return TypePLPESEL, true
		}
	case 15:
		if (p.ng == 1 || p.shape(1, 2, 2, 2, 3, 3, 2) && (p.sameSep(' ') || p.sameSep('.'))) && nirValid(dig) {
			return TypeFRNIR, true
		}
	}
	// A bare 13-digit run that passes the GTIN check is a product barcode
	// (EAN-13; German ones start with 40-44, like a 13-digit Visa).
	if p.nd >= 13 && p.nd <= 19 && cardGrouping(p) && cardIIN(dig) && luhn(dig) && !(p.nd == 13 && p.ng == 1 && gtinValid(dig)) {
		return TypeCreditCard, true
	}
	return "", false
}

// cardGrouping accepts a plain number, groups of four (the last may be
// shorter), and the Amex/Diners 4-6-5 and 4-6-4 layouts.
func cardGrouping(p *numParse) bool {
	if p.ng == 1 {
		return true
	}
	if p.sameSep('.') { // 4532.0151.1283.0366, as some statements print it (a routing-quality probe)
		return p.shape(4, 4, 4, 4)
	}
	if !p.sameSep(' ') && !p.sameSep('-') {
		return false
	}
	if p.shape(4, 6, 5) || p.shape(4, 6, 4) {
		return true
	}
	for k := 0; k < p.ng-1; k++ {
		if p.lens[k] != 4 {
			return false
		}
	}
	return true
}

// phone decides whether p is a phone number and returns its end (including
// an extension), or 0.
//
// Strong shapes need no context: a '+' or 00 international prefix, an area
// code in parentheses, an extension, or at least eight digits in two or more
// groups. Weak shapes (six or seven digits, an unbroken run, groups that look
// like a thousands-separated amount or a list of small numbers) need a phone
// word nearby ("call", "tel", "fax", "mobile", "office", ...). Dates, times,
// year ranges, version strings, dotted quads and amounts next to a currency
// are never phones.
func (d *detector) phone(p *numParse) int {
	end := p.end
	if p.extEnd > 0 {
		end = p.extEnd
	}
	if rightGlued(d.s, end) || p.start > 0 && d.s[p.start-1] == '#' {
		return 0
	}
	nd := p.nd
	// "00" opens an international number when it comes with the country
	// code ("0049 30 …", "001-748-…") or alone in one run, not at the start
	// of a longer group ("00112233 44556677" is a hex dump).
	intl := p.plus || nd >= 10 && p.dig[0] == '0' && p.dig[1] == '0' && (p.ng == 1 || p.lens[0] <= 5)
	switch {
	case p.plus && (nd < 7 || nd > 15):
		return 0
	case intl && nd > 17:
		return 0
	case !intl && (nd < 6 || nd > 12):
		return 0
	case p.plus && p.dig[0] == '0':
		return 0 // no country code starts with 0: "+0000 2010", "+0.000000000"
	case p.ng == 2 && p.seps[1] == '.' && p.paren < 0:
		return 0 // a decimal, signed or not: "25565.855387", "+3.140000"
	case digitsUpTo(p.dig[:nd], '0'):
		return 0 // a hex dump's "00 00 00 00", a zero-padded counter
	case nd >= 8 && digitsUpTo(p.dig[:nd], '1'):
		return 0 // bits: "0x80 // 1000 0000"
	case d.utcOffset(p.start):
		return 0 // "15:04:05 -0700 2006"
	}
	// Separators: a date's '/' only after a leading-zero area code
	// ("030/1234567"), at most two kinds in one number.
	var kinds [2]byte
	for k := 1; k < p.ng; k++ {
		c := p.seps[k]
		if c == 0 {
			continue
		}
		if c == '/' && (k != 1 || p.dig[0] != '0' || p.plus) {
			return 0
		}
		switch {
		case kinds[0] == 0 || kinds[0] == c:
			kinds[0] = c
		case kinds[1] == 0 || kinds[1] == c:
			kinds[1] = c
		default:
			return 0
		}
	}
	// A one-digit group is a trunk or country code, never later: "1 2 3 4"
	// is a list. Next to a dot it is a version or decimal: "10.0.19041.1",
	// "3.14159".
	// An international number ("+33.1.23.45.67.89", "0033 6 12 34 56 78")
	// is neither: after the country code a one-digit area code is common.
	for k := 1; k < p.ng; k++ {
		if p.lens[k] == 1 && !(intl && k == 1) && p.paren != k && p.paren != k-1 {
			return 0
		}
		if p.seps[k] == '.' && !intl && (p.lens[k] == 1 || p.lens[k-1] == 1) {
			return 0
		}
	}
	if d.priceNear(p.start, p.end) {
		return 0
	}
	if intl {
		if p.plus || p.ng >= 2 {
			return end
		}
	}
	if p.paren < 0 && p.extEnd == 0 && d.addressNear(p.start, p.end) {
		return 0
	}
	// An identifier, not a phone: "INV-2024-123456", "order no. 4411-2233-9981",
	// "Rechnung Nr. 2024-123456", a US ZIP+4 code "94105-1234".
	if d.idBefore(p.start) || p.shape(5, 4) && p.seps[1] == '-' && p.dig[0] != '0' && !d.cue(p.start, end, phoneCue) {
		return 0
	}
	if p.dateLike() || p.ng == 4 && p.sameSep('.') && p.lens[0] <= 3 && p.lens[1] <= 3 && p.lens[2] <= 3 && p.lens[3] <= 3 {
		return 0
	}
	if p.ng == 2 && p.lens[0] == 4 && p.lens[1] == 4 && isYear(p.group(0)) && isYear(p.group(1)) {
		return 0
	}
	// A range, "bytes 1000-2000", "1970-2369", unless a phone word is near:
	// two dashed groups, the first no longer and smaller than the second.
	if p.ng == 2 && p.seps[1] == '-' && p.dig[0] != '0' && p.lens[0] <= p.lens[1] && p.lens[1] <= 9 &&
		p.group(0) < p.group(1) && !d.cue(p.start, end, phoneCue) {
		return 0
	}
	strong := false
	switch {
	case p.extEnd > 0:
		strong = nd >= 7
	case p.paren == 0:
		strong = nd >= 8
	case p.ng >= 2 && nd >= 8:
		strong = !p.thousands() && !p.thousandsRange() && !p.smallPairs()
	}
	if !strong {
		if p.ng == 1 && nd < 7 || !d.cue(p.start, end, phoneCue) {
			return 0
		}
	}
	return end
}

func isYear(v int) bool { return v >= 1900 && v <= 2099 }

// digitsUpTo reports whether every digit in b is at most hi: all zeros
// ('0'), or bits ('1').
func digitsUpTo(b []byte, hi byte) bool {
	for _, c := range b {
		if c > hi {
			return false
		}
	}
	return true
}

// utcOffset reports whether the number at i is a time's UTC offset: a time
// ("15:04:05", "21:00:57.012"), a space, then '+' or '-' and the number.
func (d *detector) utcOffset(i int) bool {
	s := d.s
	b := i
	if s[b] != '+' {
		if b == 0 || s[b-1] != '-' && s[b-1] != '+' {
			return false
		}
		b--
	}
	if b < 6 || s[b-1] != ' ' {
		return false
	}
	k := b - 1
	for k > 0 && b-1-k < 16 && (isDigit(s[k-1]) || s[k-1] == '.') {
		k--
	}
	return k < b-1 && k >= 3 && s[k-1] == ':' && isDigit(s[k-2]) && isDigit(s[k-3])
}

// dateLike reports whether the first three groups read as a date:
// 2024-03-17, 17.03.2024, 3/17/2024.
func (p *numParse) dateLike() bool {
	if p.ng < 3 || p.seps[1] != p.seps[2] || p.paren >= 0 || p.plus {
		return false
	}
	a, b, c := p.group(0), p.group(1), p.group(2)
	l0, l1, l2 := p.lens[0], p.lens[1], p.lens[2]
	switch {
	case l0 == 4 && l1 == 2 && l2 == 2 && p.seps[1] == '-':
		return b >= 1 && b <= 12 && c >= 1 && c <= 31 // ISO 8601, any year: "0001-01-01", "2107-12-31"
	case l0 == 4 && l1 <= 2 && l2 <= 2:
		return isYear(a) && b >= 1 && b <= 12 && c >= 1 && c <= 31
	case l0 <= 2 && l1 <= 2 && l2 == 4:
		return isYear(c) && a >= 1 && b >= 1 && (a <= 12 && b <= 31 || a <= 31 && b <= 12)
	}
	return false
}

// thousands reports an amount layout: 1-3 digits, then groups of three.
func (p *numParse) thousands() bool {
	if p.lens[0] > 3 || !(p.sameSep(' ') || p.sameSep('.')) {
		return false
	}
	for k := 1; k < p.ng; k++ {
		if p.lens[k] != 3 {
			return false
		}
	}
	return true
}

// thousandsRange reports a range of two amounts ("250 000–300 000",
// "1.200.000-1.500.000"): two thousands layouts joined by one dash, each of
// at least two groups and neither starting with 0 (a trunk prefix).
func (p *numParse) thousandsRange() bool {
	dash := 0
	for k := 1; k < p.ng; k++ {
		if p.seps[k] == '-' {
			if dash != 0 {
				return false
			}
			dash = k
		}
	}
	if dash < 2 || p.ng-dash < 2 {
		return false
	}
	sep := p.seps[1]
	if sep != ' ' && sep != '.' {
		return false
	}
	off := 0
	for k := 0; k < p.ng; k++ {
		first := k == 0 || k == dash
		switch {
		case k > 0 && k != dash && p.seps[k] != sep:
			return false
		case first && (p.lens[k] > 3 || p.dig[off] == '0'):
			return false
		case !first && p.lens[k] != 3:
			return false
		}
		off += int(p.lens[k])
	}
	return true
}

// smallPairs reports a list of two-digit numbers ("12 15 18 20", "10 11 12
// 13 14") rather than a national number written in pairs, which starts with
// a 0 trunk prefix ("06 12 34 56 78") or, without one, has at most 8 digits
// and is then only read as a phone next to a phone word.
func (p *numParse) smallPairs() bool {
	if p.dig[0] == '0' {
		return false
	}
	for k := 0; k < p.ng; k++ {
		if p.lens[k] != 2 {
			return false
		}
	}
	return true
}

// priceNear reports a currency sign or code right before or after [i, e).
func (d *detector) priceNear(i, e int) bool {
	s := d.s
	b := i
	if b > 0 && s[b-1] == ' ' {
		b--
	}
	for _, w := range [...]string{"$", "\u20ac", "\u00a3", "\u00a5", "eur", "usd", "gbp", "chf"} {
		if b >= len(w) && hasPrefixFold(s, b-len(w), w) && (len(w) < 3 || b == len(w) || !isLetter(s[b-len(w)-1])) {
			return true
		}
	}
	if e < len(s) && s[e] == ' ' {
		e++
	}
	for _, w := range [...]string{"$", "%", "\u20ac", "\u00a3", "\u00a5", "eur", "usd", "gbp", "chf", "dollar", "pound"} {
		if hasPrefixFold(s, e, w) {
			return true
		}
	}
	return false
}

// addressNear reports a house or flat number: the word before is "Apt",
// "Suite", "Unit", ... or one of the two words after is a street type
// ("12 3456 Oak Lane").
func (d *detector) addressNear(i, e int) bool {
	s := d.s
	k := i
	for k > 0 && (s[k-1] == ' ' || s[k-1] == '.' || s[k-1] == '#') && i-k < 3 {
		k--
	}
	if k < i {
		j := k
		for j > 0 && isLetter(s[j-1]) && k-j < 12 {
			j--
		}
		if j < k && (j == 0 || !isLetter(s[j-1])) && isWord(s[j:k], unitWords) {
			return true
		}
	}
	for w := 0; w < 2; w++ {
		if e >= len(s) || s[e] != ' ' {
			return false
		}
		e++
		j := e
		for j < len(s) && isLetter(s[j]) && j-e < 12 {
			j++
		}
		if j == e || j < len(s) && isLetter(s[j]) {
			return false
		}
		if isWord(s[e:j], streetWords) {
			return true
		}
		e = j
	}
	return false
}

var (
	unitWords   = []string{"apt", "apartment", "suite", "ste", "unit", "flat", "room", "floor", "building", "bldg", "no", "nr"}
	streetWords = []string{
		"street", "st", "lane", "ln", "road", "rd", "avenue", "ave", "drive", "dr", "boulevard", "blvd",
		"parkway", "pkwy", "court", "ct", "place", "pl", "square", "sq", "terrace", "way", "highway", "hwy",
		"strasse", "weg", "platz", "rue", "avenida", "calle", "via", "viale", "piazza",
	}
)

// isWord reports whether w equals one of words, ignoring ASCII case.
func isWord(w string, words []string) bool {
	for _, x := range words {
		if len(x) == len(w) && hasPrefixFold(w, 0, x) {
			return true
		}
	}
	return false
}

// idBefore reports a number that names a document or a thing rather than a
// line: glued to a letter prefix by a dash ("INV-2024-…"), or right after an
// identifier word ("invoice 2024-…", "order no. …", "Rechnung Nr. …", "ZIP …").
func (d *detector) idBefore(i int) bool {
	s := d.s
	if i >= 2 && s[i-1] == '-' && isLetter(s[i-2]) {
		return true
	}
	for w := 0; w < 2; w++ {
		for i > 0 && (s[i-1] == ' ' || s[i-1] == ':' || s[i-1] == '#' || s[i-1] == '.') {
			i--
		}
		j := i
		for j > 0 && isLetter(s[j-1]) && i-j < 16 {
			j--
		}
		if j == i || j > 0 && isLetter(s[j-1]) {
			return false
		}
		if isWord(s[j:i], idCue) {
			return true
		}
		if !isWord(s[j:i], numberWords) {
			return false
		}
		i = j
	}
	return false
}

// Context words, lowercase ASCII, matched as whole words near a weak number.
var (
	phoneCue = []string{
		"phone", "phones", "telephone", "tel", "telefon", "telefono", "fax", "mobile", "mob",
		"cell", "cellphone", "handy", "call", "calling", "dial", "reach", "ring", "contact",
		"office", "hotline", "helpline", "sms", "whatsapp", "answering",
	}
	ssnCue = []string{"ssn", "ssns", "social", "security", "ss"}
	// bsnCue and peselCue name a Dutch BSN and a Polish PESEL.
	bsnCue   = []string{"bsn", "burgerservicenummer", "sofinummer", "sofi"}
	peselCue = []string{"pesel"}
	// idCue words name the number after them as an identifier.
	idCue = []string{
		"order", "invoice", "inv", "receipt", "ref", "reference", "ticket", "case", "tracking", "parcel",
		"shipment", "sku", "ean", "gtin", "isbn", "zip", "plz", "postcode", "membership", "voucher",
		"rechnung", "bestellung", "bestellnummer", "sendungsnummer", "kundennummer", "commande", "facture",
		"pedido", "factura", "ordine", "fattura",
	}
	// numberWords may stand between an identifier word and its number.
	numberWords = []string{"no", "nr", "number", "num", "id", "code"}
)

// Context window sizes in bytes.
const (
	cueBefore = 40
	cueAfter  = 16
)

// cue reports whether one of words occurs as a whole word within the
// context window around [i, e). It is only asked for weak candidates and
// reads a bounded window, so it keeps the scan linear.
func (d *detector) cue(i, e int, words []string) bool {
	s := d.s
	lo := max(0, i-cueBefore)
	hi := min(len(s), e+cueAfter)
	return cueIn(s, lo, i, words) || cueIn(s, e, hi, words)
}

func cueIn(s string, lo, hi int, words []string) bool {
	for k := lo; k < hi; {
		if !isLetter(s[k]) {
			k++
			continue
		}
		j := k
		for j < hi && isLetter(s[j]) {
			j++
		}
		// Whole words only: a word cut by the window edge does not count.
		if (k > 0 && isLetter(s[k-1])) || (j < len(s) && isLetter(s[j])) {
			k = j
			continue
		}
		for _, w := range words {
			if len(w) == j-k && hasPrefixFold(s, k, w) {
				return true
			}
		}
		k = j
	}
	return false
}
