package testsrv

import "testing"

// TestRedisStartsAndStops: the helper gives a server that answers on
// loopback, and Stop takes it away (what the ledger's "Redis stopped
// mid-test" case relies on).
func TestRedisStartsAndStops(t *testing.T) {
	s := Redis(t)
	if err := ping(s.Addr); err != nil {
		t.Fatalf("PING %s: %v", s.Addr, err)
	}
	s.Stop()
	if err := ping(s.Addr); err == nil {
		t.Fatalf("%s still answers after Stop", s.Addr)
	}
	s.Stop() // idempotent
}
