package ledger

import (
	"context"
	_ "embed"
	"errors"
	"fmt"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/redis/go-redis/v9"
)

var (
	//go:embed lua/common.lua
	luaCommon string
	//go:embed lua/reserve.lua
	luaReserve string
	//go:embed lua/settle.lua
	luaSettle string
	//go:embed lua/charge.lua
	luaCharge string
	//go:embed lua/raise.lua
	luaRaise string
	//go:embed lua/peek.lua
	luaPeek string

	scriptReserve = redis.NewScript(luaCommon + luaReserve)
	scriptSettle  = redis.NewScript(luaCommon + luaSettle)
	scriptCharge  = redis.NewScript(luaCommon + luaCharge)
	scriptPeek    = redis.NewScript(luaCommon + luaPeek)
	scriptRaise   = redis.NewScript(luaCommon + luaRaise)
)

// redisBackend keeps counters in Redis: every operation is one script, so
// a request's checks and increments across all its counters are atomic and
// every replica on the same Redis sees the same counts. Leases expire
// inside the scripts (a sorted set swept at the start of each), so no
// replica owns a background job.
type redisBackend struct {
	c      redis.UniversalClient
	prefix string
	// lostAt is when this replica found Redis had lost stellwerk's state
	// (unix ms, 0: never): Health shows it.
	lostAt atomic.Int64
	// onLost, when set, is called (on its own goroutine) each time this
	// replica finds the state lost: the budgets are seeded again then.
	onLost atomic.Pointer[func()]
	// onCheck, when set, is told whether each state check reached Redis:
	// the ledger's health follows Redis without traffic too.
	onCheck atomic.Pointer[func(error)]
}

// NewRedis makes the Redis backend on a client the caller owns (and
// closes). prefix starts every key; a {hash tag} in it keeps all keys in
// one slot, which Redis Cluster needs for multi-key scripts.
func NewRedis(c redis.UniversalClient, prefix string) Backend {
	return &redisBackend{c: c, prefix: prefix}
}

var _ Backend = (*redisBackend)(nil)

// claim sets <prefix>n:<key> unless it is set, expiring at until (zero:
// never): SET NX, so of replicas claiming at once one gets true.
func (b *redisBackend) claim(ctx context.Context, key string, until time.Time) (bool, error) {
	args := redis.SetArgs{Mode: "NX"}
	if !until.IsZero() {
		if !until.After(time.Now()) {
			return true, nil // the period ended already: nothing to share
		}
		args.ExpireAt = until
	}
	err := b.c.SetArgs(ctx, b.prefix+"n:"+key, "1", args).Err()
	switch {
	case err == nil:
		return true, nil
	case errors.Is(err, redis.Nil):
		return false, nil
	default:
		return false, &UnavailableError{Op: "claim", Err: err}
	}
}

// key renders a counter's Redis key: <prefix>c:<kind><period>:<rule>:<subject>:<start>.
func (b *redisBackend) key(k *counterKey) string {
	buf := make([]byte, 0, len(b.prefix)+len(k.rule)+len(k.s1)+len(k.s2)+32)
	buf = append(buf, b.prefix...)
	buf = append(buf, "c:"...)
	buf = append(buf, kindChar(k.kind), "tmdwM"[k.period], ':')
	buf = append(buf, k.rule...)
	buf = append(buf, ':')
	buf = append(buf, k.s1...)
	if k.s2 != "" {
		buf = append(buf, '/')
		buf = append(buf, k.s2...)
	}
	buf = append(buf, ':')
	buf = strconv.AppendInt(buf, k.start, 10)
	return string(buf)
}

// ttl is a counter's time to live from now (0: forever).
func ttl(expireAt, now int64) int64 {
	if expireAt == 0 {
		return 0
	}
	return max(1, expireAt-now)
}

func kindChar(k kind) byte {
	switch k {
	case kindMoney:
		return 'm'
	case kindTokens:
		return 't'
	}
	return 'q'
}

