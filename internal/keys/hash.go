package keys

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"os"
	"path/filepath"
	"sync"

	"github.com/stellwerk/stellwerk/internal/config"
	"github.com/stellwerk/stellwerk/internal/store"
)

// Digest is a secret's HMAC-SHA256 under the hash key: what the store keeps
// and what the in-memory table is indexed by.
type Digest [sha256.Size]byte

func (d Digest) hex() string { return hex.EncodeToString(d[:]) }

func parseDigest(s string) (Digest, bool) {
	var d Digest
	b, err := hex.DecodeString(s)
	if err != nil || len(b) != len(d) {
		return d, false
	}
	copy(d[:], b)
	return d, true
}

// Hasher computes digests. A keyed hash rather than a plain one: a copy of
// the database alone (a backup, a replica, a leaked dump) does not let
// anyone test guesses offline without the key, which lives elsewhere.
type Hasher struct {
	pool sync.Pool
}

type hmacBuf struct {
	h   hash.Hash
	buf [96]byte // secrets are 49 bytes; writing from here avoids an allocation
	sum [sha256.Size]byte
}

// MinHashKeyLen is the shortest hash key accepted.
const MinHashKeyLen = 32

// NewHasher returns a hasher under key (at least MinHashKeyLen bytes).
func NewHasher(key []byte) (*Hasher, error) {
	if len(key) < MinHashKeyLen {
		return nil, fmt.Errorf("the hash key must be at least %d bytes, got %d", MinHashKeyLen, len(key))
	}
	k := append([]byte(nil), key...)
	h := &Hasher{}
	h.pool.New = func() any { return &hmacBuf{h: hmac.New(sha256.New, k)} }
	return h, nil
}

// Sum returns the digest of a secret. It allocates nothing for secrets of
// the store's shape.
func (h *Hasher) Sum(secret string) Digest {
	var d Digest
	b := h.pool.Get().(*hmacBuf)
	b.h.Reset()
	if len(secret) <= len(b.buf) {
		n := copy(b.buf[:], secret)
		b.h.Write(b.buf[:n])
	} else {
		b.h.Write([]byte(secret))
	}
	copy(d[:], b.h.Sum(b.sum[:0]))
	h.pool.Put(b)
	return d
}

// HashKeyFile is the generated hash key's name in the state directory.
const HashKeyFile = "hash.key"

// LoadHasher builds the hasher a config names: state.hash_key, or for the
// embedded store a key generated once into the state directory (mode
// 0600). PostgreSQL needs state.hash_key (config validation says so): every
// replica must hash alike, and the key must not sit in the database.
func LoadHasher(st config.State, dialect store.Dialect, getenv func(string) string) (*Hasher, error) {
	if st.HashKey.IsSet() {
		v, err := store.ReadSecret(st.HashKey, getenv)
		if err != nil {
			return nil, fmt.Errorf("state.hash_key: %w", err)
		}
		h, err := NewHasher([]byte(v))
		if err != nil {
			return nil, fmt.Errorf("state.hash_key: %w", err)
		}
		return h, nil
	}
	if dialect != store.SQLite {
		return nil, errors.New("state.hash_key: required with state.postgres")
	}
	key, err := generatedHashKey(st.Dir)
	if err != nil {
		return nil, fmt.Errorf("state: hash key: %w", err)
	}
	return NewHasher(key)
}

// generatedHashKey reads dir/hash.key, creating it first if needed. Two
// processes starting together (the server and the CLI) agree: the file
// appears complete or not at all (written aside, then linked into place,
// which fails if another got there first).
func generatedHashKey(dir string) ([]byte, error) {
	path := filepath.Join(dir, HashKeyFile)
	if b, err := os.ReadFile(path); err == nil {
		return trimKey(b)
	} else if !errors.Is(err, os.ErrNotExist) {
		return nil, err
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, err
	}
	raw := make([]byte, 32)
	if _, err := rand.Read(raw); err != nil {
		return nil, err
	}
	tmp, err := os.CreateTemp(dir, ".hash.key-")
	if err != nil {
		return nil, err
	}
	defer os.Remove(tmp.Name())
	if err := tmp.Chmod(0o600); err != nil {
		tmp.Close()
		return nil, err
	}
	if _, err := tmp.WriteString(base64.RawURLEncoding.EncodeToString(raw) + "\n"); err != nil {
		tmp.Close()
		return nil, err
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return nil, err
	}
	tmp.Close()
	if err := os.Link(tmp.Name(), path); err != nil && !errors.Is(err, os.ErrExist) {
		return nil, err
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	return trimKey(b)
}

func trimKey(b []byte) ([]byte, error) {
	for len(b) > 0 && (b[len(b)-1] == '\n' || b[len(b)-1] == '\r' || b[len(b)-1] == ' ') {
		b = b[:len(b)-1]
	}
	if len(b) < MinHashKeyLen {
		return nil, fmt.Errorf("%s is shorter than %d bytes", HashKeyFile, MinHashKeyLen)
	}
	return b, nil
}
