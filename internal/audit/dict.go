package audit

import (
	"context"
	"crypto/sha256"
	"database/sql"
	"encoding/hex"
	"errors"
	"sync"
	"time"

	"github.com/klauspost/compress/s2"
	"github.com/tidwall/gjson"
)

// Records are compressed against a dictionary (schema version 4): S2 on
// its own finds the repetition inside one record, but most of a
// decision's record on the shipped catalog repeats the records before it
// — the model, provider and residency columns, the rejected models'
// reasons, the member names — so a dictionary made from a recent decision
// takes a stored record from ~5 KB to ~1–2.5 KB at the same compression
// cost (docs/audit.md#figures), and it then fits a SQLite page without an
// overflow chain.
//
// A writer's store makes a dictionary from the first decision record it
// appends and replaces it after dictMaxAge (a catalog or a policy changed
// meanwhile compresses less well, never wrongly). The dictionary is kept
// in audit_dictionaries under its id, written in the transaction of the
// first batch that uses it, and each row names its dictionary in
// body_dict. The hashes cover the uncompressed record, so a dictionary
// lost or altered makes its records fail verification (modified), never
// read as something else unnoticed.
//
// A dictionary is kept as long as the store: it is not a record and
// retention does not reach it, so it holds none of what identifies a
// request or its caller. It is made of the members listed in dictMembers
// (the candidate table, the classification, the versions, the outcome),
// never of the record's id, time, workspace, principal, request,
// per-request policy, or the replay's headers, user, metadata and
// principal (TestDictionaryHoldsNoIdentity).

// dictMaxAge is how long a writer's store compresses with one dictionary.
const dictMaxAge = time.Hour

// dictMembers are the members of a decision record a dictionary is made
// of: each is written as `"name":value`, as it stands in the record.
var dictMembers = []string{"v", "kind", "classification", "versions", "objective", "candidates", "chosen", "served",
	"provider", "reason", "fallbacks", "attempts", "usage", "cost", "status",
	"replay.v", "replay.path", "replay.model", "replay.messages", "replay.classification", "replay.latency_ms",
	"replay.quality", "replay.cooling", "replay.cooling_models", "replay.no_credential"}

// dictionary is one dictionary: its id (the first 16 hex digits of the
// SHA-256 of its stored form) and its stored form (s2.Dict.Bytes).
type dictionary struct {
	id     string
	d      *s2.Dict
	stored []byte
	made   time.Time
	// written: a committed transaction holds its row.
	written bool
}

// newDictionary makes a dictionary from a decision record's body; nil
// when the record has too little of dictMembers to be one.
func newDictionary(body []byte, now time.Time) *dictionary {
	if !gjson.ValidBytes(body) {
		return nil
	}
	var raw []byte
	for _, m := range dictMembers {
		v := gjson.GetBytes(body, m)
		if !v.Exists() {
			continue
		}
		name := m
		if i := len("replay."); len(m) > i && m[:i] == "replay." {
			name = m[i:]
		}
		raw = append(raw, '"')
		raw = append(raw, name...)
		raw = append(raw, '"', ':')
		raw = append(raw, v.Raw...)
		raw = append(raw, ',')
	}
	d := s2.MakeDict(raw, []byte(`{"v":`))
	if d == nil {
		return nil
	}
	stored := d.Bytes()
	return &dictionary{id: dictionaryID(stored), d: d, stored: stored, made: now}
}

func dictionaryID(stored []byte) string {
	sum := sha256.Sum256(stored)
	return hex.EncodeToString(sum[:8])
}

// dicts is a store's dictionaries: the one its appends compress with, and
// those its reads have needed.
type dicts struct {
	mu   sync.Mutex
	cur  *dictionary
	read map[string]*s2.Dict // nil value: no such dictionary (or a damaged one)
	now  func() time.Time    // time.Now; tests move it
}

// maxReadDicts bounds the dictionaries a store keeps for reading (about
// 15 KB each); past it the cache starts over.
const maxReadDicts = 64

// forAppend is the dictionary a batch is compressed with: the current
// one, a new one made from the batch's first decision record when there
// is none or it is older than dictMaxAge, or nil (no decision record to
// make one from: the batch is compressed without).
func (ds *dicts) forAppend(es []Entry) *dictionary {
	ds.mu.Lock()
	defer ds.mu.Unlock()
	now := time.Now()
	if ds.now != nil {
		now = ds.now()
	}
	if ds.cur != nil && now.Sub(ds.cur.made) >= dictMaxAge {
		ds.cur = nil
	}
	if ds.cur == nil {
		for i := range es {
			if !es[i].Pruned && es[i].Kind == KindDecision {
				ds.cur = newDictionary(es[i].Body, now)
				break
			}
		}
	}
	return ds.cur
}

// needsRow says whether an append with d must write d's row.
func (ds *dicts) needsRow(d *dictionary) bool {
	ds.mu.Lock()
	defer ds.mu.Unlock()
	return !d.written
}

// wrote notes that a committed transaction holds d's row.
func (ds *dicts) wrote(d *dictionary) {
	ds.mu.Lock()
	d.written = true
	ds.mu.Unlock()
}

// get returns the dictionary id names for reading, from the cache or the
// store; nil when the store has none under that id or its row does not
// match the id (its records then read as unreadable).
func (ds *dicts) get(ctx context.Context, db *sql.DB, id string) (*s2.Dict, error) {
	ds.mu.Lock()
	d, ok := ds.read[id]
	cur := ds.cur
	ds.mu.Unlock()
	if ok {
		return d, nil
	}
	if cur != nil && cur.id == id {
		return cur.d, nil
	}
	var stored []byte
	err := db.QueryRowContext(ctx, `SELECT body FROM audit_dictionaries WHERE id = $1`, id).Scan(&stored)
	switch {
	case errors.Is(err, sql.ErrNoRows):
		d = nil
	case err != nil:
		return nil, err
	case dictionaryID(stored) != id:
		d = nil
	default:
		d = s2.NewDict(stored)
	}
	ds.mu.Lock()
	if ds.read == nil || len(ds.read) >= maxReadDicts {
		ds.read = make(map[string]*s2.Dict)
	}
	ds.read[id] = d
	ds.mu.Unlock()
	return d, nil
}
