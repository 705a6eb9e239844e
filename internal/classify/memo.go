package classify

import (
	"crypto/sha256"
	"encoding/binary"
	"sync"
	"sync/atomic"
	"unsafe"

	"github.com/stellwerk/stellwerk/internal/classify/injection"
	"github.com/stellwerk/stellwerk/internal/classify/pii"
	"github.com/stellwerk/stellwerk/internal/classify/secrets"
	"github.com/stellwerk/stellwerk/internal/classify/task"
)

// A conversation resends its history with every turn, an agent its tool
// definitions with every call, an application its system prompt with
// every request: without a memo, turn n of a chat scans every earlier turn
// again, so a conversation's classification costs the square of its
// length. The memo keeps what the per-segment detectors found in a text
// (its tokens, secrets, personal data, term counts and injection score),
// and a system prompt as the task model reads it, under the SHA-256 of the
// caller's scope and the text, so a text seen before is looked up instead
// of scanned.
//
// What it keeps and why it is safe:
//   - Never the text: a key is a SHA-256 digest, a value is positions and
//     counts, as the Result's findings are. A collision would hand one
//     text another's findings (a secret read as clean), so the digest is
//     cryptographic.
//   - Scoped per caller (Request.Workspace and Key): whether a text
//     was seen is a timing signal, a hit costs microseconds where a scan
//     costs tens of them, and one key must not learn what another sent.
//   - Only texts of memoMinBytes or more: below that the scan costs about
//     what hashing and the lookup do.
//   - The newest message is not looked up: a caller sends it for the first
//     time (a retry aside). It is scanned and remembered, to be found when
//     the next turn resends it. So a single-turn request pays the digest
//     and one insertion, about 1 µs for 2 KB, and nothing is answered from
//     the memo that the caller did not send before.
//   - Bounded: two generations of at most memoGeneration entries each; when
//     the current one is full it becomes the old one and the old one is
//     dropped. An entry found in the old generation moves to the current,
//     so what is in use stays.
//
// A memo belongs to one Classifier: a config reload builds a new one, so
// term lists that changed are never answered from the old counts.

const (
	memoMinBytes   = 256
	memoGeneration = 4096
)

// memoLooked and memoFound count, over the process's life and every
// classifier, the texts looked up in a memo and those found (MemoStats).
var memoLooked, memoFound atomic.Uint64

// MemoStats returns how many texts the classifiers looked up in their memo
// and how many they found there, since the process started: the share of
// request text that was not scanned again (/metrics).
func MemoStats() (looked, found uint64) { return memoLooked.Load(), memoFound.Load() }

// segmentFacts is what the per-segment detectors found in one text.
type segmentFacts struct {
	tokens  int
	terms   []int // per configured term list; nil without term lists
	secrets []secrets.Match
	pii     []pii.Match
	// inj is the injection score, computed the first time a segment of
	// this text is scored (system, assistant and tool-definition text is
	// not).
	inj     injection.Result
	injDone bool
	// system is the text read as a system prompt (an entry of kindSystem,
	// which has nothing else).
	system *task.System
}

type memoKey [sha256.Size]byte

type segmentMemo struct {
	mu       sync.Mutex
	cur, old map[memoKey]*segmentFacts
	hits     uint64 // lookups answered (tests)
}

func newSegmentMemo() *segmentMemo {
	return &segmentMemo{cur: make(map[memoKey]*segmentFacts, memoGeneration)}
}

// What a memo entry holds: a segment's findings, or a system prompt as the
// task model reads it. The kind is part of the key.
const (
	kindSegment byte = iota
	kindSystem
)

// memoKeyOf is the digest of the kind, the caller and the text: SHA-256
// of the kind, the workspace and key each after its length, and the
// text's own SHA-256, so that no kind, caller and text read as others and
// the text is hashed in place.
func memoKeyOf(kind byte, workspace, key, text string) memoKey {
	inner := sha256.Sum256(unsafe.Slice(unsafe.StringData(text), len(text)))
	var buf [1 + 4 + 32 + 4 + 32 + sha256.Size]byte
	b := append(buf[:0], kind)
	b = binary.BigEndian.AppendUint32(b, uint32(len(workspace)))
	b = append(b, workspace...)
	b = binary.BigEndian.AppendUint32(b, uint32(len(key)))
	b = append(b, key...)
	b = append(b, inner[:]...)
	return memoKey(sha256.Sum256(b))
}

