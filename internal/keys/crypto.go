package keys

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"

	"github.com/stellwerk/stellwerk/internal/config"
	"github.com/stellwerk/stellwerk/internal/store"
)

// Keyring holds the master keys provider keys are encrypted under
// (AES-256-GCM). The first key encrypts; every key decrypts what names its
// id, so a new master key can be put first and the old one kept until
// RotateMaster has re-encrypted everything.
type Keyring struct {
	current string
	aeads   map[string]cipher.AEAD
}

// ErrNoMasterKey means provider keys cannot be stored: no
// state.master_keys is configured.
var ErrNoMasterKey = errors.New("no master key for provider keys (state.master_keys)")

// ErrMasterKeyMissing means stored provider keys cannot be read: a record
// names a master key that is not configured (a replica not yet restarted
// with the new list before rotate-master), or none is configured at all.
// Reading them fails as a whole: the workspaces' keys in force stay (a
// reload is refused), and a start fails — never the shared credential in
// their place (the operator probe: a replica did that silently).
var ErrMasterKeyMissing = errors.New("stored provider keys need a master key that is not configured (state.master_keys)")

// NewKeyring builds a keyring from (id, 32-byte key) pairs, the first
// current.
func NewKeyring(ids []string, keys [][]byte) (*Keyring, error) {
	if len(ids) != len(keys) || len(ids) == 0 {
		return nil, ErrNoMasterKey
	}
	r := &Keyring{current: ids[0], aeads: map[string]cipher.AEAD{}}
	for i, id := range ids {
		if len(keys[i]) != 32 {
			return nil, fmt.Errorf("master key %s: must be 32 bytes, got %d", id, len(keys[i]))
		}
		block, err := aes.NewCipher(keys[i])
		if err != nil {
			return nil, err
		}
		aead, err := cipher.NewGCM(block)
		if err != nil {
			return nil, err
		}
		r.aeads[id] = aead
	}
	return r, nil
}

// LoadKeyring reads the configured master keys; nil (and no error) when
// none is configured.
func LoadKeyring(mks []config.MasterKey, getenv func(string) string) (*Keyring, error) {
	if len(mks) == 0 {
		return nil, nil
	}
	var ids []string
	var keys [][]byte
	for i, m := range mks {
		v, err := store.ReadSecret(m.Source(), getenv)
		if err != nil {
			return nil, fmt.Errorf("state.master_keys[%d] (%s): %w", i, m.ID, err)
		}
		k, err := DecodeMasterKey(v)
		if err != nil {
			return nil, fmt.Errorf("state.master_keys[%d] (%s): %w", i, m.ID, err)
		}
		ids, keys = append(ids, m.ID), append(keys, k)
	}
	return NewKeyring(ids, keys)
}

// DecodeMasterKey accepts 32 bytes as 64 hex digits or base64 (standard
// or URL alphabet, padded or not), e.g. from `openssl rand -base64 32`.
func DecodeMasterKey(s string) ([]byte, error) {
	s = strings.TrimSpace(s)
	if len(s) == 64 {
		if b, err := hex.DecodeString(s); err == nil {
			return b, nil
		}
	}
	for _, enc := range []*base64.Encoding{base64.StdEncoding, base64.RawStdEncoding, base64.URLEncoding, base64.RawURLEncoding} {
		if b, err := enc.DecodeString(s); err == nil && len(b) == 32 {
			return b, nil
		}
	}
	return nil, errors.New("must be 32 bytes as 64 hex digits or base64 (openssl rand -base64 32)")
}

// Current is the id new records are encrypted under.
func (r *Keyring) Current() string { return r.current }

// seal encrypts under the current key; aad binds the ciphertext to its
// record, so one record's ciphertext cannot be moved to another.
func (r *Keyring) seal(plaintext, aad []byte) (keyID string, nonce, ct []byte) {
	aead := r.aeads[r.current]
	nonce = make([]byte, aead.NonceSize())
	if _, err := rand.Read(nonce); err != nil {
		panic("keys: no randomness: " + err.Error())
	}
	return r.current, nonce, aead.Seal(nil, nonce, plaintext, aad)
}

func (r *Keyring) open(keyID string, nonce, ct, aad []byte) ([]byte, error) {
	aead, ok := r.aeads[keyID]
	if !ok {
		return nil, fmt.Errorf("%w: a record is encrypted under master key %q", ErrMasterKeyMissing, keyID)
	}
	if len(nonce) != aead.NonceSize() {
		return nil, errors.New("provider key record is damaged (nonce)")
	}
	pt, err := aead.Open(nil, nonce, ct, aad)
	if err != nil {
		return nil, fmt.Errorf("provider key record does not decrypt under master key %q (wrong key, or the record was altered)", keyID)
	}
	return pt, nil
}

func providerAAD(workspace, provider string) []byte {
	return []byte("stellwerk/provider-key/v1\x00" + workspace + "\x00" + provider)
}
