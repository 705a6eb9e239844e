package pii

// Checksums and format rules. Each takes the value without separators.

// luhn is the ISO/IEC 7812 check used by payment cards.
func luhn(d []byte) bool {
	sum := 0
	dbl := false
	for k := len(d) - 1; k >= 0; k-- {
		v := int(d[k] - '0')
		if dbl {
			v *= 2
			if v > 9 {
				v -= 9
			}
		}
		sum += v
		dbl = !dbl
	}
	return sum%10 == 0
}

// cardIIN reports whether a number of this length with this prefix is issued
// by a known scheme: Visa, Mastercard (incl. 2-series), Amex, Discover,
// Diners, JCB, Maestro, UnionPay.
func cardIIN(d []byte) bool {
	n := len(d)
	p := func(k int) int {
		v := 0
		for _, c := range d[:k] {
			v = v*10 + int(c-'0')
		}
		return v
	}
	p2, p3, p4, p6 := p(2), p(3), p(4), p(6)
	switch {
	case d[0] == '4': // Visa
		return n == 13 || n == 16 || n == 19
	case p2 >= 51 && p2 <= 55, p4 >= 2221 && p4 <= 2720: // Mastercard
		return n == 16
	case p2 == 34 || p2 == 37: // Amex
		return n == 15
	case p4 == 6011, p3 >= 644 && p3 <= 649, p2 == 65, p6 >= 622126 && p6 <= 622925: // Discover
		return n >= 16
	case p3 >= 300 && p3 <= 305, p2 == 36, p2 == 38, p2 == 39: // Diners
		return n >= 14
	case p4 >= 3528 && p4 <= 3589: // JCB
		return n >= 16
	case p4 == 1800, p4 == 2131: // JCB, 15-digit legacy range
		return n == 15
	case p2 == 62: // UnionPay
		return n >= 16
	case p4 == 5018, p4 == 5020, p4 == 5038, p4 == 5893, p4 == 6304, p4 == 6759, p4 >= 6761 && p4 <= 6763,
		p2 >= 56 && p2 <= 58, p4 == 604, p4 == 6390: // Maestro
		return n >= 13
	}
	return false
}

// ibanLengths holds the IBAN length per country (ISO 13616 registry, plus
// the countries that publish IBANs outside it), indexed by the two letters.
var ibanLengths = func() (t [26 * 26]uint8) {
	const reg = "AD24AE23AL28AT20AZ28BA20BE16BG22BH22BI27BR29BY28CH21CR22CY28CZ24DE22DJ27" +
		"DK18DO28EE20EG29ES24FI18FK18FO18FR27GB22GE22GI23GL18GR27GT28HN28HR21HU28IE22" +
		"IL23IQ23IS26IT27JO30KW30KZ20LB28LC32LI21LT20LU20LV21LY25MC27MD24ME22MK19MN20" +
		"MR27MT31MU30NI28NL18NO15OM23PK24PL28PS29PT25QA29RO24RU33SA24SC31SD18SE24SI19" +
		"SK24SM27SO23ST25SV28TL23TN24TR26UA29VA22VG24XK20YE30" +
		// Not in the registry, used in practice (mostly francophone Africa).
		"AO25BF28BJ28CF27CG27CI28CM27CV25DZ26GA27GQ27GW25IR26KM27MA28MG27ML28MZ25" +
		"NE28SN28TD27TG28"
	for k := 0; k+4 <= len(reg); k += 4 {
		t[int(reg[k]-'A')*26+int(reg[k+1]-'A')] = (reg[k+2]-'0')*10 + reg[k+3] - '0'
	}
	return t
}()

func ibanLength(a, b byte) int {
	a, b = upper(a), upper(b)
	if !isUpper(a) || !isUpper(b) {
		return 0
	}
	return int(ibanLengths[int(a-'A')*26+int(b-'A')])
}

// ibanValid checks length per country and the ISO 7064 mod-97 check
// (the rearranged number mod 97 is 1). v is alphanumeric, any case.
func ibanValid(v []byte) bool {
	if len(v) < 15 || len(v) > 34 || ibanLength(v[0], v[1]) != len(v) || !isDigit(v[2]) || !isDigit(v[3]) {
		return false
	}
	r := 0
	for k := range v {
		c := upper(v[(k+4)%len(v)])
		switch {
		case isDigit(c):
			r = (r*10 + int(c-'0')) % 97
		case isUpper(c):
			r = (r*100 + int(c-'A') + 10) % 97
		default:
			return false
		}
	}
	return r == 1
}

