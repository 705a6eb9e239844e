package ledger

import (
	"context"
	"crypto/tls"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"
	"go.uber.org/zap"

	"github.com/stellwerk/stellwerk/internal/config"
)

// Env reads the Redis password's environment variable or file.
type Env struct {
	Getenv   func(string) string
	ReadFile func(string) ([]byte, error)
}

// Open builds the Ledger a validated config describes: Redis when
// state.redis is set, memory otherwise (its spend in state.spend_file if
// set; the SQLite store's Persister can be passed instead as persister).
// Close the Ledger on shutdown (the memory backend saves its spend; the
// Redis client is closed).
func Open(ctx context.Context, c *config.Config, env Env, persister Persister, log *zap.Logger) (*Ledger, error) {
	lim, err := LimitsFromConfig(c)
	if err != nil {
		return nil, err
	}
	o := Options{Lease: c.Budgets.Lease, Logger: log}
	var b Backend
	if rc := c.State.Redis; rc != nil {
		opts, err := RedisOptions(rc, env)
		if err != nil {
			return nil, err
		}
		if log != nil {
			redis.SetLogger(redisLogger{log.Named("redis")})
		}
		client := redis.NewClient(opts)
		cr := &closingRedis{redisBackend: redisBackend{c: client, prefix: rc.Prefix}, client: client,
			stop: make(chan struct{}), stopped: make(chan struct{})}
		go func() {
			defer close(cr.stopped)
			cr.watchState(cr.stop, stateCheckInterval, log)
		}()
		b = cr
		o.FailOpenBudgets = rc.OnUnavailable.Budgets == "open"
		o.FailOpenRateLimits = rc.OnUnavailable.RateLimits == "open"
	} else {
		if persister == nil && c.State.SpendFile != "" {
			persister = FilePersister{Path: c.State.SpendFile}
		}
		if b, err = NewMemory(ctx, MemoryOptions{Persister: persister, FlushInterval: c.State.SpendFlushInterval, Logger: log}); err != nil {
			return nil, fmt.Errorf("budgets: loading spend: %w", err)
		}
	}
	return New(b, lim, o), nil
}

// RedisOptions turns state.redis into go-redis options, reading the
// password from its variable or file.
func RedisOptions(rc *config.Redis, env Env) (*redis.Options, error) {
	// One dial per attempt: go-redis's default of five, 100ms apart, made
	// every request wait 0.8 s (3.3 s if dials time out) for a Redis that is
	// down, where state.redis.timeout promises one round trip (and
	// MaxRetries one more).
	o := &redis.Options{Addr: rc.Address, Username: rc.Username, DB: rc.DB,
		DialTimeout: rc.Timeout, ReadTimeout: rc.Timeout, WriteTimeout: rc.Timeout,
		ContextTimeoutEnabled: true, MaxRetries: 1, DialerRetries: 1, DisableIdentity: true}
	switch {
	case rc.PasswordEnv != "":
		o.Password = strings.TrimSpace(env.Getenv(rc.PasswordEnv))
		if o.Password == "" {
			return nil, fmt.Errorf("state.redis.password_env: variable %s is empty", rc.PasswordEnv)
		}
	case rc.PasswordFile != "":
		p, err := env.ReadFile(rc.PasswordFile)
		if err != nil {
			return nil, fmt.Errorf("state.redis.password_file: %w", err)
		}
		o.Password = strings.TrimSpace(string(p))
		if o.Password == "" {
			return nil, fmt.Errorf("state.redis.password_file: the file is empty")
		}
	}
	if rc.TLS {
		o.TLSConfig = &tls.Config{MinVersion: tls.VersionTLS12}
	}
	return o, nil
}

// closingRedis is the Redis backend that owns its client, and watches
// that Redis keeps stellwerk's state.
type closingRedis struct {
	redisBackend
	client        *redis.Client
	stop, stopped chan struct{}
}

func (b *closingRedis) close(context.Context) error {
	close(b.stop)
	<-b.stopped
	return b.client.Close()
}

