package decision

import (
	"context"
	"testing"
	"time"

	"github.com/stellwerk/stellwerk/internal/auth"
	"github.com/stellwerk/stellwerk/internal/health"
	"github.com/stellwerk/stellwerk/internal/observe"
)

// latencyRouter has two equal models on two providers: quick (seeded at
// 300 ms) and rival (400 ms), a clock the test moves, and the learned
// state on that clock.
func latencyRouter(t *testing.T, halfLife time.Duration) (*Router, *time.Time) {
	t.Helper()
	r, c := libraryRouter(t, `
routing: {default_model: quick, latency_half_life: `+halfLife.String()+`}
currency: {usd_to_eur: 1}
failover: {failures_before_cooldown: 1, cooldown: 30s, reopen: 1m}
providers:
  - {name: a, base_url: "http://127.0.0.1:9001/v1", residency: eu}
  - {name: b, base_url: "http://127.0.0.1:9002/v1", residency: eu}
models:
  - {id: quick, provider: a, context_window: 8000, latency_ms: 300, price: {input_per_mtok: 1, output_per_mtok: 1}, quality: {default: 0.8}}
  - {id: rival, provider: b, context_window: 8000, latency_ms: 400, price: {input_per_mtok: 1, output_per_mtok: 1}, quality: {default: 0.8}}
workspaces:
  - {name: default}
`)
	// The health tracker records on the real clock; the test's starts there.
	now := time.Now()
	r.Now = func() time.Time { return now }
	r.Latency = &observe.Latency{Now: r.Now}
	r.Latency.SetHalfLife(c.Routing.LatencyHalfLife)
	return r, &now
}

func chosen(t *testing.T, r *Router, stream bool, id string) string {
	t.Helper()
	body := `{"model":"auto","policy":{"optimize":"latency"},"messages":[{"role":"user","content":"hello"}]}`
	if stream {
		body = `{"model":"auto","stream":true,"policy":{"optimize":"latency"},"messages":[{"role":"user","content":"hello"}]}`
	}
	res, err := r.Route(context.Background(), Request{Path: "/v1/chat/completions", Body: []byte(body), DecisionID: id,
		Principal: auth.Principal{Workspace: "default"}})
	if err != nil {
		t.Fatal(err)
	}
	return res.Selection.Model.ID
}

// TestSlowOnceIsChosenAgain (issue 19): a model measured slow once (a cold
// TLS connection) is avoided, then chosen again within the configured
// window (routing.latency_half_life) once its estimate has faded back;
// having recovered, it keeps being chosen.
func TestSlowOnceIsChosenAgain(t *testing.T) {
	r, now := latencyRouter(t, time.Minute)
	if got := chosen(t, r, false, "d1"); got != "quick" {
		t.Fatalf("before any traffic: %s, want quick (the lower seed)", got)
	}
	r.Latency.Observe("quick", false, 5*time.Second) // a cold connection
	r.Latency.Observe("rival", false, 400*time.Millisecond)
	if got := chosen(t, r, false, "d2"); got != "rival" {
		t.Fatalf("right after the slow answer: %s, want rival", got)
	}
	// The rival keeps answering in 400 ms; quick gets no traffic. Within six
	// half-lives quick's estimate is back under the rival's: it is tried.
	var back time.Duration
	for step := time.Duration(0); step <= 6*time.Minute; step += 15 * time.Second {
		*now = now.Add(15 * time.Second)
		r.Latency.Observe("rival", false, 400*time.Millisecond)
		if chosen(t, r, false, "d3") == "quick" {
			back = step + 15*time.Second
			break
		}
	}
	if back == 0 {
		t.Fatal("quick was not chosen again within six half-lives of its slow answer")
	}
	t.Logf("chosen again %s after the slow answer (half-life 1m)", back)
	// It recovered: the next answer is fast, and it stays chosen.
	r.Latency.Observe("quick", false, 250*time.Millisecond)
	*now = now.Add(time.Second)
	if got := chosen(t, r, false, "d4"); got != "quick" {
		t.Errorf("after a fast answer: %s, want quick", got)
	}
}

