package health

import (
	"testing"
	"time"
)

var t0 = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)

// clock returns a tracker on a test clock and a way to move it.
func clock(p Policy) (*Tracker, *time.Time) {
	now := t0
	tr := New(p)
	tr.now = func() time.Time { return now }
	return tr, &now
}

func TestCooldowns(t *testing.T) {
	tr, now := clock(Policy{FailuresBeforeCooldown: 3, Cooldown: 30 * time.Second, MaxCooldown: 5 * time.Minute})
	a := Target{Provider: "a", Model: "a-mini"}

	// A run of failures, broken by a success, does not cool down.
	tr.Failed(a, "status 503", 0)
	tr.Failed(a, "status 503", 0)
	tr.Succeeded(a)
	if tr.Failed(a, "status 503", 0) {
		t.Fatal("cooling after one failure since the last success")
	}
	tr.Failed(a, "status 503", 0)
	if !tr.Failed(a, "status 500", 0) {
		t.Fatal("not cooling after 3 consecutive failures")
	}
	until, reason, ok := tr.Cooling("a")
	if !ok || !until.Equal(now.Add(30*time.Second)) || reason != "status 500" {
		t.Errorf("cooling %v %v %q", ok, until, reason)
	}
	if tr.Admits(Target{Provider: "a", Model: "a-large"}, *now, 0) {
		t.Error("an outage cools every model of the provider")
	}
	if tr.Admits(Target{Provider: "a", Model: "a-large", Workspace: "legal"}, *now, 0) {
		t.Error("an outage cools the provider for a workspace's own key too")
	}
	*now = now.Add(31 * time.Second)
	if _, _, ok := tr.Cooling("a"); ok {
		t.Error("still cooling after the cooldown")
	}

	// Retry-After cools down at once, capped by MaxCooldown.
	b := Target{Provider: "b"}
	if !tr.Failed(b, "status 503", time.Hour) {
		t.Fatal("Retry-After did not cool down")
	}
	if until, reason, _ := tr.Cooling("b"); !until.Equal(now.Add(5*time.Minute)) || reason != "status 503, Retry-After 1h0m0s" {
		t.Errorf("capped cooldown %v %q", until, reason)
	}
	// A shorter Retry-After does not shorten a cooldown in force.
	tr.Failed(b, "status 503", time.Second)
	if until, _, _ := tr.Cooling("b"); !until.Equal(now.Add(5 * time.Minute)) {
		t.Errorf("cooldown shortened to %v", until)
	}
	if got := tr.Snapshot(); len(got) != 2 || got[0].Provider != "a" || got[1].Provider != "b" || got[1].CoolingUntil.IsZero() {
		t.Errorf("snapshot %+v", got)
	}
	var nilTracker *Tracker
	if _, _, ok := nilTracker.Cooling("a"); ok || !nilTracker.Admits(a, *now, 0) {
		t.Error("a nil tracker cools down")
	}
}

