package keys

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/stellwerk/stellwerk/internal/config"
	"github.com/stellwerk/stellwerk/internal/store"
)

// CheckMove says whether the keys in srcDB (the store src names) still work
// once copied to the store dst names: virtual keys are found by their
// digest under the hash key, so dst must hash with src's key, and a
// workspace's provider keys must decrypt under dst's master keys. It reads
// and writes nothing in dst.
func CheckMove(ctx context.Context, src config.State, srcDB *store.DB, dst config.State, getenv func(string) string) error {
	var nKeys, nProvider int
	if err := srcDB.SQL.QueryRowContext(ctx, `SELECT COUNT(*) FROM virtual_keys`).Scan(&nKeys); err != nil {
		return fmt.Errorf("source: %w", store.Classify(err))
	}
	if err := srcDB.SQL.QueryRowContext(ctx, `SELECT COUNT(*) FROM provider_keys`).Scan(&nProvider); err != nil {
		return fmt.Errorf("source: %w", store.Classify(err))
	}
	var problems []string
	dstHasher, err := LoadHasher(dst, store.Postgres, getenv)
	if err != nil {
		return fmt.Errorf("destination %w", err)
	}
	if nKeys > 0 {
		if err := hashKeyKept(ctx, src, srcDB); err != nil {
			return err
		}
		srcHasher, err := LoadHasher(src, srcDB.Dialect, getenv)
		if err != nil {
			return fmt.Errorf("source %w", err)
		}
		const probe = "stellwerk-move-probe"
		if srcHasher.Sum(probe) != dstHasher.Sum(probe) {
			where := "the source's state.hash_key"
			if !src.HashKey.IsSet() {
				where = src.Dir + "/" + HashKeyFile
			}
			problems = append(problems, fmt.Sprintf("the %d virtual keys are stored under the hash key in %s, and the destination's state.hash_key "+
				"is another key: every key would answer 401; give the destination that key (state.hash_key.file or .env)", nKeys, where))
		}
	}
	if nProvider > 0 {
		ring, err := LoadKeyring(dst.MasterKeys, getenv)
		if err != nil {
			return fmt.Errorf("destination %w", err)
		}
		if ring == nil {
			problems = append(problems, fmt.Sprintf("%d workspace provider keys are stored, and the destination has no state.master_keys: "+
				"give it the source's master keys", nProvider))
		} else {
			// The source's records opened with the destination's keys: what
			// the destination will do with the copies.
			ks := &Store{db: srcDB, hasher: dstHasher, ring: ring}
			err := ks.EachProviderSecret(ctx, func(ProviderSecret) error { return nil })
			if err != nil && !errors.Is(err, store.ErrUnavailable) {
				problems = append(problems, fmt.Sprintf("%v under the destination's state.master_keys: give it the source's master keys", err))
			} else if err != nil {
				return fmt.Errorf("source: %w", err)
			}
		}
	}
	if len(problems) > 0 {
		return errors.New(strings.Join(problems, "; "))
	}
	return nil
}