// TestStreamsChooseByTimeToFirstToken (issue 19): a streaming request is
// weighed by each model's time to first token, a JSON one by its completion
// time; what one kind learns does not move the other.
func TestStreamsChooseByTimeToFirstToken(t *testing.T) {
	r, _ := latencyRouter(t, time.Hour)
	for range 10 {
		// quick: fast completions but a slow first token (long prompt
		// processing); rival the other way round.
		r.Latency.Observe("quick", false, 300*time.Millisecond)
		r.Latency.Observe("quick", true, 2*time.Second)
		r.Latency.Observe("rival", false, 3*time.Second)
		r.Latency.Observe("rival", true, 150*time.Millisecond)
	}
	if got := chosen(t, r, true, "s1"); got != "rival" {
		t.Errorf("stream: %s, want rival (first token in 150 ms)", got)
	}
	if got := chosen(t, r, false, "j1"); got != "quick" {
		t.Errorf("JSON: %s, want quick (completion in 300 ms)", got)
	}
	// The replay inputs carry the estimate each model was weighed with.
	res, err := r.Route(context.Background(), Request{Path: "/v1/chat/completions", DecisionID: "s2", Record: true,
		Body:      []byte(`{"model":"auto","stream":true,"policy":{"optimize":"latency"},"messages":[{"role":"user","content":"hello"}]}`),
		Principal: auth.Principal{Workspace: "default"}})
	if err != nil {
		t.Fatal(err)
	}
	q, _ := res.Inputs.LatencyOf("quick")
	if r, _ := res.Inputs.LatencyOf("rival"); q != 2000 || r != 150 {
		t.Errorf("recorded latencies quick %d, rival %d; want the streams' (quick 2000, rival 150)", q, r)
	}
}

// TestReopeningSharesRequests: while a rate-limited model reopens, the
// requests whose decision ids draw low get it, the others its rival; the
// replay inputs say which.
func TestReopeningSharesRequests(t *testing.T) {
	r, now := latencyRouter(t, time.Hour)
	r.Health = health.New(health.Policy{FailuresBeforeCooldown: 1, Cooldown: 30 * time.Second, MaxCooldown: time.Minute, Reopen: time.Minute})
	r.Health.RateLimited(health.Target{Provider: "a", Model: "quick", PerModel: true}, "rate limited (429)", 30*time.Second)
	count := func() (quick int) {
		for i := range 400 {
			if chosen(t, r, false, "id-"+itoa(i)) == "quick" {
				quick++
			}
		}
		return quick
	}
	if n := count(); n != 0 {
		t.Fatalf("during the cooldown quick got %d of 400", n)
	}
	*now = now.Add(60 * time.Second) // half-way through the reopening: 55% pass
	if n := count(); n < 160 || n > 280 {
		t.Errorf("half-way through reopening quick got %d of 400, want about 220", n)
	}
	// A request kept from quick records it, and its replay is kept from it too.
	for i := range 400 {
		id := "id-" + itoa(i)
		if Draw(id) < health.DrawRange*9/10 {
			continue
		}
		req := Request{Path: "/v1/chat/completions", DecisionID: id, Record: true, Principal: auth.Principal{Workspace: "default"},
			Body: []byte(`{"model":"auto","policy":{"optimize":"latency"},"messages":[{"role":"user","content":"hello"}]}`)}
		res, err := r.Route(context.Background(), req)
		if err != nil {
			t.Fatal(err)
		}
		in := res.ReplayInputs(&req)
		if res.Selection.Model.ID != "rival" || len(in.CoolingModels) != 1 || in.CoolingModels[0] != "quick" {
			t.Fatalf("a high draw while reopening: %s, cooling models %v", res.Selection.Model.ID, in.CoolingModels)
		}
		rep, err := r.Replay(context.Background(), in, false)
		if err != nil || rep.Selection.Model.ID != "rival" {
			t.Fatalf("replay: %v %v", rep.Selection.Model, err)
		}
		break
	}
	*now = now.Add(31 * time.Second)
	if n := count(); n != 400 {
		t.Errorf("after the reopening quick got %d of 400", n)
	}
}

func itoa(i int) string {
	var b [20]byte
	n := len(b)
	for {
		n--
		b[n] = byte('0' + i%10)
		if i /= 10; i == 0 {
			return string(b[n:])
		}
	}
}