// TestRateLimitScopes (issue 19): a 429 cools the model alone at a provider
// that limits per model, the whole provider at one that limits as a whole,
// and only ever for the credential that hit the limit: a workspace's own
// key and the shared key have limits of their own.
func TestRateLimitScopes(t *testing.T) {
	tests := map[string]struct {
		hit        Target
		cooled     []Target
		notCooled  []Target
		statusRows int
	}{
		"per model, shared key": {
			hit:       Target{Provider: "openai", Model: "gpt-4o", PerModel: true},
			cooled:    []Target{{Provider: "openai", Model: "gpt-4o"}},
			notCooled: []Target{{Provider: "openai", Model: "gpt-4o-mini"}, {Provider: "openai", Model: "gpt-4o", Workspace: "legal"}, {Provider: "other", Model: "gpt-4o"}},
		},
		"per provider, shared key": {
			hit:       Target{Provider: "mistral", Model: "small"},
			cooled:    []Target{{Provider: "mistral", Model: "small"}, {Provider: "mistral", Model: "large"}},
			notCooled: []Target{{Provider: "mistral", Model: "large", Workspace: "legal"}},
		},
		"per model, a workspace's own key": {
			hit:       Target{Provider: "openai", Model: "gpt-4o", Workspace: "legal", PerModel: true},
			cooled:    []Target{{Provider: "openai", Model: "gpt-4o", Workspace: "legal"}},
			notCooled: []Target{{Provider: "openai", Model: "gpt-4o"}, {Provider: "openai", Model: "gpt-4o", Workspace: "sales"}, {Provider: "openai", Model: "gpt-4o-mini", Workspace: "legal"}},
		},
		"per provider, a workspace's own key": {
			hit:       Target{Provider: "mistral", Model: "small", Workspace: "legal"},
			cooled:    []Target{{Provider: "mistral", Model: "large", Workspace: "legal"}},
			notCooled: []Target{{Provider: "mistral", Model: "small"}, {Provider: "mistral", Model: "small", Workspace: "sales"}},
		},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			tr, now := clock(Policy{FailuresBeforeCooldown: 3, Cooldown: 30 * time.Second, MaxCooldown: 5 * time.Minute})
			if !tr.RateLimited(tc.hit, "rate limited (429)", 20*time.Second) {
				t.Fatal("a 429 with Retry-After did not cool down")
			}
			for _, c := range tc.cooled {
				if tr.Admits(c, *now, 0) {
					t.Errorf("%+v is admitted during the cooldown", c)
				}
			}
			for _, c := range tc.notCooled {
				if !tr.Admits(c, *now, 0) {
					t.Errorf("%+v is cooled by another scope's 429", c)
				}
			}
			if _, _, ok := tr.Cooling(tc.hit.Provider); ok {
				t.Error("a rate limit reads as the provider's outage")
			}
			if s := tr.Snapshot(); len(s) != 1 || s[0].Scope != ScopeRateLimit || s[0].Workspace != tc.hit.Workspace || (s[0].Model != "") != tc.hit.PerModel {
				t.Errorf("snapshot %+v", s)
			}
			*now = now.Add(21 * time.Second)
			for _, c := range tc.cooled {
				if !tr.Admits(c, *now, 0) {
					t.Errorf("%+v still cooled after Retry-After", c)
				}
			}
		})
	}
}

// TestRateLimitsDoNotCountAsOutages: a tenant's burst of 429s on its own key
// cools that key, never the provider for everyone else, however long the
// burst.
func TestRateLimitsDoNotCountAsOutages(t *testing.T) {
	tr, now := clock(Policy{FailuresBeforeCooldown: 3, Cooldown: 30 * time.Second, MaxCooldown: 5 * time.Minute})
	own := Target{Provider: "openai", Model: "gpt-4o", Workspace: "legal", PerModel: true}
	for range 50 {
		tr.RateLimited(own, "rate limited (429)", 0)
	}
	if tr.Admits(own, *now, 0) {
		t.Error("50 429s in a row did not cool the workspace's key")
	}
	shared := Target{Provider: "openai", Model: "gpt-4o", PerModel: true}
	if !tr.Admits(shared, *now, 0) || !tr.Admits(Target{Provider: "openai", Model: "gpt-4o", Workspace: "sales"}, *now, 0) {
		t.Error("one workspace's 429s cooled the provider for others")
	}
	// Nor do they add to the outage count: one 503 stays one failure.
	if tr.Failed(shared, "status 503", 0) {
		t.Error("429s counted towards the provider's outage")
	}
	for _, s := range tr.Snapshot() {
		if s.Scope == ScopeProvider && s.ConsecutiveFailures != 1 {
			t.Errorf("outage run %d, want 1", s.ConsecutiveFailures)
		}
	}
}

