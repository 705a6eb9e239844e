// Package pii finds personal data in request text and returns typed byte
// spans, so the caller can count, report and redact them before any model sees
// the text.
//
// Detection is one hand-written byte scan with cheap triggers: '@' for email,
// digit runs for numbers, letter runs mixed with digits for national ids, ':'
// for IPv6. Everything that has a checksum is validated with it. The scan is
// linear in the input and does not allocate when dst has capacity, because it
// runs on every request.
//
// Values never leave the package in any form other than the spans.
package pii

// Match is one finding: Type is a snake_case type name, [Start, End) are byte offsets into the text.
type Match struct {
	Type  string
	Start int
	End   int
}

// Type names. They are part of the API: reports, metrics and policies key on
// them, so they do not change once released.
const (
	TypeEmail           = "email"             // local@domain.tld
	TypePhone           = "phone"             // international and national phone numbers
	TypeIBAN            = "iban"              // ISO 13616, mod-97 validated
	TypeCreditCard      = "credit_card"       // payment card number, Luhn and IIN validated
	TypeIPAddress       = "ip_address"        // IPv4 and IPv6
	TypeUSSSN           = "us_ssn"            // US social security number
	TypeITCodiceFiscale = "it_codice_fiscale" // Italian fiscal code, check character validated
	TypeESDNI           = "es_dni"            // Spanish DNI and NIE, mod-23 letter validated
	TypeFRNIR           = "fr_nir"            // French social security number, mod-97 key validated
	TypeDETaxID         = "de_tax_id"         // German Steuer-IdNr, ISO 7064 mod 11,10 validated
	TypeUKNINO          = "uk_nino"           // UK National Insurance number
	TypeNLBSN           = "nl_bsn"            // Dutch citizen service number (BSN), 11-proof validated, named
	TypePLPESEL         = "pl_pesel"          // Polish PESEL, check digit and birth date validated, named
)

// Types lists every type Detect can report, in a stable order.
var Types = []string{
	TypeEmail,
	TypePhone,
	TypeIBAN,
	TypeCreditCard,
	TypeIPAddress,
	TypeUSSSN,
	TypeITCodiceFiscale,
	TypeESDNI,
	TypeFRNIR,
	TypeDETaxID,
	TypeUKNINO,
	TypeNLBSN,
	TypePLPESEL,
}

// rank orders types when two findings overlap: a checksum-validated finding
// beats a structural one, which beats a phone number (the weakest evidence).
func rank(t string) int {
	switch t {
	case TypeIBAN, TypeCreditCard, TypeITCodiceFiscale, TypeESDNI, TypeFRNIR, TypeDETaxID, TypeNLBSN, TypePLPESEL:
		return 4
	case TypeEmail, TypeIPAddress:
		return 3
	case TypeUSSSN, TypeUKNINO:
		return 2
	}
	return 1
}

// Byte classes.
const (
	cDigit  = 1 << iota // 0-9
	cUpper              // A-Z
	cLower              // a-z
	cNonHex             // letters outside a-f/A-F

	cAlnum = cDigit | cUpper | cLower
)

var class = func() (t [256]uint8) {
	for c := '0'; c <= '9'; c++ {
		t[c] = cDigit
	}
	for c := 'A'; c <= 'Z'; c++ {
		t[c] = cUpper
		t[c+'a'-'A'] = cLower
		if c > 'F' {
			t[c] |= cNonHex
			t[c+'a'-'A'] |= cNonHex
		}
	}
	return t
}()

func isDigit(c byte) bool { return '0' <= c && c <= '9' }
func isAlnum(c byte) bool { return class[c]&cAlnum != 0 }
func isUpper(c byte) bool { return 'A' <= c && c <= 'Z' }
func isLetter(c byte) bool {
	return class[c]&(cUpper|cLower) != 0
}
func upper(c byte) byte {
	if 'a' <= c && c <= 'z' {
		return c - 'a' + 'A'
	}
	return c
}

// Detect appends every finding in text to dst and returns it. With enough capacity in dst it must not allocate.
//
// Matches are sorted by Start and do not overlap: where two candidates
// overlap, the higher-ranked type wins (checksum-validated first), then the
// longer span, then the earlier one.
func Detect(text string, dst []Match) []Match {
	d := detector{s: text, out: dst, base: len(dst)}
	d.scan()
	return d.out
}

type detector struct {
	s    string
	out  []Match
	base int // matches before base belong to the caller
	// numEnd is the end of the last digit cluster parsed. A digit run that
	// starts before it is the tail of a longer number (a card that failed
	// Luhn, an IBAN, a list of figures) and is not parsed again on its own.
	numEnd int
}

// add records m, resolving overlaps with earlier matches. Overlaps only
// reach back a few matches (email scans back at most 64 bytes), so this is
// amortised constant time.
func (d *detector) add(m Match) {
	k := len(d.out)
	for k > d.base && d.out[k-1].End > m.Start {
		k--
	}
	for _, o := range d.out[k:] {
		if o.Start < m.End && !beats(m, o) {
			return
		}
	}
	d.out = append(d.out[:k], m)
}

