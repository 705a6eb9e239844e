package secrets

import "strings"

// presignedCredential says whether the access key id at s[i] is a
// pre-signed URL's X-Amz-Credential parameter (S3 links to a private
// image or file, which apps send to models): the key's public id, which
// AWS's signature scheme puts in every such link, not a leaked secret.
// The link's signature grants one object until it expires; whoever is
// meant to fetch it gets it.
func presignedCredential(s string, i int) bool {
	const param = "x-amz-credential="
	return i >= len(param) && strings.EqualFold(s[i-len(param):i], param)
}

// tokenAt matches a self-identifying token (one with a vendor prefix, a PEM
// header or a JWT header) starting at s[i]. It is used both at the start of
// every identifier run and at the start of every assigned value.
func tokenAt(s string, i int) (typ string, end int, ok bool) {
	if len(s)-i < 8 {
		return "", 0, false
	}
	switch s[i] {
	case 'A':
		if (hasPrefixAt(s, i, "AKIA") || hasPrefixAt(s, i, "ASIA")) && !presignedCredential(s, i) {
			e := i + 4
			for e < len(s) && e < i+20 && ('A' <= s[e] && s[e] <= 'Z' || '0' <= s[e] && s[e] <= '9') {
				e++
			}
			if e == i+20 && boundary(s, e, &alnumByte) {
				if _, run := classes(s[i+4 : e]); run < 4 {
					return TypeAWSAccessKeyID, e, true
				}
			}
		}
		if hasPrefixAt(s, i, "AIza") {
			e := runEndMax(s, i+4, &b64urlByte, 36)
			if e-i == 39 && boundary(s, e, &b64urlByte) && random(s[i+4:e]) {
				return TypeGCPAPIKey, e, true
			}
		}
	case 'g':
		if s[i+1] == 'h' && s[i+3] == '_' && isOneOf(s[i+2], "pousr") {
			e := runEnd(s, i+4, &alnumByte)
			if n := e - i - 4; n >= 36 && n <= 251 && boundary(s, e, &b64urlByte) && random(s[i+4:e]) {
				return TypeGitHubToken, e, true
			}
		}
		if hasPrefixAt(s, i, "github_pat_") {
			e := runEnd(s, i+11, &b64urlByte)
			if n := e - i - 11; n >= 50 && n <= 255 && random(s[i+11:e]) {
				return TypeGitHubToken, e, true
			}
		}
		if s[i+1] == 'l' {
			for _, p := range gitlabPrefixes {
				if hasPrefixAt(s, i, p) {
					e := trimDots(s, i, runEnd(s, i+len(p), &identByte))
					if n := e - i - len(p); n >= 20 && n <= 255 && random(s[i+len(p):e]) {
						return TypeGitLabToken, e, true
					}
					break
				}
			}
		}
	case 'x':
		if (hasPrefixAt(s, i, "xox") && isOneOf(s[i+3], "bpares") && s[i+4] == '-') || hasPrefixAt(s, i, "xapp-") {
			e := runEnd(s, i+5, &b64urlByte)
			if n := e - i - 5; n >= 20 && n <= 255 && hasDigit(s[i+5:e]) && random(s[i+5:e]) {
				return TypeSlackToken, e, true
			}
		}
	case 's', 'r':
		if s[i+1] == 'k' && s[i+2] == '_' && (hasPrefixAt(s, i+3, "live_") || hasPrefixAt(s, i+3, "test_")) {
			e := runEnd(s, i+8, &alnumByte)
			if n := e - i - 8; n >= 16 && n <= 255 && boundary(s, e, &b64urlByte) && random(s[i+8:e]) {
				return TypeStripeKey, e, true
			}
		}
		if s[i] == 's' && s[i+1] == 'k' && s[i+2] == '-' {
			e := runEnd(s, i+3, &b64urlByte)
			if hasPrefixAt(s, i+3, "ant-") {
				if n := e - i - 7; n >= 32 && n <= 255 && random(s[i+7:e]) {
					return TypeAnthropicAPIKey, e, true
				}
				return "", 0, false
			}
			if n := e - i - 3; n >= 32 && n <= 255 && random(s[i+3:e]) && hasDigit(s[i+3:e]) {
				return TypeOpenAIAPIKey, e, true
			}
		}
	case 'e':
		if s[i+1] == 'y' && s[i+2] == 'J' {
			if e, ok := jwtAt(s, i); ok {
				return TypeJWT, e, true
			}
		}
	case '-':
		if e, ok := pemAt(s, i); ok {
			return TypePrivateKey, e, true
		}
	}
	return "", 0, false
}

// tokenFirst says whether tokenAt has a case for c: the first bytes of
// the tokens it knows. Keep the two in step.
func tokenFirst(c byte) bool {
	switch c {
	case 'A', 'g', 'x', 's', 'r', 'e', '-':
		return true
	}
	return false
}