// TestGradualReopening (issue 19): after a cooldown, a growing share of
// requests is let through (the lowest draws first), all of them once the
// reopening is over; a failure while reopening starts the cooldown again.
func TestGradualReopening(t *testing.T) {
	tr, now := clock(Policy{FailuresBeforeCooldown: 1, Cooldown: 30 * time.Second, MaxCooldown: 5 * time.Minute, Reopen: time.Minute})
	a := Target{Provider: "a", Model: "m"}
	tr.Failed(a, "status 503", 0)
	share := func() float64 {
		n := 0
		for d := uint32(0); d < DrawRange; d += 64 {
			if tr.Admits(a, *now, d) {
				n++
			}
		}
		return float64(n) / float64(DrawRange/64)
	}
	if s := share(); s != 0 {
		t.Fatalf("during the cooldown %.2f of requests pass", s)
	}
	*now = t0.Add(30 * time.Second) // the cooldown ends
	first := share()
	if first < MinShare-0.01 || first > MinShare+0.01 {
		t.Errorf("as the cooldown ends %.3f pass, want %.2f", first, MinShare)
	}
	*now = t0.Add(60 * time.Second) // half-way through the reopening
	half := share()
	if half < 0.54 || half > 0.56 {
		t.Errorf("half-way %.3f pass, want 0.55", half)
	}
	if !tr.Admits(a, *now, 0) || tr.Admits(a, *now, DrawRange-1) {
		t.Error("the lowest draws are not the first let through")
	}
	if s := tr.Snapshot(); len(s) != 1 || !s[0].ReopenedBy.Equal(t0.Add(90*time.Second)) {
		t.Errorf("snapshot while reopening: %+v", s)
	}
	*now = t0.Add(90 * time.Second)
	if s := share(); s != 1 {
		t.Errorf("after the reopening %.3f pass", s)
	}

	// A success while reopening keeps it going; a failure cools again at once.
	tr2, now2 := clock(Policy{FailuresBeforeCooldown: 3, Cooldown: 30 * time.Second, MaxCooldown: 5 * time.Minute, Reopen: time.Minute})
	tr2.Failed(a, "status 503", 10*time.Second)
	*now2 = t0.Add(15 * time.Second)
	tr2.Succeeded(a)
	if !tr2.Admits(a, *now2, 0) {
		t.Fatal("a reopening scope turned away its first draws")
	}
	if !tr2.Failed(a, "status 503", 0) {
		t.Fatal("a failure while reopening did not cool down again (3 are needed otherwise)")
	}
	if tr2.Admits(a, *now2, 0) {
		t.Error("admitted after failing while reopening")
	}
	if _, reason, _ := tr2.Cooling("a"); reason != "status 503, again while reopening" {
		t.Errorf("reason %q", reason)
	}
}

// BenchmarkAdmits is selection's question, asked once per candidate of
// every request (≈70), while one provider cools down, another reopens and
// a workspace's key is rate-limited on one model.
//
//	go test -run '^$' -bench Admits -benchmem ./internal/health/
func BenchmarkAdmits(b *testing.B) {
	tr := New(Policy{FailuresBeforeCooldown: 1, Cooldown: time.Hour, MaxCooldown: time.Hour, Reopen: time.Hour})
	tr.Failed(Target{Provider: "down"}, "status 503", 0)
	tr.RateLimited(Target{Provider: "openai", Model: "gpt-4o", Workspace: "legal", PerModel: true}, "rate limited (429)", 0)
	names := []string{"openai", "anthropic", "mistral", "down", "gemini", "groq"}
	now := time.Now()
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		i := 0
		for pb.Next() {
			n := names[i%len(names)]
			ok := tr.Admits(Target{Provider: n, Model: "gpt-4o", Workspace: "legal"}, now, uint32(i))
			if ok != (n != "down" && n != "openai") {
				b.Fatal("wrong answer")
			}
			i++
		}
	})
}

// BenchmarkAdmitsNothingCooling is the common case: every provider healthy.
func BenchmarkAdmitsNothingCooling(b *testing.B) {
	tr := New(Policy{FailuresBeforeCooldown: 3, Cooldown: time.Minute, MaxCooldown: time.Hour})
	tr.Failed(Target{Provider: "openai"}, "status 503", 0) // a failure, no cooldown
	now := time.Now()
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if !tr.Admits(Target{Provider: "openai", Model: "gpt-4o"}, now, 7) {
				b.Fatal("wrong answer")
			}
		}
	})
}

