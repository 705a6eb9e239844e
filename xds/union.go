package xds

// Union is what Envoy needs while requests decided under old may still be
// in flight and new requests are decided under next: every cluster, egress
// listener and secret of either (next's where both have one), and next's
// listener, routes and settings. A reload publishes it first, swaps the
// decision state once Envoy has applied it, and publishes next alone after
// a grace period: a provider removed from the config keeps its cluster
// until the requests sent its way are done (make before break).
func Union(old, next IR) IR {
	u := next
	u.Clusters = unionBy(next.Clusters, old.Clusters, func(c Cluster) string { return c.Name })
	u.Secrets = unionBy(next.Secrets, old.Secrets, func(s Secret) string { return s.Name })
	if next.Failover != nil && old.Failover != nil {
		f := *next.Failover
		f.Egress = unionBy(next.Failover.Egress, old.Failover.Egress, func(e Egress) string { return e.Listener })
		f.First = unionBy(next.Failover.First, old.Failover.First, func(fa FirstAttempt) string { return fa.Name })
		// A request decided before may retry as often as the old config let
		// it: its first-attempt cluster keeps a failover cluster per retry.
		f.MaxAttempts = max(f.MaxAttempts, old.Failover.MaxAttempts)
		u.Failover = &f
	}
	return u
}

// unionBy is next, then what old has that next does not (by key).
func unionBy[T any](next, old []T, key func(T) string) []T {
	have := make(map[string]bool, len(next))
	out := append(make([]T, 0, len(next)+len(old)), next...)
	for _, x := range next {
		have[key(x)] = true
	}
	for _, x := range old {
		if !have[key(x)] {
			out = append(out, x)
		}
	}
	return out
}

// Removes reports whether next drops a cluster, secret, egress listener,
// first-attempt cluster or retry's failover cluster that old has: only
// then does a reload need its second, removing step.
func Removes(old, next IR) bool {
	u := Union(old, next)
	n := next
	egress := func(ir IR) (int, int, int) {
		if ir.Failover == nil {
			return 0, 0, 0
		}
		return len(ir.Failover.Egress), len(ir.Failover.First), ir.Failover.MaxAttempts
	}
	ue, uf, um := egress(u)
	ne, nf, nm := egress(n)
	return len(u.Clusters) != len(n.Clusters) || len(u.Secrets) != len(n.Secrets) || ue != ne || uf != nf || um != nm
}