var gitlabPrefixes = []string{"glpat-", "gldt-", "glrt-", "glptt-", "glft-"}

func isOneOf(c byte, set string) bool {
	for k := 0; k < len(set); k++ {
		if set[k] == c {
			return true
		}
	}
	return false
}

func hasDigit(v string) bool {
	for k := 0; k < len(v); k++ {
		if '0' <= v[k] && v[k] <= '9' {
			return true
		}
	}
	return false
}

// boundary reports whether a token ending at e is not followed by another
// byte of its own alphabet (a longer run is a different thing).
func boundary(s string, e int, tab *[256]bool) bool {
	return e >= len(s) || !tab[s[e]]
}

// trimDots drops trailing '.' and '-' (sentence punctuation) from s[i:e].
func trimDots(s string, i, e int) int {
	for e > i && (s[e-1] == '.' || s[e-1] == '-') {
		e--
	}
	return e
}

// jwtAt matches header.payload.signature at s[i], where s[i:] starts with
// "eyJ". The header is decoded into a stack buffer and must be a JSON
// object with an "alg" member.
func jwtAt(s string, i int) (int, bool) {
	h := runEnd(s, i, &b64urlByte)
	if h-i < 10 || h-i > 1024 || h >= len(s) || s[h] != '.' {
		return 0, false
	}
	p := runEnd(s, h+1, &b64urlByte)
	if p-h-1 < 8 || p >= len(s) || s[p] != '.' {
		return 0, false
	}
	e := runEnd(s, p+1, &b64urlByte)
	if e-p-1 < 16 {
		return 0, false
	}
	var buf [768]byte
	dec := decodeB64URL(buf[:0], s[i:h])
	if len(dec) == 0 || dec[0] != '{' || !containsBytes(dec, `"alg"`) {
		return 0, false
	}
	return e, true
}

// decodeB64URL decodes unpadded base64url src into dst (capacity permitting).
func decodeB64URL(dst []byte, src string) []byte {
	var acc uint32
	bits := 0
	for k := 0; k < len(src); k++ {
		v := b64urlValue(src[k])
		if v < 0 {
			return dst[:0]
		}
		acc = acc<<6 | uint32(v)
		bits += 6
		if bits >= 8 {
			bits -= 8
			if len(dst) == cap(dst) {
				return dst
			}
			dst = append(dst, byte(acc>>uint(bits)))
		}
	}
	return dst
}

func b64urlValue(c byte) int {
	switch {
	case 'A' <= c && c <= 'Z':
		return int(c - 'A')
	case 'a' <= c && c <= 'z':
		return int(c-'a') + 26
	case '0' <= c && c <= '9':
		return int(c-'0') + 52
	case c == '-':
		return 62
	case c == '_':
		return 63
	}
	return -1
}

func containsBytes(b []byte, sub string) bool {
	for k := 0; k+len(sub) <= len(b); k++ {
		if string(b[k:k+len(sub)]) == sub {
			return true
		}
	}
	return false
}

// pemAt matches a PEM private key block at s[i]. The body scan stops at the
// first byte a PEM body cannot contain, so it reads each byte at most once
// and the caller resumes after the block.
func pemAt(s string, i int) (int, bool) {
	if !hasPrefixAt(s, i, "-----BEGIN ") {
		return 0, false
	}
	ls := i + len("-----BEGIN ")
	le := indexWithin(s, ls, "-----", 48)
	if le < 0 {
		return 0, false
	}
	label := s[ls:le]
	if !hasSuffix(label, "PRIVATE KEY") && !hasSuffix(label, "PRIVATE KEY BLOCK") {
		return 0, false
	}
	body := 0
	last := le + 5
	for k := le + 5; k < len(s); k++ {
		c := s[k]
		if c == '-' && hasPrefixAt(s, k, "-----") {
			if hasPrefixAt(s, k, "-----END ") {
				if ee := indexWithin(s, k+9, "-----", 48); ee >= 0 && body >= 64 {
					return ee + 5, true
				}
			}
			break
		}
		if !pemByte[c] {
			break
		}
		if alnumByte[c] || c == '+' || c == '/' {
			body++
		}
		if c != ' ' && c != '\t' && c != '\r' && c != '\n' {
			last = k + 1
		}
	}
	if body < 64 {
		return 0, false
	}
	return last, true
}

// indexWithin returns the index of sub in s[from:from+max+len(sub)], or -1.
func indexWithin(s string, from int, sub string, max int) int {
	for k := from; k <= from+max && k+len(sub) <= len(s); k++ {
		if s[k] == sub[0] && s[k:k+len(sub)] == sub {
			return k
		}
	}
	return -1
}

func hasSuffix(s, suf string) bool {
	return len(s) >= len(suf) && s[len(s)-len(suf):] == suf
}