// ssnValid applies the SSA rules: area not 000, 666 or 900-999, group not 00,
// serial not 0000. d has nine digits.
func ssnValid(d []byte) bool {
	area := int(d[0]-'0')*100 + int(d[1]-'0')*10 + int(d[2]-'0')
	if area == 0 || area == 666 || area >= 900 {
		return false
	}
	if d[3] == '0' && d[4] == '0' {
		return false
	}
	return string(d[5:9]) != "0000"
}

// deTaxIDValid checks the Steuerliche Identifikationsnummer: 11 digits, no
// leading zero; in the first ten exactly one digit occurs twice or three
// times (never three in a row) and the others at most once; the last digit
// is the ISO 7064 MOD 11,10 check digit.
func deTaxIDValid(d []byte) bool {
	if len(d) != 11 || d[0] == '0' {
		return false
	}
	var count [10]int
	for _, c := range d[:10] {
		count[c-'0']++
	}
	repeated := 0
	for _, c := range count {
		switch {
		case c > 3:
			return false
		case c > 1:
			repeated++
		}
	}
	if repeated != 1 {
		return false
	}
	for k := 0; k+2 < 10; k++ {
		if d[k] == d[k+1] && d[k] == d[k+2] {
			return false
		}
	}
	product := 10
	for _, c := range d[:10] {
		sum := (int(c-'0') + product) % 10
		if sum == 0 {
			sum = 10
		}
		product = sum * 2 % 11
	}
	check := 11 - product
	if check == 10 {
		check = 0
	}
	return int(d[10]-'0') == check
}

// nirValid checks the French NIR: sex 1-4/7/8, birth month 01-12 or
// 20-42/50-99 (unknown or special), department with Corsica as 2A/2B, and
// the key 97 - (n mod 97) over the first 13 digits, where 2A counts as 19
// and 2B as 18. v has 15 characters.
func nirValid(v []byte) bool {
	if len(v) != 15 {
		return false
	}
	switch v[0] {
	case '1', '2', '3', '4', '7', '8':
	default:
		return false
	}
	var n uint64
	for k := 0; k < 13; k++ {
		c := v[k]
		if k == 6 && v[5] == '2' && (upper(c) == 'A' || upper(c) == 'B') {
			continue
		}
		if !isDigit(c) {
			return false
		}
	}
	if !isDigit(v[13]) || !isDigit(v[14]) {
		return false
	}
	month := int(v[3]-'0')*10 + int(v[4]-'0')
	if month == 0 || month > 12 && month < 20 || month > 42 && month < 50 {
		return false
	}
	for k := 0; k < 13; k++ {
		c := v[k]
		switch {
		case k == 5 && (upper(v[6]) == 'A' || upper(v[6]) == 'B'):
			c = '1'
		case k == 6 && upper(c) == 'A':
			c = '9'
		case k == 6 && upper(c) == 'B':
			c = '8'
		}
		n = n*10 + uint64(c-'0')
	}
	key := int(v[13]-'0')*10 + int(v[14]-'0')
	return key == 97-int(n%97)
}

const dniLetters = "TRWAGMYFPDXBNJZSQVHLCKE"

// dniValid checks a DNI (8 digits + letter) or NIE (X/Y/Z + 7 digits +
// letter): the letter is the number mod 23 looked up in dniLetters, with the
// NIE prefix read as 0/1/2. v has 9 characters.
func dniValid(v []byte) bool {
	if len(v) != 9 {
		return false
	}
	n := 0
	switch upper(v[0]) {
	case 'X':
	case 'Y':
		n = 1
	case 'Z':
		n = 2
	default:
		if !isDigit(v[0]) {
			return false
		}
		n = int(v[0] - '0')
	}
	for _, c := range v[1:8] {
		if !isDigit(c) {
			return false
		}
		n = n*10 + int(c-'0')
	}
	return upper(v[8]) == dniLetters[n%23]
}

// Codice fiscale tables: the value of a character in an odd (1st, 3rd, ...)
// position, indexed by digit or letter.
var cfOdd = [26]int{1, 0, 5, 7, 9, 13, 15, 17, 19, 21, 2, 4, 18, 20, 11, 3, 6, 8, 12, 14, 16, 10, 22, 25, 24, 23}

