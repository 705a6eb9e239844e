package health

import (
	"context"
	"encoding/json"
	"errors"
	"time"

	"github.com/redis/go-redis/v9"
)

// Redis shares cooldowns through Redis (state.redis): each is a key that
// expires when its reopening ends, for replicas that start later, and a
// message on a channel, for those running.
type Redis struct {
	c      redis.UniversalClient
	prefix string
}

var _ Backend = (*Redis)(nil)

// NewRedis shares through c, under the key prefix (state.redis.prefix).
func NewRedis(c redis.UniversalClient, prefix string) *Redis { return &Redis{c: c, prefix: prefix} }

func (r *Redis) channel() string { return r.prefix + "cooldowns" }

func (r *Redis) key(c Cooldown) string {
	kind := "outage"
	switch {
	case c.Credential != "":
		// One key per credential: a refusal of the old one does not
		// overwrite the new one's.
		kind = "credential:" + c.Credential
	case c.RateLimit:
		kind = "rate_limit"
	}
	// Provider and workspace names cannot hold '|'; a model id is last.
	return r.prefix + "cooldown:" + kind + "|" + c.Provider + "|" + c.Workspace + "|" + c.Model
}

// Publish implements Backend.
func (r *Redis) Publish(ctx context.Context, c Cooldown) error {
	b, err := json.Marshal(c)
	if err != nil {
		return err
	}
	ttl := time.Until(c.ReopenedBy)
	if ttl <= 0 {
		return nil
	}
	pipe := r.c.TxPipeline()
	pipe.Set(ctx, r.key(c), b, ttl)
	pipe.Publish(ctx, r.channel(), b)
	_, err = pipe.Exec(ctx)
	return err
}

// Follow implements Backend. It subscribes before it reads the keys in
// force, so nothing published in between is missed.
func (r *Redis) Follow(ctx context.Context, apply func(Cooldown)) error {
	sub := r.c.Subscribe(ctx, r.channel())
	defer sub.Close()
	if _, err := sub.Receive(ctx); err != nil { // the subscription's confirmation
		return err
	}
	var cursor uint64
	for {
		keys, next, err := r.c.Scan(ctx, cursor, r.prefix+"cooldown:*", 100).Result()
		if err != nil {
			return err
		}
		for _, k := range keys {
			b, err := r.c.Get(ctx, k).Bytes()
			if errors.Is(err, redis.Nil) {
				continue // expired meanwhile
			}
			if err != nil {
				return err
			}
			var c Cooldown
			if json.Unmarshal(b, &c) == nil {
				apply(c)
			}
		}
		if cursor = next; cursor == 0 {
			break
		}
	}
	ch := sub.Channel()
	for {
		select {
		case <-ctx.Done():
			return nil
		case m, ok := <-ch:
			if !ok {
				return errors.New("redis subscription closed")
			}
			var c Cooldown
			if json.Unmarshal([]byte(m.Payload), &c) == nil { // another version's message: skipped
				apply(c)
			}
		}
	}
}
