package audit

import (
	"crypto/sha256"
	"encoding/hex"
	"strconv"
	"time"
)

// Entry is a record as the chain holds it: the record's JSON (Body, the
// exact bytes hashed) and the columns the store indexes, linked to the
// writer's previous entry.
//
//	body_sha256 = SHA-256(Body)
//	leaf        = SHA-256("stellwerk.audit.leaf.v1" 0 writer 0 seq 0 time_us 0 kind 0 workspace 0 id 0 body_sha256)
//	hash        = SHA-256("stellwerk.audit.link.v1" 0 prev 0 leaf)
//
// with 0 a zero byte, numbers in decimal, hashes in lower-case hex, and
// prev the hash of the writer's entry seq-1 ("" for seq 1). The leaf binds
// the indexed columns to the body; the link binds the entry to its place in
// the chain. An export can show an entry of another workspace as its leaf
// alone: the chain still verifies, and the leaf reveals nothing.
type Entry struct {
	Writer     string
	Seq        uint64
	Time       time.Time // microsecond precision, UTC
	Kind       string
	Workspace  string
	ID         string
	Prev       string
	BodySHA256 string
	Hash       string
	// Body is the record's JSON; nil when retention removed it (Pruned).
	Body   []byte
	Pruned bool
	// NoDict names the dictionary the body is compressed against when the
	// store does not have it (Body is nil): verification says so rather
	// than that the record was edited.
	NoDict string
	// key is the record's principal.key_id when keyed (the log sets it as
	// it encodes the record); the store reads it from Body otherwise (a
	// spooled or copied entry).
	key   string
	keyed bool
	// Leaf is set instead of the columns and body for an entry an export
	// shows only as a link (LinkOnly).
	Leaf     string
	LinkOnly bool
}

const (
	leafDomain       = "stellwerk.audit.leaf.v1"
	linkDomain       = "stellwerk.audit.link.v1"
	checkpointDomain = "stellwerk.audit.checkpoint.v1"
)

// TimeUS is how times are kept in the store and hashed: Unix microseconds.
func TimeUS(t time.Time) int64 { return t.UnixMicro() }

// FromUS is the inverse of TimeUS.
func FromUS(us int64) time.Time { return time.UnixMicro(us).UTC() }

// hexSum is the lower-case hex SHA-256 of b.
func hexSum(b []byte) string {
	s := sha256.Sum256(b)
	var h [2 * sha256.Size]byte // on the stack: one allocation, the string's
	hex.Encode(h[:], s[:])
	return string(h[:])
}

// ComputeLeaf is the entry's leaf hash from its columns and body hash.
func (e *Entry) ComputeLeaf() string { return e.leafAt(e.Seq) }

func (e *Entry) leafAt(seq uint64) string {
	if e.LinkOnly {
		return e.Leaf
	}
	b := make([]byte, 0, 256)
	b = append(b, leafDomain...)
	b = append(append(b, 0), e.Writer...)
	b = strconv.AppendUint(append(b, 0), seq, 10)
	b = strconv.AppendInt(append(b, 0), TimeUS(e.Time), 10)
	b = append(append(b, 0), e.Kind...)
	b = append(append(b, 0), e.Workspace...)
	b = append(append(b, 0), e.ID...)
	b = append(append(b, 0), e.BodySHA256...)
	return hexSum(b)
}

// Link is the chain hash of an entry with leaf after prev.
func Link(prev, leaf string) string {
	b := make([]byte, 0, len(linkDomain)+2+len(prev)+len(leaf))
	b = append(b, linkDomain...)
	b = append(append(b, 0), prev...)
	b = append(append(b, 0), leaf...)
	return hexSum(b)
}

// ComputeHash is the entry's chain hash from its fields.
func (e *Entry) ComputeHash() string { return Link(e.Prev, e.ComputeLeaf()) }

// seal fills the entry's hashes: body hash, then hash after prev.
func (e *Entry) seal(prev string) {
	e.Prev = prev
	e.BodySHA256 = hexSum(e.Body)
	e.Hash = e.ComputeHash()
}

// Checkpoint is a signed statement by a writer: "my entry seq has hash
// Hash", linked to the writer's previous checkpoint (Prev is its Digest).
// Seq 0 opens a writer's chain (Hash ""); its Prev is the last checkpoint
// of the replica's previous writer, when there was one, so a replica's
// boots form one sequence of checkpoints.
//
//	message = "stellwerk.audit.checkpoint.v1" 0 writer 0 seq 0 hash 0 prev 0 time_us 0 reason 0 key_id
//	digest  = SHA-256(message), signature = Ed25519(message)
type Checkpoint struct {
	Writer string
	Seq    uint64
	Hash   string
	Prev   string
	Time   time.Time
	// Reason is open, interval, shutdown or drain.
	Reason    string
	KeyID     string
	Signature []byte
	Digest    string
}

// Checkpoint reasons.
const (
	ReasonOpen     = "open"
	ReasonInterval = "interval"
	ReasonShutdown = "shutdown"
)

// Message is the checkpoint's signed bytes.
func (c *Checkpoint) Message() []byte {
	b := make([]byte, 0, 256)
	b = append(b, checkpointDomain...)
	b = append(append(b, 0), c.Writer...)
	b = strconv.AppendUint(append(b, 0), c.Seq, 10)
	b = append(append(b, 0), c.Hash...)
	b = append(append(b, 0), c.Prev...)
	b = strconv.AppendInt(append(b, 0), TimeUS(c.Time), 10)
	b = append(append(b, 0), c.Reason...)
	b = append(append(b, 0), c.KeyID...)
	return b
}
