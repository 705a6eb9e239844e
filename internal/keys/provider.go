package keys

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"github.com/stellwerk/stellwerk/internal/store"
)

// ProviderKey describes a workspace's own key for a provider (bring your
// own key). The secret is not part of it: no API returns it, ever.
type ProviderKey struct {
	Workspace   string    `json:"workspace"`
	Provider    string    `json:"provider"`
	MasterKeyID string    `json:"master_key_id"`
	CreatedAt   time.Time `json:"created_at"`
	CreatedBy   string    `json:"created_by"`
	UpdatedAt   time.Time `json:"updated_at"`
	UpdatedBy   string    `json:"updated_by"`
}

// ErrNoProviderKey means the workspace has no key for that provider.
var ErrNoProviderKey = errors.New("no provider key for this workspace and provider")

// maxProviderSecret bounds a provider key (real ones are < 256 bytes).
const maxProviderSecret = 8 << 10

// SetProviderKey stores (or replaces) a workspace's key for a provider,
// encrypted under the current master key.
func (s *Store) SetProviderKey(ctx context.Context, workspace, provider string, secret []byte, by string) error {
	switch {
	case s.ring == nil:
		return ErrNoMasterKey
	case !idRE.MatchString(workspace):
		return &InvalidError{Field: "workspace", Msg: "required: a workspace name"}
	case !idRE.MatchString(provider):
		return &InvalidError{Field: "provider", Msg: "required: a provider name"}
	case len(secret) == 0 || len(secret) > maxProviderSecret:
		return &InvalidError{Field: "secret", Msg: fmt.Sprintf("must be 1 to %d bytes", maxProviderSecret)}
	}
	keyID, nonce, ct := s.ring.seal(secret, providerAAD(workspace, provider))
	now := ms(s.now())
	return s.db.Tx(ctx, func(tx *sql.Tx) error {
		if _, err := s.gen.Bump(ctx, tx); err != nil {
			return err
		}
		res, err := tx.ExecContext(ctx, `UPDATE provider_keys SET master_key_id = $1, nonce = $2, ciphertext = $3, updated_at = $4,
			updated_by = $5 WHERE workspace = $6 AND provider = $7`, keyID, encodeBytes(nonce), encodeBytes(ct), now, by, workspace, provider)
		if err != nil {
			return err
		}
		if n, _ := res.RowsAffected(); n > 0 {
			return nil
		}
		_, err = tx.ExecContext(ctx, `INSERT INTO provider_keys (workspace, provider, master_key_id, nonce, ciphertext, created_at,
			created_by, updated_at, updated_by) VALUES ($1, $2, $3, $4, $5, $6, $7, $6, $7)`,
			workspace, provider, keyID, encodeBytes(nonce), encodeBytes(ct), now, by)
		return err
	})
}

// DeleteProviderKey removes a workspace's key for a provider.
func (s *Store) DeleteProviderKey(ctx context.Context, workspace, provider string) error {
	return s.db.Tx(ctx, func(tx *sql.Tx) error {
		if _, err := s.gen.Bump(ctx, tx); err != nil {
			return err
		}
		res, err := tx.ExecContext(ctx, `DELETE FROM provider_keys WHERE workspace = $1 AND provider = $2`, workspace, provider)
		if err != nil {
			return err
		}
		if n, _ := res.RowsAffected(); n == 0 {
			return ErrNoProviderKey
		}
		return nil
	})
}

// ListProviderKeys describes the stored provider keys, without secrets.
func (s *Store) ListProviderKeys(ctx context.Context, workspace string) ([]ProviderKey, error) {
	rows, err := s.db.SQL.QueryContext(ctx, `SELECT workspace, provider, master_key_id, created_at, created_by, updated_at, updated_by
		FROM provider_keys WHERE ($1 = '' OR workspace = $1) ORDER BY workspace, provider`, workspace)
	if err != nil {
		return nil, store.Classify(err)
	}
	defer rows.Close()
	out := []ProviderKey{}
	for rows.Next() {
		var p ProviderKey
		var created, updated int64
		if err := rows.Scan(&p.Workspace, &p.Provider, &p.MasterKeyID, &created, &p.CreatedBy, &updated, &p.UpdatedBy); err != nil {
			return nil, store.Classify(err)
		}
		p.CreatedAt, p.UpdatedAt = fromMS(created), fromMS(updated)
		out = append(out, p)
	}
	return out, store.Classify(rows.Err())
}

// ProviderSecret is one decrypted provider key, handed to a callback only.
type ProviderSecret struct {
	Workspace, Provider string
	// Secret is the key. The callback must not keep the slice: it is
	// zeroed when the callback returns.
	Secret []byte
}

