// Package audittest edits stored audit records the way an attacker with
// write access to the state database would, for tests that check that
// verification finds it: records are stored compressed (audit's putBody),
// most against a dictionary (body_dict), so a text REPLACE in SQL no
// longer reaches their content.
package audittest

import (
	"bytes"
	"context"
	"database/sql"
	"testing"

	"github.com/klauspost/compress/s2"

	"github.com/stellwerk/stellwerk/internal/store"
)

// EditBody replaces old with new in the stored record of every row of
// audit_entries that matches where (its parameters are args, from $1),
// stores it back in the same form, and returns how many records changed.
func EditBody(t testing.TB, db *store.DB, old, new, where string, args ...any) int {
	t.Helper()
	ctx := context.Background()
	rows, err := db.SQL.QueryContext(ctx, `SELECT writer, seq, body, body_s2, body_dict FROM audit_entries WHERE `+where, args...)
	if err != nil {
		t.Fatalf("edit body: %v", err)
	}
	type row struct {
		writer string
		seq    int64
		col    string
		val    any
	}
	var edits []row
	for rows.Next() {
		var r row
		var text, dictID sql.NullString
		var z []byte
		if err := rows.Scan(&r.writer, &r.seq, &text, &z, &dictID); err != nil {
			t.Fatalf("edit body: %v", err)
		}
		switch {
		case z != nil:
			decode, encode := s2.Decode, s2.Encode
			if dictID.Valid {
				var stored []byte
				if err := db.SQL.QueryRowContext(ctx, `SELECT body FROM audit_dictionaries WHERE id = $1`, dictID.String).Scan(&stored); err != nil {
					t.Fatalf("edit body: dictionary %s: %v", dictID.String, err)
				}
				d := s2.NewDict(stored)
				decode, encode = d.Decode, d.Encode
			}
			b, err := decode(nil, z)
			if err != nil {
				t.Fatalf("edit body: %v", err)
			}
			if e := bytes.ReplaceAll(b, []byte(old), []byte(new)); !bytes.Equal(e, b) {
				r.col, r.val = "body_s2", encode(nil, e)
				edits = append(edits, r)
			}
		case text.Valid:
			if e := bytes.ReplaceAll([]byte(text.String), []byte(old), []byte(new)); string(e) != text.String {
				r.col, r.val = "body", string(e)
				edits = append(edits, r)
			}
		}
	}
	if err := rows.Err(); err != nil {
		t.Fatalf("edit body: %v", err)
	}
	rows.Close()
	for _, r := range edits {
		if _, err := db.SQL.ExecContext(ctx, `UPDATE audit_entries SET `+r.col+` = $1 WHERE writer = $2 AND seq = $3`, r.val, r.writer, r.seq); err != nil {
			t.Fatalf("edit body: %v", err)
		}
	}
	return len(edits)
}
