package xds

import "testing"

// TestUnionKeepsWhatInFlightRequestsNeed: the union has next's clusters,
// secrets and egress listeners and old's that next dropped; next wins where
// both have one, and translating it succeeds.
func TestUnionKeepsWhatInFlightRequestsNeed(t *testing.T) {
	old := testIR(t)
	next := testIR(t)
	// next drops the vllm provider and changes openai's connect timeout.
	next.Clusters = next.Clusters[:1]
	next.Clusters[0].ConnectTimeout = 9e9
	if next.Failover != nil {
		next.Failover = &Failover{MaxAttempts: next.Failover.MaxAttempts, AttemptTimeout: next.Failover.AttemptTimeout,
			MaxRequestBytes: next.Failover.MaxRequestBytes, Egress: next.Failover.Egress[:1]}
	}
	if !Removes(old, next) || Removes(next, old) {
		t.Fatalf("Removes: old→next %v, next→old %v", Removes(old, next), Removes(next, old))
	}
	u := Union(old, next)
	if len(u.Clusters) != len(old.Clusters) || u.Clusters[0].ConnectTimeout != 9e9 || u.Clusters[1].Name != old.Clusters[1].Name {
		t.Errorf("clusters %+v", u.Clusters)
	}
	if next.Failover != nil && len(u.Failover.Egress) != len(old.Failover.Egress) {
		t.Errorf("egress %+v", u.Failover.Egress)
	}
	if _, err := Translate(u); err != nil {
		t.Fatal(err)
	}
}
