// Package auth maps a caller's virtual key to a principal: who is calling,
// from which workspace and team, with which roles. It is the one merge
// point of the keys in stellwerk.yaml (compared by their SHA-256 digest)
// and the key store's in-memory table (internal/keys), consulted second.
// The key itself is never stored or logged.
package auth

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"

	"github.com/stellwerk/stellwerk/internal/config"
)

// Principal is the policy input's "principal".
type Principal struct {
	Authenticated bool
	KeyID         string
	Workspace     string
	Team          string
	User          string
	Roles         []string
	// Models and Routes, when not empty, are all a store key may use
	// (model ids or provider:<name>; route names).
	Models []string
	Routes []string
	// Limits are the key's own budgets and rate limits (nil: none).
	Limits *config.Limits
	// PreviousSecret: the request authenticated with a store key's secret
	// that a rotation replaced, in its grace period (the audit record
	// tells its requests from the new secret's).
	PreviousSecret bool
}

// Source is a table of virtual keys beyond the config's: the key store's
// in-memory copy. Lookup must not block on I/O: it runs per request.
type Source interface {
	// Lookup resolves a bearer token. ok is false for a token the source
	// does not know; err is set for one it knows but refuses (revoked,
	// expired), which is a 401 in every auth mode.
	Lookup(token string) (p Principal, ok bool, err error)
}

// DefaultWorkspace receives unauthenticated requests in open mode.
const DefaultWorkspace = "default"

// ErrUnauthorized means the request must be answered 401.
var ErrUnauthorized = errors.New("a valid stellwerk key is required")

// Keys is the compiled key table.
type Keys struct {
	byDigest map[[sha256.Size]byte]Principal
	required bool
	missing  []string // keys whose env variable is unset, for a start-up warning
	source   Source
}

// New compiles the configured keys. getenv reads keys given by environment
// variable.
func New(c *config.Config, getenv func(string) string) *Keys {
	k := &Keys{byDigest: map[[sha256.Size]byte]Principal{}, required: c.Auth.Mode == "keys"}
	for _, kc := range c.Keys {
		var d [sha256.Size]byte
		switch {
		case kc.SHA256 != "":
			b, err := hex.DecodeString(kc.SHA256)
			if err != nil || len(b) != sha256.Size {
				continue // rejected by config validation
			}
			copy(d[:], b)
		default:
			v := strings.TrimSpace(getenv(kc.Env))
			if v == "" {
				k.missing = append(k.missing, kc.ID+" (environment variable "+kc.Env+")")
				continue
			}
			d = sha256.Sum256([]byte(v))
		}
		k.byDigest[d] = Principal{Authenticated: true, KeyID: kc.ID, Workspace: kc.Workspace, Team: kc.Team,
			User: kc.User, Roles: append([]string{}, kc.Roles...)}
	}
	return k
}

// WithSource adds a key table consulted after the config's keys. Call it
// before k is in use.
func (k *Keys) WithSource(s Source) *Keys {
	k.source = s
	return k
}

// Missing lists keys that could not be loaded.
func (k *Keys) Missing() []string { return k.missing }

// Authenticate resolves the Authorization (or api-key / x-api-key) value a
// client sent. In open mode an absent or unknown key is the anonymous
// principal of the default workspace; in keys mode it is ErrUnauthorized.
// A store key refused for its state (revoked, expired) is an error in
// either mode, returned with a Principal that holds only its KeyID.
func (k *Keys) Authenticate(credential string) (Principal, error) {
	token := strings.TrimSpace(credential)
	if len(token) > 7 && strings.EqualFold(token[:7], "bearer ") {
		token = strings.TrimSpace(token[7:])
	}
	if token != "" {
		if p, ok := k.byDigest[digest(token)]; ok {
			return p, nil
		}
		if k.source != nil {
			p, ok, err := k.source.Lookup(token)
			if err != nil {
				// The KeyID of a key refused for its state (revoked,
				// expired), for the log; the principal is never used.
				return Principal{KeyID: p.KeyID}, fmt.Errorf("%w: %w", ErrUnauthorized, err)
			}
			if ok {
				return p, nil
			}
		}
	}
	if k.required {
		return Principal{}, ErrUnauthorized
	}
	return Principal{Workspace: DefaultWorkspace, Roles: []string{}}, nil
}

// digest hashes a token without copying it to the heap (tokens of the
// store's shape are longer than the compiler's stack buffer for []byte(s)).
func digest(token string) [sha256.Size]byte {
	var buf [128]byte
	if len(token) <= len(buf) {
		n := copy(buf[:], token)
		return sha256.Sum256(buf[:n])
	}
	return sha256.Sum256([]byte(token))
}

// Hash returns the hex SHA-256 of a key, for the config's keys[].sha256.
func Hash(key string) string {
	d := sha256.Sum256([]byte(key))
	return hex.EncodeToString(d[:])
}
