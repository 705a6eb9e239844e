package keys

import (
	"encoding/binary"
	"hash/maphash"
	"maps"
	"math/bits"
	"slices"
)

// shards is a map cut into a power-of-two number of maps by a hash of
// the key, so that a snapshot after a change copies only the maps the
// change touches: with one map, each key created copied all of them
// (7 ms of CPU a key at 50,000 keys, on every replica). A lookup is one
// slice index and one map read. A shards value is never written once a
// snapshot holds it; a shardWriter makes the next one.
type shards[K comparable] struct {
	m []map[K]*entry
	n int
}

// perShard is how many entries a shard holds when its shards are made
// (makeShards); they grow to reshardAt times that before the table is cut
// anew. A change copies one or two shards of at most that many.
const (
	perShard  = 64
	reshardAt = 4
)

func makeShards[K comparable](n int) shards[K] {
	c := 1
	if n > perShard {
		c = 1 << bits.Len(uint(n/perShard))
	}
	s := shards[K]{m: make([]map[K]*entry, c)}
	for i := range s.m {
		s.m[i] = make(map[K]*entry, n/c+1)
	}
	return s
}

func (s shards[K]) get(k K, h uint64) *entry { return s.m[h&uint64(len(s.m)-1)][k] }

func (s shards[K]) each(f func(*entry)) {
	for _, m := range s.m {
		for _, e := range m {
			f(e)
		}
	}
}

// shardWriter makes the next shards from a snapshot's: it copies the list
// of shards, and each shard the first time it writes to it.
type shardWriter[K comparable] struct {
	shards[K]
	own []bool
}

func (s shards[K]) writer() *shardWriter[K] {
	return &shardWriter[K]{shards: shards[K]{m: slices.Clone(s.m), n: s.n}, own: make([]bool, len(s.m))}
}

func (w *shardWriter[K]) shard(h uint64) map[K]*entry {
	i := h & uint64(len(w.m)-1)
	if !w.own[i] {
		w.m[i], w.own[i] = maps.Clone(w.m[i]), true
	}
	return w.m[i]
}

func (w *shardWriter[K]) set(k K, h uint64, e *entry) {
	m := w.shard(h)
	if _, ok := m[k]; !ok {
		w.n++
	}
	m[k] = e
}

func (w *shardWriter[K]) del(k K, h uint64) {
	if w.get(k, h) == nil {
		return
	}
	delete(w.shard(h), k)
	w.n--
}

// done is the new shards, cut anew when they outgrew theirs: copying
// every entry, once each time the table quadrupled.
func (w *shardWriter[K]) done(hash func(K) uint64) shards[K] {
	if w.n <= reshardAt*perShard*len(w.m) {
		return w.shards
	}
	s := makeShards[K](w.n)
	for _, m := range w.m {
		for k, e := range m {
			s.m[hash(k)&uint64(len(s.m)-1)][k] = e
		}
	}
	s.n = w.n
	return s
}

// digestHash places a digest: its first bytes, an HMAC's output, are
// uniform, and no client chooses them.
func digestHash(d Digest) uint64 { return binary.LittleEndian.Uint64(d[:8]) }

var idSeed = maphash.MakeSeed()

func idHash(id string) uint64 { return maphash.String(idSeed, id) }

// newShardWriter writes new shards sized for n entries, copying nothing.
func newShardWriter[K comparable](n int) *shardWriter[K] {
	w := &shardWriter[K]{shards: makeShards[K](n)}
	w.own = make([]bool, len(w.m))
	for i := range w.own {
		w.own[i] = true
	}
	return w
}
