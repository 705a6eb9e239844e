package audit

import (
	"bytes"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/stellwerk/stellwerk/internal/config"
	"github.com/stellwerk/stellwerk/internal/store"
)

// Signer signs checkpoints with an Ed25519 key.
type Signer struct {
	priv ed25519.PrivateKey
	pub  PublicKey
}

// PublicKey is a verification key and its id.
type PublicKey struct {
	Key ed25519.PublicKey
	// ID is the first 16 hex digits of the SHA-256 of the raw key; every
	// checkpoint names the key that signed it.
	ID string
}

// KeyFile is the generated signing key's name in the state directory.
const KeyFile = "audit-signing.key"

// NewSigner wraps a private key.
func NewSigner(priv ed25519.PrivateKey) *Signer {
	pub := priv.Public().(ed25519.PublicKey)
	return &Signer{priv: priv, pub: NewPublicKey(pub)}
}

// NewPublicKey computes a key's id.
func NewPublicKey(k ed25519.PublicKey) PublicKey {
	s := sha256.Sum256(k)
	return PublicKey{Key: k, ID: hex.EncodeToString(s[:8])}
}

// Public is the signer's verification key.
func (s *Signer) Public() PublicKey { return s.pub }

// Sign fills the checkpoint's key id, digest and signature.
func (s *Signer) Sign(c *Checkpoint) {
	c.KeyID = s.pub.ID
	msg := c.Message()
	c.Digest = hexSum(msg)
	c.Signature = ed25519.Sign(s.priv, msg)
}

// LoadSigner reads the configured signing key, or the one generated into
// the state directory, generating it (mode 0600) on first use when none is
// configured. generated reports a new key.
func LoadSigner(a config.Audit, stateDir string, getenv func(string) string) (s *Signer, generated bool, err error) {
	return loadSigner(a, stateDir, getenv, true)
}

// ErrNoKey: no signing key is configured and none was generated yet.
var ErrNoKey = errors.New("no audit signing key: audit.signing_key is not set and none was generated into state.dir")

// LoadPublic is the public half of the signing key LoadSigner would use,
// without generating one (for verify on the machine that signs).
func LoadPublic(a config.Audit, stateDir string, getenv func(string) string) (PublicKey, error) {
	s, _, err := loadSigner(a, stateDir, getenv, false)
	if err != nil {
		return PublicKey{}, err
	}
	return s.Public(), nil
}

func loadSigner(a config.Audit, stateDir string, getenv func(string) string, generate bool) (s *Signer, generated bool, err error) {
	if a.SigningKey.IsSet() {
		v, err := store.ReadSecret(a.SigningKey, getenv)
		if err != nil {
			return nil, false, fmt.Errorf("audit.signing_key: %w", err)
		}
		priv, err := ParsePrivateKey([]byte(v))
		if err != nil {
			return nil, false, fmt.Errorf("audit.signing_key: %w", err)
		}
		return NewSigner(priv), false, nil
	}
	if stateDir == "" {
		return nil, false, errors.New("audit.signing_key: not set, and no state.dir to keep a generated key in")
	}
	path := filepath.Join(stateDir, KeyFile)
	if b, err := os.ReadFile(path); err == nil {
		priv, err := ParsePrivateKey(b)
		if err != nil {
			return nil, false, fmt.Errorf("%s: %w", path, err)
		}
		return NewSigner(priv), false, nil
	} else if !errors.Is(err, os.ErrNotExist) {
		return nil, false, fmt.Errorf("audit signing key: %w", err)
	} else if !generate {
		return nil, false, ErrNoKey
	}
	if err := os.MkdirAll(stateDir, 0o700); err != nil {
		return nil, false, fmt.Errorf("state.dir: %w", err)
	}
	_, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return nil, false, err
	}
	der, err := x509.MarshalPKCS8PrivateKey(priv)
	if err != nil {
		return nil, false, err
	}
	// O_EXCL: two processes starting together keep the first key.
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if errors.Is(err, os.ErrExist) {
		return loadSigner(a, stateDir, getenv, false)
	}
	if err != nil {
		return nil, false, fmt.Errorf("audit signing key: %w", err)
	}
	if err := pem.Encode(f, &pem.Block{Type: "PRIVATE KEY", Bytes: der}); err != nil {
		f.Close()
		return nil, false, err
	}
	if err := f.Close(); err != nil {
		return nil, false, err
	}
	return NewSigner(priv), true, nil
}

// ParsePrivateKey reads a PEM PKCS#8 Ed25519 key (openssl genpkey
// -algorithm ed25519), or base64 of the 32-byte seed or 64-byte key.
func ParsePrivateKey(b []byte) (ed25519.PrivateKey, error) {
	b = bytes.TrimSpace(b)
	if blk, _ := pem.Decode(b); blk != nil {
		k, err := x509.ParsePKCS8PrivateKey(blk.Bytes)
		if err != nil {
			return nil, errors.New("not a PKCS#8 private key")
		}
		priv, ok := k.(ed25519.PrivateKey)
		if !ok {
			return nil, errors.New("not an Ed25519 key")
		}
		return priv, nil
	}
	raw, err := base64.StdEncoding.DecodeString(string(b))
	if err != nil {
		return nil, errors.New("neither PEM nor base64")
	}
	switch len(raw) {
	case ed25519.SeedSize:
		return ed25519.NewKeyFromSeed(raw), nil
	case ed25519.PrivateKeySize:
		return ed25519.PrivateKey(raw), nil
	}
	return nil, fmt.Errorf("a base64 key must be 32 (seed) or 64 bytes, got %d", len(raw))
}

// PEM is the public key as a PEM "PUBLIC KEY" block (PKIX), as openssl
// prints it.
func (k PublicKey) PEM() string {
	der, _ := x509.MarshalPKIXPublicKey(k.Key)
	return string(pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der}))
}

// ParsePublicKeys reads PEM "PUBLIC KEY" blocks, or lines of base64 raw
// 32-byte keys.
func ParsePublicKeys(b []byte) ([]PublicKey, error) {
	var out []PublicKey
	rest := bytes.TrimSpace(b)
	if bytes.HasPrefix(rest, []byte("-----BEGIN")) {
		for len(rest) > 0 {
			blk, r := pem.Decode(rest)
			if blk == nil {
				break
			}
			rest = bytes.TrimSpace(r)
			k, err := x509.ParsePKIXPublicKey(blk.Bytes)
			if err != nil {
				return nil, fmt.Errorf("public key: %w", err)
			}
			pub, ok := k.(ed25519.PublicKey)
			if !ok {
				return nil, errors.New("public key: not Ed25519")
			}
			out = append(out, NewPublicKey(pub))
		}
	} else {
		for _, line := range strings.Fields(string(rest)) {
			raw, err := base64.StdEncoding.DecodeString(line)
			if err != nil || len(raw) != ed25519.PublicKeySize {
				return nil, errors.New("public key: want PEM or base64 of 32 bytes")
			}
			out = append(out, NewPublicKey(ed25519.PublicKey(raw)))
		}
	}
	if len(out) == 0 {
		return nil, errors.New("no public key found")
	}
	return out, nil
}
