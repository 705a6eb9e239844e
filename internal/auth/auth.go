// Package auth maps a caller's virtual key to a principal: who is calling,
// from which workspace and team, with which roles. Keys are compared by
// their SHA-256 digest; the key itself is never stored or logged.
package auth

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
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

// Missing lists keys that could not be loaded.
func (k *Keys) Missing() []string { return k.missing }

// Authenticate resolves the Authorization (or api-key / x-api-key) value a
// client sent. In open mode an absent or unknown key is the anonymous
// principal of the default workspace; in keys mode it is ErrUnauthorized.
func (k *Keys) Authenticate(credential string) (Principal, error) {
	token := strings.TrimSpace(credential)
	if len(token) > 7 && strings.EqualFold(token[:7], "bearer ") {
		token = strings.TrimSpace(token[7:])
	}
	if token != "" {
		if p, ok := k.byDigest[sha256.Sum256([]byte(token))]; ok {
			return p, nil
		}
	}
	if k.required {
		return Principal{}, ErrUnauthorized
	}
	return Principal{Workspace: DefaultWorkspace, Roles: []string{}}, nil
}

// Hash returns the hex SHA-256 of a key, for the config's keys[].sha256.
func Hash(key string) string {
	d := sha256.Sum256([]byte(key))
	return hex.EncodeToString(d[:])
}
