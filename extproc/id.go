package extproc

import (
	"crypto/rand"
	"encoding/binary"
	"encoding/hex"
	"time"
)

// NewDecisionID returns a 32-hex-digit id whose first 12 digits are the Unix
// time in milliseconds, so ids sort by time in logs and the audit trail, and
// whose rest is random.
func NewDecisionID() string {
	var b [16]byte
	var ts [8]byte
	binary.BigEndian.PutUint64(ts[:], uint64(time.Now().UnixMilli()))
	copy(b[:6], ts[2:])
	_, _ = rand.Read(b[6:]) // crypto/rand never fails on supported platforms
	var h [32]byte          // on the stack: one allocation, the string's
	hex.Encode(h[:], b[:])
	return string(h[:])
}
