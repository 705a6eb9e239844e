// Package keys is the virtual key store: keys created, listed, rotated and
// revoked through the CLI or the admin API, kept in the state store
// (internal/store: SQLite by default, PostgreSQL for a fleet) and served to
// the request path from an in-memory table that every replica refreshes
// from the store at least twice a second. It also keeps each workspace's
// own provider keys, encrypted at rest. docs/keys.md is the operator's
// view.
//
// A key's secret exists only in the answer that creates (or rotates) it;
// the store holds its HMAC-SHA256 under the server's hash key.
package keys

import (
	"crypto/rand"
	"encoding/base64"
	"strings"
)

// SecretPrefix starts every key the store issues.
const SecretPrefix = "sk-sw-"

// secretRandomBytes is the entropy of a secret: 256 bits.
const secretRandomBytes = 32

// secretLen is the length of a secret: the prefix and 43 base64url digits.
var secretLen = len(SecretPrefix) + base64.RawURLEncoding.EncodedLen(secretRandomBytes)

// DisplayPrefixLen is how much of a secret the store keeps in clear to tell
// keys apart in listings: the prefix and 6 random digits (36 of 256 bits).
const DisplayPrefixLen = len(SecretPrefix) + 6

// newSecret returns a fresh secret.
func newSecret() string {
	b := make([]byte, secretRandomBytes)
	if _, err := rand.Read(b); err != nil {
		panic("keys: no randomness: " + err.Error()) // crypto/rand does not fail on Linux
	}
	return SecretPrefix + base64.RawURLEncoding.EncodeToString(b)
}

// ParseSecret extracts a store key from what a client sent: the
// Authorization value ("Bearer sk-sw-…", any case, surrounding blanks) or the
// bare key (api-key, x-api-key). ok is false for anything that is not
// exactly a store key's shape, so unrelated tokens never reach the hash.
// It runs on untrusted input for every request and allocates nothing.
func ParseSecret(credential string) (secret string, ok bool) {
	s := trimBearer(credential)
	if len(s) != secretLen || s[:len(SecretPrefix)] != SecretPrefix {
		return "", false
	}
	for i := len(SecretPrefix); i < len(s); i++ {
		c := s[i]
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '-' || c == '_') {
			return "", false
		}
	}
	return s, true
}

// trimBearer is the token of an Authorization value or a bare key.
func trimBearer(credential string) string {
	s := trimBlank(credential)
	if len(s) > 7 && strings.EqualFold(s[:7], "bearer ") {
		s = trimBlank(s[7:])
	}
	return s
}

func trimBlank(s string) string {
	for len(s) > 0 && (s[0] == ' ' || s[0] == '\t') {
		s = s[1:]
	}
	for len(s) > 0 && (s[len(s)-1] == ' ' || s[len(s)-1] == '\t' || s[len(s)-1] == '\r' || s[len(s)-1] == '\n') {
		s = s[:len(s)-1]
	}
	return s
}

// displayPrefix is the part of a secret shown in listings.
func displayPrefix(secret string) string { return secret[:DisplayPrefixLen] }