// shareFingerprint writes this replica's config fingerprint into the
// fleet's hash in Redis and reads the others' (one round trip): those
// written within fresh, by replica. Stale ones (a replica gone) are removed.
func (b *redisBackend) shareFingerprint(ctx context.Context, replica, fp string, fresh time.Duration) (map[string]string, error) {
	key := b.prefix + "fleet"
	now := time.Now()
	var all *redis.MapStringStringCmd
	if _, err := b.c.Pipelined(ctx, func(p redis.Pipeliner) error {
		p.HSet(ctx, key, replica, fp+" "+strconv.FormatInt(now.Unix(), 10))
		all = p.HGetAll(ctx, key)
		return nil
	}); err != nil {
		return nil, err
	}
	others := map[string]string{}
	var stale []string
	for r, v := range all.Val() {
		if r == replica {
			continue
		}
		f, ts, ok := strings.Cut(v, " ")
		sec, err := strconv.ParseInt(ts, 10, 64)
		if !ok || err != nil || now.Sub(time.Unix(sec, 0)) > fresh {
			stale = append(stale, r)
			continue
		}
		others[r] = f
	}
	if len(stale) > 0 {
		b.c.HDel(ctx, key, stale...) // best effort: the next replica to look removes them too
	}
	return others, nil
}

// hasCounters reports whether Redis holds any of stellwerk's counters:
// one SCAN step at a time, at start only.
func (b *redisBackend) hasCounters(ctx context.Context) bool {
	var cursor uint64
	for range 100 { // at most 100 steps of 1,000 keys
		keys, next, err := b.c.Scan(ctx, cursor, b.prefix+"c:*", 1000).Result()
		if err != nil || len(keys) > 0 {
			return len(keys) > 0
		}
		if cursor = next; cursor == 0 {
			return false
		}
	}
	return false
}

// stateCheckInterval is how often a replica checks that Redis still holds
// stellwerk's state marker: one round trip, off the request path.
const stateCheckInterval = 10 * time.Second

// watchState keeps a marker key in Redis and says when it is gone: Redis
// restarted without persistence, flushed or evicted its keys, and every
// budget's period silently restarted from zero (the upgrade helper found
// nothing said so). One replica of a fleet finds it gone and says so.
func (b *redisBackend) watchState(stop <-chan struct{}, every time.Duration, log *zap.Logger) {
	if log == nil {
		log = zap.NewNop()
	}
	key := b.prefix + "state"
	seen := "" // the marker's value as this replica last read it: when it was made
	check := func(first bool) {
		ctx, cancel := context.WithTimeout(context.Background(), every)
		defer cancel()
		var setnx *redis.BoolCmd
		var get *redis.StringCmd
		_, err := b.c.Pipelined(ctx, func(p redis.Pipeliner) error {
			setnx = p.SetNX(ctx, key, time.Now().UTC().Format(time.RFC3339Nano), 0)
			get = p.Get(ctx, key)
			return nil
		})
		if f := b.onCheck.Load(); f != nil {
			(*f)(err)
		}
		if err != nil {
			return // Redis down: the requests' refusals and warnings say it
		}
		created, made := setnx.Val(), get.Val()
		switch {
		case created && first && b.hasCounters(ctx):
			// A Redis an older stellwerk (without the marker) kept: the
			// counters are there; it said "start from zero" on every
			// upgrade (the operator probe).
			log.Info("Redis holds budget and rate-limit counters without stellwerk's state marker (written by an older version): they are kept, and the marker is set now")
		case created && first:
			log.Info("Redis held no stellwerk state: budgets and rate limits start from zero (a new deployment, or a Redis that lost its data)")
		case created || (seen != "" && made != seen):
			// Made anew: by this replica, or by another since this one
			// last looked (the fleet probe: only the replica that made
			// it said so).
			b.lostAt.Store(time.Now().UnixMilli())
			log.Error("Redis lost stellwerk's state (restarted without persistence, flushed or evicted): every budget's period restarted from zero; "+
				"the spend ledger still has every charge, and the budgets are raised to it again (docs/budgets.md, failure behaviour)", zap.String("state_made", made))
			if f := b.onLost.Load(); f != nil {
				go (*f)()
			}
		}
		seen = made
	}
	check(true)
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-stop:
			return
		case <-t.C:
			check(false)
		}
	}
}

// redisLogger writes go-redis's own lines (a dial that failed, a pool
// error) to stellwerk's log at debug level, as JSON like every other line:
// they went to stderr as plain text, 20 in 15 s of an outage, and broke the
// log shipper's parser (the observability probe). stellwerk's own
// warnings say when Redis is down.
type redisLogger struct{ log *zap.Logger }

func (r redisLogger) Printf(_ context.Context, format string, v ...any) {
	if ce := r.log.Check(zap.DebugLevel, "redis client"); ce != nil {
		ce.Write(zap.String("detail", fmt.Sprintf(format, v...)))
	}
}
