package e2e

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stellwerk/stellwerk/internal/harness"
)

// extprocStreams is how many ext_proc streams Envoy has opened to a
// replica.
func extprocStreams(t *testing.T, envoyAdmin, host string) int {
	t.Helper()
	resp, err := http.Get(envoyAdmin + "/clusters")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	for _, l := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(l, "stellwerk_extproc::"+host+"::rq_total::"); ok {
			n, _ := strconv.Atoi(v)
			return n
		}
	}
	return 0
}

// extprocHealth is Envoy's view of each replica in the ext_proc cluster:
// host → health flags.
func extprocHealth(t *testing.T, envoyAdmin string) map[string]string {
	t.Helper()
	resp, err := http.Get(envoyAdmin + "/clusters")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	out := map[string]string{}
	for _, l := range strings.Split(string(b), "\n") {
		if rest, ok := strings.CutPrefix(l, "stellwerk_extproc::"); ok {
			if host, flags, ok := strings.Cut(rest, "::health_flags::"); ok {
				out[host] = flags
			}
		}
	}
	return out
}

func waitHealth(t *testing.T, r *harness.Replicas, host, want string, within time.Duration) time.Duration {
	t.Helper()
	start := time.Now()
	for {
		if got := extprocHealth(t, r.EnvoyAdmin)[host]; got == want {
			return time.Since(start)
		}
		if time.Since(start) > within {
			t.Fatalf("%s still %q after %v, want %q", host, extprocHealth(t, r.EnvoyAdmin)[host], within, want)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

type loadResult struct {
	at     time.Time
	status int
	code   string
}

// loadAt sends rps chat requests a second to url for d and returns each
// outcome.
func loadAt(url string, rps int, d time.Duration) []loadResult {
	var (
		mu  sync.Mutex
		out []loadResult
		wg  sync.WaitGroup
	)
	tick := time.NewTicker(time.Second / time.Duration(rps))
	defer tick.Stop()
	for end := time.Now().Add(d); time.Now().Before(end); {
		<-tick.C
		wg.Add(1)
		go func() {
			defer wg.Done()
			r := loadResult{}
			resp, err := http.Post(url+"/v1/chat/completions", "application/json",
				strings.NewReader(`{"model":"auto","messages":[{"role":"user","content":"hi"}]}`))
			if err != nil {
				r.code = err.Error()
			} else {
				b, _ := io.ReadAll(resp.Body)
				resp.Body.Close()
				r.status = resp.StatusCode
				var e struct{ Error struct{ Code string } }
				if json.Unmarshal(b, &e) == nil {
					r.code = e.Error.Code
				}
			}
			r.at = time.Now()
			mu.Lock()
			out = append(out, r)
			mu.Unlock()
		}()
	}
	wg.Wait()
	return out
}

// TestReplicaKilledUnderLoad (issue 17): two replicas behind one Envoy;
// one is killed (SIGKILL) while 200 requests a second flow. Only requests
// in flight on it fail, each with the retryable 503 router_unavailable,
// and none once Envoy's health check has noticed (≤ 1 s); restarted, the
// replica takes traffic again without an Envoy restart. With every replica
// gone, Envoy keeps the configuration it last accepted and answers 503
// router_unavailable; a replica back serves at once.
func TestReplicaKilledUnderLoad(t *testing.T) {
	t.Parallel()
	r := harness.StartReplicas(t, 2, harness.Options{Providers: []harness.ProviderSpec{{Name: "p", Key: "sk-p"}}})
	a, b := r.Stellwerks[0], r.Stellwerks[1]
	for _, s := range r.Stellwerks {
		waitHealth(t, r, s.GRPC, "healthy", 10*time.Second)
	}

	var killedAt, restartedAt time.Time
	var routedBefore int
	done := make(chan struct{})
	go func() {
		defer close(done)
		time.Sleep(2 * time.Second)
		routedBefore = strings.Count(b.Log("stellwerk"), `"msg":"routed"`)
		killedAt = time.Now()
		b.Kill("stellwerk")
		time.Sleep(2500 * time.Millisecond)
		b.Restart()
		restartedAt = time.Now()
	}()
	results := loadAt(r.URL, 200, 8*time.Second)
	<-done

	failed := map[string]int{}
	var lastFailure time.Time
	for _, res := range results {
		if res.status == 200 {
			continue
		}
		failed[fmt.Sprintf("%d %s", res.status, res.code)]++
		if res.at.After(lastFailure) {
			lastFailure = res.at
		}
	}
	for k := range failed {
		if k != "503 router_unavailable" {
			t.Errorf("failures other than 503 router_unavailable: %v", failed)
		}
	}
	if !lastFailure.IsZero() && lastFailure.Sub(killedAt) > time.Second {
		t.Errorf("a request failed %v after the kill; Envoy should have noticed within a second", lastFailure.Sub(killedAt))
	}
	routedAfter := strings.Count(b.Log("stellwerk"), `"msg":"routed"`) - routedBefore
	// Rejoined: healthy in Envoy again, and taking its share of the
	// ext_proc streams (two per request: the decision and the watcher of
	// the first attempt; sequential requests alternate them between the
	// replicas, so count streams, not decisions).
	waitHealth(t, r, b.GRPC, "healthy", 5*time.Second)
	before := extprocStreams(t, r.EnvoyAdmin, b.GRPC)
	for range 40 {
		if resp, body := post(t, r.URL+"/v1/chat/completions", `{"model":"auto","messages":[{"role":"user","content":"hi"}]}`, nil); resp.StatusCode != 200 {
			t.Fatalf("after the restart: %d %s", resp.StatusCode, body)
		}
	}
	if share := extprocStreams(t, r.EnvoyAdmin, b.GRPC) - before; share < 20 {
		t.Errorf("the restarted replica got %d of the 40 requests' ext_proc streams", share)
	}
	last := "none failed"
	if !lastFailure.IsZero() {
		last = fmt.Sprintf("the last %v after the kill", lastFailure.Sub(killedAt).Round(time.Millisecond))
	}
	t.Logf("%d requests at 200 rps; replica b killed at +2 s: %d failed (%s); restarted %v later, it then routed %d",
		len(results), failed["503 router_unavailable"], last, restartedAt.Sub(killedAt).Round(time.Millisecond), routedAfter)

	// No replica at all: Envoy keeps its configuration and fails closed.
	a.Kill("stellwerk")
	b.Kill("stellwerk")
	time.Sleep(1500 * time.Millisecond)
	resp, body := post(t, r.URL+"/v1/chat/completions", `{"model":"auto","messages":[{"role":"user","content":"hi"}]}`, nil)
	if e := decodeError(t, body); resp.StatusCode != 503 || e.Error.Code != "router_unavailable" {
		t.Fatalf("with no replica: %d %s", resp.StatusCode, body)
	}
	dump, err := http.Get(r.EnvoyAdmin + "/config_dump")
	if err != nil {
		t.Fatal(err)
	}
	lb, _ := io.ReadAll(dump.Body)
	dump.Body.Close()
	if !strings.Contains(string(lb), `"name": "stellwerk_http"`) || !strings.Contains(string(lb), `"name": "provider_p"`) {
		t.Fatalf("Envoy dropped its configuration while no control plane answered:\n%.2000s", lb)
	}
	a.Restart()
	start := time.Now()
	for {
		resp, body = post(t, r.URL+"/v1/chat/completions", `{"model":"auto","messages":[{"role":"user","content":"hi"}]}`, nil)
		if resp.StatusCode == 200 {
			break
		}
		if time.Since(start) > 5*time.Second {
			t.Fatalf("replica a back, but requests still get %d %s", resp.StatusCode, body)
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Logf("with no replica: 503 router_unavailable, Envoy kept its listener; one replica back serves within %v", time.Since(start).Round(time.Millisecond))
}