// TestForget: a provider a reload removed is forgotten, with its cooldown;
// the others keep theirs.
func TestForget(t *testing.T) {
	tr := New(Policy{FailuresBeforeCooldown: 1, Cooldown: time.Minute, MaxCooldown: time.Hour})
	tr.Failed(Target{Provider: "gone"}, "x", 0)
	tr.Failed(Target{Provider: "kept"}, "x", 0)
	tr.Forget(func(p string) bool { return p == "kept" })
	snap := tr.Snapshot()
	if len(snap) != 1 || snap[0].Provider != "kept" {
		t.Fatalf("after forgetting: %+v", snap)
	}
}

// TestCredentialChangeEndsItsRefusal: a credential the provider refused
// cools for that credential, named as such in the snapshot, until the
// credential changes: the operator's fix is routed to at once, not after
// the cooldown and its reopening. Another credential's refusal stays.
func TestCredentialChangeEndsItsRefusal(t *testing.T) {
	tr, now := clock(Policy{FailuresBeforeCooldown: 1, Cooldown: 30 * time.Second, Reopen: 30 * time.Second})
	shared := Credential{Provider: "eu"}
	own := Credential{Provider: "eu", Workspace: "legal"}
	tr.SetCredentials(map[Credential]string{shared: "old", own: "legal1"})
	a, b := Target{Provider: "eu", Model: "eu-mini", PerModel: true}, Target{Provider: "eu", Model: "eu-mini", Workspace: "legal"}
	if !tr.CredentialRefused(a, "status 401") || !tr.CredentialRefused(b, "status 401") {
		t.Fatal("a refused credential does not cool")
	}
	if tr.Admits(Target{Provider: "eu", Model: "eu-large", PerModel: true}, *now, 0) {
		t.Error("a refused shared key still takes another model")
	}
	if s := tr.Snapshot(); len(s) != 2 || s[0].Scope != ScopeCredential || s[0].Workspace != "" || s[1].Workspace != "legal" {
		t.Errorf("snapshot %+v", s)
	}
	if got := tr.SetCredentials(map[Credential]string{shared: "old", own: "legal1"}); len(got) != 0 {
		t.Errorf("credentials unchanged, cleared %v", got)
	}
	*now = now.Add(time.Second)
	got := tr.SetCredentials(map[Credential]string{shared: "new", own: "legal1"})
	if len(got) != 1 || got[0] != shared {
		t.Errorf("cleared %v, want the shared key's", got)
	}
	if !tr.Admits(a, *now, DrawRange-1) {
		t.Error("the new shared key is still in cooldown")
	}
	if tr.Admits(b, *now, 0) {
		t.Error("legal's own key, unchanged, is no longer in cooldown")
	}
	// A replica that still sends the old key shares its refusal: it is
	// not this replica's credential's.
	tr.Apply(Cooldown{Provider: "eu", RateLimit: true, Credential: "old", Until: now.Add(30 * time.Second), ReopenedBy: now.Add(time.Minute)})
	if !tr.Admits(a, *now, 0) {
		t.Error("another replica's refusal of the old key cools the new one")
	}
	tr.Apply(Cooldown{Provider: "eu", RateLimit: true, Credential: "new", Until: now.Add(30 * time.Second), ReopenedBy: now.Add(time.Minute)})
	if tr.Admits(a, *now, 0) {
		t.Error("another replica's refusal of the same key is ignored")
	}
	// A credential that is no longer configured ends its refusal too.
	if got := tr.SetCredentials(map[Credential]string{shared: "new"}); len(got) != 1 || got[0] != own {
		t.Errorf("cleared %v, want legal's", got)
	}
}