// cfOmocode maps the letters used for digits in "omocodia" (the digit
// positions of colliding codes) back to digits.
func cfDigit(c byte) (int, bool) {
	if isDigit(c) {
		return int(c - '0'), true
	}
	switch upper(c) {
	case 'L':
		return 0, true
	case 'M':
		return 1, true
	case 'N':
		return 2, true
	case 'P':
		return 3, true
	case 'Q':
		return 4, true
	case 'R':
		return 5, true
	case 'S':
		return 6, true
	case 'T':
		return 7, true
	case 'U':
		return 8, true
	case 'V':
		return 9, true
	}
	return 0, false
}

// cfValid checks an Italian codice fiscale: 6 letters (surname, name), birth
// year, month letter, day (women +40), municipality letter + 3 digits, and
// the check letter. Digit positions may hold omocodia letters. v has 16
// characters, any case.
func cfValid(v []byte) bool {
	if len(v) != 16 {
		return false
	}
	for k := 0; k < 6; k++ {
		if !isLetter(v[k]) {
			return false
		}
	}
	for _, k := range [...]int{6, 7, 9, 10, 12, 13, 14} {
		if _, ok := cfDigit(v[k]); !ok {
			return false
		}
	}
	switch upper(v[8]) {
	case 'A', 'B', 'C', 'D', 'E', 'H', 'L', 'M', 'P', 'R', 'S', 'T':
	default:
		return false
	}
	if !isLetter(v[11]) || !isLetter(v[15]) {
		return false
	}
	d1, _ := cfDigit(v[9])
	d2, _ := cfDigit(v[10])
	if day := d1*10 + d2; day == 0 || day > 71 || day > 31 && day < 41 {
		return false
	}
	sum := 0
	for k := 0; k < 15; k++ {
		c := upper(v[k])
		var x int
		if isDigit(c) {
			x = int(c - '0')
		} else {
			x = int(c - 'A')
		}
		if k%2 == 0 {
			sum += cfOdd[x]
		} else {
			sum += x
		}
	}
	return upper(v[15]) == byte('A'+sum%26)
}

// ninoPrefix reports whether two uppercase letters can start a National
// Insurance number: D, F, I, Q, U, V never appear; O is not second; BG, GB,
// KN, NK, NT, TN and ZZ are not allocated.
func ninoPrefix(a, b byte) bool {
	if !isUpper(a) || !isUpper(b) {
		return false
	}
	switch a {
	case 'D', 'F', 'I', 'Q', 'U', 'V':
		return false
	}
	switch b {
	case 'D', 'F', 'I', 'O', 'Q', 'U', 'V':
		return false
	}
	switch uint16(a)<<8 | uint16(b) {
	case 'B'<<8 | 'G', 'G'<<8 | 'B', 'K'<<8 | 'N', 'N'<<8 | 'K', 'N'<<8 | 'T', 'T'<<8 | 'N', 'Z'<<8 | 'Z':
		return false
	}
	return true
}

// gtinValid is the GS1 check digit of an EAN-13/GTIN-13 (weights 1 and 3 from
// the left).
func gtinValid(d []byte) bool {
	sum := 0
	for k, c := range d[:len(d)-1] {
		w := 1
		if k%2 == 1 {
			w = 3
		}
		sum += w * int(c-'0')
	}
	return int(d[len(d)-1]-'0') == (10-sum%10)%10
}

// bsnValid checks a Dutch BSN's 11-proof: 9·d1 + 8·d2 + … + 2·d8 − d9 is a
// multiple of 11 (and not all zeros).
func bsnValid(d []byte) bool {
	if len(d) != 9 {
		return false
	}
	sum, zero := 0, true
	for k := 0; k < 8; k++ {
		sum += int(d[k]-'0') * (9 - k)
		zero = zero && d[k] == '0'
	}
	sum -= int(d[8] - '0')
	return !zero && sum%11 == 0
}

// peselValid checks a PESEL: its check digit (weights 1 3 7 9 1 3 7 9 1 3)
// and that its first six digits are a birth date (YYMMDD, the month
// carrying the century: +80 for 1800–1899, +0, +20, +40, +60 up to 2299).
func peselValid(d []byte) bool {
	if len(d) != 11 {
		return false
	}
	w := [10]int{1, 3, 7, 9, 1, 3, 7, 9, 1, 3}
	sum := 0
	for k := 0; k < 10; k++ {
		sum += int(d[k]-'0') * w[k]
	}
	if (10-sum%10)%10 != int(d[10]-'0') {
		return false
	}
	month := int(d[2]-'0')*10 + int(d[3]-'0')
	day := int(d[4]-'0')*10 + int(d[5]-'0')
	month %= 20
	return month >= 1 && month <= 12 && day >= 1 && day <= 31
}