// EachProviderSecret decrypts every stored provider key and hands it to
// fn, the one way a secret leaves the store. It is for the control plane:
// Envoy's egress gets provider credentials as SDS secrets (docs/keys.md),
// and nothing else in stellwerk ever holds them. Re-read when
// Table.Generation changes. A record that does not decrypt stops the walk
// with an error naming the workspace and provider, never the secret.
func (s *Store) EachProviderSecret(ctx context.Context, fn func(ProviderSecret) error) error {
	type rec struct{ ws, prov, keyID, nonce, ct string }
	rows, err := s.db.SQL.QueryContext(ctx, `SELECT workspace, provider, master_key_id, nonce, ciphertext FROM provider_keys ORDER BY workspace, provider`)
	if err != nil {
		return store.Classify(err)
	}
	var recs []rec
	for rows.Next() {
		var r rec
		if err := rows.Scan(&r.ws, &r.prov, &r.keyID, &r.nonce, &r.ct); err != nil {
			rows.Close()
			return store.Classify(err)
		}
		recs = append(recs, r)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return store.Classify(err)
	}
	if s.ring == nil && len(recs) > 0 {
		return fmt.Errorf("%w: %d are stored and state.master_keys is empty", ErrMasterKeyMissing, len(recs))
	}
	for _, r := range recs {
		pt, err := s.decrypt(r.ws, r.prov, r.keyID, r.nonce, r.ct)
		if err != nil {
			return err
		}
		err = fn(ProviderSecret{Workspace: r.ws, Provider: r.prov, Secret: pt})
		clear(pt)
		if err != nil {
			return err
		}
	}
	return nil
}

func (s *Store) decrypt(ws, prov, keyID, nonceText, ctText string) ([]byte, error) {
	nonce, err1 := decodeBytes(nonceText)
	ct, err2 := decodeBytes(ctText)
	if err1 != nil || err2 != nil {
		return nil, fmt.Errorf("provider key %s/%s: damaged record", ws, prov)
	}
	pt, err := s.ring.open(keyID, nonce, ct, providerAAD(ws, prov))
	if err != nil {
		return nil, fmt.Errorf("provider key %s/%s: %w", ws, prov, err)
	}
	return pt, nil
}

// RotateMaster re-encrypts every provider key not under the current
// master key, and returns how many it re-encrypted. Afterwards the old
// master keys can be removed from state.master_keys. Each record is
// re-encrypted in its own transaction, guarded by its old ciphertext, so a
// concurrent SetProviderKey is never overwritten; running it again is safe.
func (s *Store) RotateMaster(ctx context.Context, by string) (int, error) {
	if s.ring == nil {
		return 0, ErrNoMasterKey
	}
	rows, err := s.db.SQL.QueryContext(ctx, `SELECT workspace, provider, master_key_id, nonce, ciphertext FROM provider_keys
		WHERE master_key_id <> $1`, s.ring.Current())
	if err != nil {
		return 0, store.Classify(err)
	}
	type rec struct{ ws, prov, keyID, nonce, ct string }
	var recs []rec
	for rows.Next() {
		var r rec
		if err := rows.Scan(&r.ws, &r.prov, &r.keyID, &r.nonce, &r.ct); err != nil {
			rows.Close()
			return 0, store.Classify(err)
		}
		recs = append(recs, r)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return 0, store.Classify(err)
	}
	n := 0
	for _, r := range recs {
		pt, err := s.decrypt(r.ws, r.prov, r.keyID, r.nonce, r.ct)
		if err != nil {
			return n, err
		}
		keyID, nonce, ct := s.ring.seal(pt, providerAAD(r.ws, r.prov))
		clear(pt)
		changed := false
		err = s.db.Tx(ctx, func(tx *sql.Tx) error {
			if _, err := s.gen.Bump(ctx, tx); err != nil {
				return err
			}
			res, err := tx.ExecContext(ctx, `UPDATE provider_keys SET master_key_id = $1, nonce = $2, ciphertext = $3, updated_at = $4,
				updated_by = $5 WHERE workspace = $6 AND provider = $7 AND ciphertext = $8`,
				keyID, encodeBytes(nonce), encodeBytes(ct), ms(s.now()), by, r.ws, r.prov, r.ct)
			if err != nil {
				return err
			}
			c, _ := res.RowsAffected()
			changed = c == 1
			return nil
		})
		if err != nil {
			return n, err
		}
		if changed {
			n++
		}
	}
	return n, nil
}