// TestProbe: a scope that cools down after its own failures (a self-hosted
// box overloaded, or loading a model) takes one probe per ProbeInterval
// from requests nothing else may serve, and the probe's success ends the
// cooldown; a cooldown the provider asked for (Retry-After) takes none and
// is not ended by a success.
func TestProbe(t *testing.T) {
	p := Policy{FailuresBeforeCooldown: 3, Cooldown: 30 * time.Second, MaxCooldown: 5 * time.Minute, Reopen: 30 * time.Second}
	box := Target{Provider: "box", Model: "llama"}
	for name, fail := range map[string]func(tr *Tracker){
		"outage": func(tr *Tracker) {
			for range 3 {
				tr.Failed(box, "status 503", 0)
			}
		},
		"rate limit without Retry-After": func(tr *Tracker) {
			for range 3 {
				tr.RateLimited(Target{Provider: "box", Model: "llama", PerModel: true}, "rate limited (429)", 0)
			}
		},
	} {
		t.Run(name, func(t *testing.T) {
			tr, now := clock(p)
			fail(tr)
			*now = t0.Add(time.Second)
			if tr.Admits(box, *now, 0) {
				t.Fatal("not cooling down")
			}
			if ok, _ := tr.Probe(box, *now); !ok {
				t.Fatal("the first probe was refused")
			}
			if ok, busy := tr.Probe(box, now.Add(ProbeInterval/2)); ok || !busy {
				t.Error("a second probe within ProbeInterval")
			}
			*now = now.Add(ProbeInterval)
			if ok, _ := tr.Probe(box, *now); !ok {
				t.Error("no probe after ProbeInterval")
			}
			tr.Succeeded(box)
			if s := tr.Snapshot(); len(s) != 1 || !s[0].CoolingUntil.IsZero() || !s[0].ReopenedBy.Equal(now.Add(p.Reopen)) {
				t.Fatalf("after the probe's success: %+v, want reopening from now", s)
			}
			if ok, _ := tr.Probe(box, *now); !tr.Admits(box, *now, 0) || !ok {
				t.Error("a reopening scope refuses the request nothing else may serve")
			}
		})
	}

	t.Run("Retry-After", func(t *testing.T) {
		tr, now := clock(p)
		tr.RateLimited(Target{Provider: "box", Model: "llama", PerModel: true}, "rate limited (429)", 20*time.Second)
		*now = t0.Add(time.Second)
		if ok, busy := tr.Probe(box, *now); ok || busy {
			t.Error("probed while the provider asked to wait")
		}
		tr.Succeeded(box)
		if tr.Admits(box, *now, 0) {
			t.Error("a success ended the cooldown the provider asked for")
		}
	})
}

// TestProviderOverride: a provider's own cooldown settings (a self-hosted
// box: a longer run before it cools, a short cooldown, no reopening) apply
// to it alone; the others keep the policy's.
func TestProviderOverride(t *testing.T) {
	tr, now := clock(Policy{FailuresBeforeCooldown: 1, Cooldown: 30 * time.Second, MaxCooldown: 5 * time.Minute, Reopen: 30 * time.Second,
		Providers: map[string]Override{"box": {FailuresBeforeCooldown: 3, Cooldown: 5 * time.Second}}})
	box, cloud := Target{Provider: "box", Model: "llama"}, Target{Provider: "cloud", Model: "gpt"}
	tr.Failed(cloud, "status 503", 0)
	for i := range 3 {
		if cooling := tr.Failed(box, "status 503: busy", 0); cooling != (i == 2) {
			t.Fatalf("box after %d failures: cooling %v", i+1, cooling)
		}
	}
	*now = t0.Add(5 * time.Second)
	if !tr.Admits(box, *now, 0) || tr.Admits(box, *now, DrawRange-1) {
		t.Error("box does not reopen after its own 5 s cooldown")
	}
	if tr.Admits(cloud, *now, 0) {
		t.Error("the override applied to another provider")
	}
	*now = t0.Add(35 * time.Second) // box's reopening (the policy's 30 s) is over
	if !tr.Admits(box, *now, DrawRange-1) {
		t.Error("box not back in full")
	}
}