// systemKeyOf is the key of a system prompt that is one segment, derived
// from that segment's key (which names the kind, the caller and the text)
// so that the text is hashed once per request. Its input, the kind and
// 32 bytes, is shorter than any memoKeyOf input.
func systemKeyOf(segment memoKey) memoKey {
	var b [1 + sha256.Size]byte
	b[0] = kindSystem
	copy(b[1:], segment[:])
	return memoKey(sha256.Sum256(b[:]))
}

func (m *segmentMemo) get(k memoKey) *segmentFacts {
	m.mu.Lock()
	defer m.mu.Unlock()
	f := m.cur[k]
	if f == nil {
		if f = m.old[k]; f != nil {
			delete(m.old, k)
			m.putLocked(k, f)
		}
	}
	if f != nil {
		m.hits++
	}
	return f
}

func (m *segmentMemo) put(k memoKey, f *segmentFacts) {
	m.mu.Lock()
	m.putLocked(k, f)
	m.mu.Unlock()
}

func (m *segmentMemo) putLocked(k memoKey, f *segmentFacts) {
	if _, ok := m.cur[k]; !ok && len(m.cur) >= memoGeneration {
		m.old, m.cur = m.cur, make(map[memoKey]*segmentFacts, memoGeneration)
	}
	m.cur[k] = f
}

// len is the number of texts remembered (tests).
func (m *segmentMemo) len() int {
	m.mu.Lock()
	defer m.mu.Unlock()
	return len(m.cur) + len(m.old)
}

// lookup returns what the memo holds for the caller's text (read only), nil
// when the text is too short to be remembered, was not seen or (resent
// false) is not looked for; k is its key for remember. inj asks for the
// injection score: a remembered text that was never scored is scored now,
// and remembered so.
func (c *Classifier) lookup(req *Request, text string, inj, resent bool) (*segmentFacts, memoKey) {
	var k memoKey
	if c.memo == nil || len(text) < memoMinBytes {
		return nil, k
	}
	k = memoKeyOf(kindSegment, req.Workspace, req.Key, text)
	if !resent {
		return nil, k
	}
	memoLooked.Add(1)
	f := c.memo.get(k)
	if f != nil {
		memoFound.Add(1)
	}
	if f != nil && inj && !f.injDone {
		g := *f
		g.inj, g.injDone = injection.Score(text), true
		c.memo.put(k, &g)
		f = &g
	}
	return f, k
}

// remember keeps a copy of what the detectors found in a text of at least
// memoMinBytes under its key. It takes the findings apart, not as a
// segmentFacts: escape analysis does not tell a struct's fields apart, and
// the caller's stack buffers behind the slices must not go to the heap.
func (c *Classifier) remember(k memoKey, text string, tokens int, terms []int, sec []secrets.Match, found []pii.Match, inj injection.Result, injDone bool) {
	if c.memo == nil || len(text) < memoMinBytes {
		return
	}
	g := &segmentFacts{tokens: tokens, inj: inj, injDone: injDone}
	if len(terms) > 0 {
		g.terms = make([]int, len(terms))
		copy(g.terms, terms)
	}
	if len(sec) > 0 {
		g.secrets = make([]secrets.Match, len(sec))
		copy(g.secrets, sec)
	}
	if len(found) > 0 {
		g.pii = make([]pii.Match, len(found))
		copy(g.pii, found)
	}
	c.memo.put(k, g)
}

// readSystem is the system prompt as the task model reads it (its first
// 4 KB's features): from the memo when the caller sent the same prompt
// before, as an application does with every request. segment is the memo
// key of the prompt's one segment, nil when it joins several.
func (c *Classifier) readSystem(req *Request, system string, segment *memoKey) task.System {
	if c.memo == nil || len(system) < memoMinBytes {
		return task.ReadSystem(system)
	}
	var k memoKey
	if segment != nil {
		k = systemKeyOf(*segment)
	} else {
		k = memoKeyOf(kindSystem, req.Workspace, req.Key, system)
	}
	memoLooked.Add(1)
	if f := c.memo.get(k); f != nil && f.system != nil {
		memoFound.Add(1)
		return *f.system
	}
	sys := task.ReadSystem(system)
	c.memo.put(k, &segmentFacts{system: &sys})
	return sys
}
