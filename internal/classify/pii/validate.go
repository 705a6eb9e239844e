package pii

import (
	"net/netip"
	"strings"
)

// valid reports whether v, a whole value, is well-formed for type t,
// independently of the scanner: the fuzz test holds every span to it, and
// the evaluation uses it to find gold labels that are not valid values.
func valid(t, v string) bool {
	switch t {
	case TypeEmail:
		return emailValid(v)
	case TypePhone:
		return phoneValid(v)
	case TypeIPAddress:
		a, err := netip.ParseAddr(v)
		return err == nil && a.Zone() == ""
	}
	var buf [40]byte
	b := buf[:0]
	for k := 0; k < len(v); k++ {
		switch c := v[k]; {
		case isAlnum(c):
			if len(b) == len(buf) {
				return false
			}
			b = append(b, c)
		case c == ' ' || c == '-' || c == '.':
		default:
			return false
		}
	}
	switch t {
	case TypeIBAN:
		return ibanValid(b)
	case TypeCreditCard:
		return len(b) >= 13 && len(b) <= 19 && allDigits(b) && cardIIN(b) && luhn(b)
	case TypeUSSSN:
		return len(b) == 9 && allDigits(b) && ssnValid(b)
	case TypeITCodiceFiscale:
		return cfValid(b)
	case TypeESDNI:
		return dniValid(b)
	case TypeFRNIR:
		return nirValid(b)
	case TypeDETaxID:
		return allDigits(b) && deTaxIDValid(b)
	case TypeNLBSN:
		return len(b) == 9 && allDigits(b) && bsnValid(b)
	case TypePLPESEL:
		return len(b) == 11 && allDigits(b) && peselValid(b)
	case TypeUKNINO:
		return len(b) == 9 && ninoPrefix(b[0], b[1]) && allDigits(b[2:8]) && b[8] >= 'A' && b[8] <= 'D'
	}
	return false
}

func allDigits(b []byte) bool {
	for _, c := range b {
		if !isDigit(c) {
			return false
		}
	}
	return len(b) > 0
}

func emailValid(v string) bool {
	at := -1
	for k := 0; k < len(v); k++ {
		if v[k] == '@' {
			if at >= 0 {
				return false
			}
			at = k
		}
	}
	if at < 1 || at > 64 || v[0] == '.' || v[at-1] == '.' {
		return false
	}
	for k := 0; k < at; k++ {
		if !isLocalByte(v[k]) {
			return false
		}
	}
	labels := 0
	start := at + 1
	for k := start; k <= len(v); k++ {
		if k < len(v) && v[k] != '.' {
			if !isAlnum(v[k]) && v[k] != '-' {
				return false
			}
			continue
		}
		l := v[start:k]
		if l == "" || len(l) > 63 || l[0] == '-' || l[len(l)-1] == '-' {
			return false
		}
		labels++
		start = k + 1
	}
	tld := v[strings.LastIndexByte(v, '.')+1:]
	for k := 0; k < len(tld); k++ {
		if !isLetter(tld[k]) {
			return false
		}
	}
	return labels >= 2 && len(tld) >= 2
}

// phoneValid checks what any phone span must satisfy: only digits, the
// separators and an extension marker, and 6-17 digits before the extension.
func phoneValid(v string) bool {
	digits := 0
	for k := 0; k < len(v); k++ {
		c := v[k]
		switch {
		case isDigit(c):
			digits++
		case c == ' ' || c == '-' || c == '.' || c == '/' || c == '(' || c == ')' || c == '+':
		case c == 'x' || c == 'X' || hasPrefixFold(v, k, "ext"):
			rest := v[k:]
			for r := 0; r < len(rest); r++ {
				if !isDigit(rest[r]) && !isLetter(rest[r]) && rest[r] != '.' && rest[r] != ' ' {
					return false
				}
			}
			return digits >= 6 && digits <= 17
		default:
			// A no-break, thin or figure space, or a dash, between groups
			// (numSep's): the detector reads them as ' ' and '-'.
			if _, w := numSep(v, k); w > 1 {
				k += w - 1
				continue
			}
			return false
		}
	}
	return digits >= 6 && digits <= 17 && isDigit(v[len(v)-1])
}