func (b *redisBackend) common(id string, now, retention int64, extra int) []any {
	args := make([]any, 0, 4+extra)
	return append(args, b.prefix, now, retention, id)
}

func (b *redisBackend) reserve(ctx context.Context, p *plan) (status, error) {
	keys := make([]string, len(p.counters))
	args := b.common(p.id, p.now, p.retention, 2+5*len(p.counters))
	mode := "n"
	if p.move {
		mode = "m"
	}
	args = append(args, p.leaseUntil, mode)
	for i := range p.counters {
		c := &p.counters[i]
		keys[i] = b.key(&c.key)
		enforce := 0
		if c.enforce {
			enforce = 1
		}
		args = append(args, string(kindChar(c.key.kind)), c.limit, c.amount, enforce, ttl(c.expireAt, p.now))
	}
	res, err := scriptReserve.Run(ctx, b.c, keys, args...).Slice()
	if err != nil {
		return 0, err
	}
	if len(res) != 2 {
		return 0, fmt.Errorf("reserve script: unexpected reply %v", res)
	}
	var st status
	switch res[0] {
	case "ok":
		st = statusOK
	case "refused":
		st = statusRefused
	case "dup":
		return statusDuplicate, nil
	case "gone":
		return statusGone, nil
	default:
		return 0, fmt.Errorf("reserve script: unexpected status %v", res[0])
	}
	vals, _ := res[1].([]any)
	if err := fill(p.counters, vals); err != nil {
		return 0, err
	}
	return st, nil
}

func fill(cs []counter, vals []any) error {
	if len(vals) != 2*len(cs) {
		return fmt.Errorf("ledger script: %d values for %d counters", len(vals), len(cs))
	}
	for i := range cs {
		u, ok1 := vals[2*i].(int64)
		h, ok2 := vals[2*i+1].(int64)
		if !ok1 || !ok2 {
			return errors.New("ledger script: counter values are not integers")
		}
		cs[i].used, cs[i].held = u, h
	}
	return nil
}

func (b *redisBackend) settle(ctx context.Context, id string, now, retention, money, tokens int64, release bool) (status, error) {
	op := "s"
	if release {
		op = "l"
	}
	args := append(b.common(id, now, retention, 3), money, tokens, op)
	res, err := scriptSettle.Run(ctx, b.c, nil, args...).Text()
	if err != nil {
		return 0, err
	}
	switch res {
	case "ok":
		return statusOK, nil
	case "late":
		return statusLate, nil
	case "dup":
		return statusDuplicate, nil
	case "unknown":
		return statusUnknown, nil
	}
	return 0, fmt.Errorf("settle script: unexpected reply %q", res)
}

func (b *redisBackend) charge(ctx context.Context, id string, now, retention int64, cs []counter, money, tokens int64) error {
	keys := make([]string, len(cs))
	args := b.common(id, now, retention, 2*len(cs))
	for i := range cs {
		c := &cs[i]
		keys[i] = b.key(&c.key)
		amount := int64(1)
		switch c.key.kind {
		case kindMoney:
			amount = money
		case kindTokens:
			amount = tokens
		}
		args = append(args, amount, ttl(c.expireAt, now))
	}
	return scriptCharge.Run(ctx, b.c, keys, args...).Err()
}

func (b *redisBackend) raise(ctx context.Context, now, retention int64, c counter, to int64) (int64, error) {
	args := append(b.common("", now, retention, 2), to, ttl(c.expireAt, now))
	return scriptRaise.Run(ctx, b.c, []string{b.key(&c.key)}, args...).Int64()
}

func (b *redisBackend) peek(ctx context.Context, p *plan) error {
	keys := make([]string, len(p.counters))
	for i := range p.counters {
		keys[i] = b.key(&p.counters[i].key)
	}
	vals, err := scriptPeek.Run(ctx, b.c, keys, b.common("", p.now, p.retention, 0)...).Slice()
	if err != nil {
		return err
	}
	return fill(p.counters, vals)
}

func (b *redisBackend) close(context.Context) error { return nil }
