package admin

import (
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"strings"

	"github.com/stellwerk/stellwerk/internal/config"
)

// Tokens is the compiled admin token table. Only SHA-256 digests are kept;
// a presented token is hashed and compared with every digest in constant
// time, so neither the answer's timing nor the table reveals a token.
type Tokens struct {
	entries []token
	missing []string
}

type token struct {
	id     string
	role   string
	digest [sha256.Size]byte
}

// Caller is who presented a valid admin token.
type Caller struct {
	TokenID string
	Role    string
}

// NewTokens compiles the configured tokens; getenv reads tokens given by
// environment variable. A token whose variable is unset opens nothing and is
// listed by Missing.
func NewTokens(ts []config.AdminToken, getenv func(string) string) *Tokens {
	t := &Tokens{}
	for _, tc := range ts {
		e := token{id: tc.ID, role: tc.Role}
		switch {
		case tc.SHA256 != "":
			b, err := hex.DecodeString(tc.SHA256)
			if err != nil || len(b) != sha256.Size {
				continue // rejected by config validation
			}
			copy(e.digest[:], b)
		default:
			v := strings.TrimSpace(getenv(tc.Env))
			if v == "" {
				t.missing = append(t.missing, tc.ID+" (environment variable "+tc.Env+")")
				continue
			}
			e.digest = sha256.Sum256([]byte(v))
		}
		t.entries = append(t.entries, e)
	}
	return t
}

// Missing lists tokens that could not be loaded, for a start-up warning.
func (t *Tokens) Missing() []string { return t.missing }

// Len is the number of usable tokens.
func (t *Tokens) Len() int {
	if t == nil {
		return 0
	}
	return len(t.entries)
}

// Authenticate resolves an Authorization header value ("Bearer <token>").
func (t *Tokens) Authenticate(authorization string) (Caller, bool) {
	if t == nil {
		return Caller{}, false
	}
	v := strings.TrimSpace(authorization)
	if len(v) < 7 || !strings.EqualFold(v[:7], "bearer ") {
		return Caller{}, false
	}
	v = strings.TrimSpace(v[7:])
	if v == "" {
		return Caller{}, false
	}
	d := sha256.Sum256([]byte(v))
	var c Caller
	found := false
	for _, e := range t.entries { // no early exit: every digest is compared
		if subtle.ConstantTimeCompare(d[:], e.digest[:]) == 1 && !found {
			c, found = Caller{TokenID: e.id, Role: e.role}, true
		}
	}
	return c, found
}
