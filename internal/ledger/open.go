package ledger

import (
	"context"
	"crypto/tls"
	"fmt"
	"strings"

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
		client := redis.NewClient(opts)
		b = &closingRedis{redisBackend: redisBackend{c: client, prefix: rc.Prefix}, client: client}
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

// closingRedis is the Redis backend that owns its client.
type closingRedis struct {
	redisBackend
	client *redis.Client
}

func (b *closingRedis) close(context.Context) error { return b.client.Close() }