// beats reports whether a should replace an overlapping b.
func beats(a, b Match) bool {
	if ra, rb := rank(a.Type), rank(b.Type); ra != rb {
		return ra > rb
	}
	if la, lb := a.End-a.Start, b.End-b.Start; la != lb {
		return la > lb
	}
	return a.Start < b.Start
}

func (d *detector) scan() {
	s := d.s
	n := len(s)
	for i := 0; i < n; {
		c := s[i]
		k := class[c]
		if k&cAlnum == 0 {
			e := 0
			switch c {
			case '@':
				e = d.email(i)
			case '%':
				if i+2 < n && s[i+1] == '4' && s[i+2] == '0' {
					e = d.emailAt(i, i+3)
				}
			case '+', '(':
				if i+1 < n && isDigit(s[i+1]) && (i == 0 || !isAlnum(s[i-1])) {
					e = d.number(i)
				}
			case ':':
				if i+1 < n && s[i+1] == ':' && (i == 0 || !isAlnum(s[i-1]) && s[i-1] != ':' && s[i-1] != '.') {
					e = d.ipv6(i)
				}
			}
			if e > i {
				i = e
			} else {
				i++
			}
			continue
		}
		// i starts an alphanumeric run: the loop always skips whole runs.
		j := i + 1
		f := k
		for j < n {
			k := class[s[j]]
			if k&cAlnum == 0 {
				break
			}
			f |= k
			j++
		}
		if f&(cDigit|cUpper) == 0 {
			// A lowercase word: only an IPv6 group can start here.
			if j < n && s[j] == ':' && j-i <= 4 && f&cNonHex == 0 {
				if e := d.ipv6(i); e > j {
					i = e
					continue
				}
			}
			i = j
			continue
		}
		if e := d.word(i, j, f); e > j {
			i = e
		} else {
			i = j
		}
	}
}

// word tries the detectors that start at the alphanumeric run s[i:j] with
// class bits f, and returns the end of what it matched, or 0.
func (d *detector) word(i, j int, f uint8) int {
	s := d.s
	var next byte
	if j < len(s) {
		next = s[j]
	}
	l := j - i
	if next == ':' && l <= 4 && f&cNonHex == 0 {
		if e := d.ipv6(i); e > 0 {
			return e
		}
	}
	if isDigit(s[i]) {
		if f&(cUpper|cLower) == 0 {
			if next == '.' && l <= 3 {
				if e := d.ipv4(i); e > 0 {
					return e
				}
			}
			if l == 1 {
				if e := d.nirGrouped(i); e > 0 {
					return e
				}
			}
			if l == 8 {
				if e := d.dniSeparated(i, j); e > 0 {
					return e
				}
			}
			return d.number(i)
		}
		switch l {
		case 9:
			return d.dniPlain(i, j)
		case 15:
			return d.nirPlain(i, j)
		}
		return 0
	}
	// Letter first.
	if f&cDigit == 0 {
		switch {
		case l == 2 && f&cLower == 0 && next == ' ':
			return d.nino(i)
		case l == 1 && next == '-':
			return d.nie(i)
		}
		return 0
	}
	if l >= 4 && isLetter(s[i+1]) && isDigit(s[i+2]) && isDigit(s[i+3]) {
		if e := d.iban(i, j); e > 0 {
			return e
		}
	}
	switch l {
	case 16:
		return d.codiceFiscale(i, j)
	case 8, 9:
		if e := d.nie(i); e > 0 {
			return e
		}
		return d.nino(i)
	}
	return 0
}

// hasPrefixFold reports whether s[i:] starts with the lowercase ASCII word w,
// ignoring case.
func hasPrefixFold(s string, i int, w string) bool {
	if len(s)-i < len(w) {
		return false
	}
	for k := 0; k < len(w); k++ {
		c := s[i+k]
		if 'A' <= c && c <= 'Z' {
			c += 'a' - 'A'
		}
		if c != w[k] {
			return false
		}
	}
	return true
}

// leftGlued reports whether the byte before i ties the candidate at i to a
// longer token: a letter or digit, or a connector that follows a digit
// ("1.2.3.4.5", "12-34").
func leftGlued(s string, i int) bool {
	if i == 0 {
		return false
	}
	c := s[i-1]
	if isAlnum(c) || c == '_' || c == '@' {
		return true
	}
	if i >= 2 && isDigit(s[i-2]) {
		switch c {
		case '.', '-', '/', ':', ',':
			return true
		}
	}
	return false
}

// rightGlued is leftGlued for the byte at e, the end of a candidate.
func rightGlued(s string, e int) bool {
	if e >= len(s) {
		return false
	}
	c := s[e]
	if isAlnum(c) || c == '_' || c == '@' {
		return true
	}
	if e+1 < len(s) && isDigit(s[e+1]) {
		switch c {
		case '.', '-', '/', ':', ',':
			return true
		}
	}
	return false
}
