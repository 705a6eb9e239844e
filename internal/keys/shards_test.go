package keys

import (
	"fmt"
	"testing"
)

// TestShardsGrow: a table built one change at a time, from empty to 5,000
// keys (cut anew as it grows), and emptied again, finds every key it holds
// and no other, and each snapshot it made before is left as it was.
func TestShardsGrow(t *testing.T) {
	const n = 5000
	s := makeShards[string](0)
	var kept []shards[string]
	for i := range n {
		w := s.writer()
		id := fmt.Sprintf("k%d", i)
		w.set(id, idHash(id), &entry{p: newEntry(row{Key: Key{ID: id}}).p})
		s = w.done(idHash)
		if i%1000 == 0 {
			kept = append(kept, s)
		}
	}
	if s.n != n || len(s.m) < n/(reshardAt*perShard) {
		t.Fatalf("%d entries in %d shards", s.n, len(s.m))
	}
	for i := range n {
		id := fmt.Sprintf("k%d", i)
		if e := s.get(id, idHash(id)); e == nil || e.p.KeyID != id {
			t.Fatalf("%s: %v", id, e)
		}
	}
	for j, old := range kept {
		if want := j*1000 + 1; old.n != want || old.get(fmt.Sprintf("k%d", want), idHash(fmt.Sprintf("k%d", want))) != nil {
			t.Errorf("snapshot %d changed: %d entries, want %d", j, old.n, want)
		}
	}
	for i := range n {
		w := s.writer()
		id := fmt.Sprintf("k%d", i)
		w.del(id, idHash(id))
		w.del(id, idHash(id))
		s = w.done(idHash)
		if s.get(id, idHash(id)) != nil {
			t.Fatalf("%s still there", id)
		}
	}
	if s.n != 0 {
		t.Errorf("%d entries left", s.n)
	}
}
