package bench

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"maps"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/tidwall/gjson"
	"gopkg.in/yaml.v3"

	"github.com/stellwerk/stellwerk/internal/bench/noopextproc"
	"github.com/stellwerk/stellwerk/internal/mockllm"
)

// TestMain lets the test binary be the floor's no-op ext_proc server, as
// stellwerk-bench is in a real run: `bench.test noop-extproc --socket P`.
func TestMain(m *testing.M) {
	if len(os.Args) > 1 && os.Args[1] == "noop-extproc" {
		ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
		err := noopextproc.Run(ctx, os.Args[2:], os.Stderr)
		stop()
		if err != nil {
			os.Stderr.WriteString(err.Error() + "\n")
			os.Exit(1)
		}
		os.Exit(0)
	}
	os.Exit(m.Run())
}

// TestBenchSmoke runs the real harness briefly in the production shape:
// Envoy A, Envoy F with the no-op ext_proc server, Envoy B with stellwerk on
// the shipped catalog, and the fake provider. It asserts that every target
// was measured without errors and that stellwerk routed to a catalog model
// with the virtual key, never a latency.
func TestBenchSmoke(t *testing.T) {
	root, envoy, bin := stackBinaries(t)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	rep, err := Run(ctx, Options{Root: root, Envoy: envoy, Stellwerk: bin, NoopArgv: []string{os.Args[0], "noop-extproc"},
		Rates: []float64{50}, Sizes: []int{2 << 10}, Streams: []bool{false}, Delays: []time.Duration{0},
		Duration: 1500 * time.Millisecond, Slice: 500 * time.Millisecond, Warmup: 200 * time.Millisecond,
		Command: "TestBenchSmoke"})
	if err != nil {
		t.Fatal(err)
	}
	if rep.Settings.Shape != ShapeProduction || rep.Settings.Models < 60 {
		t.Errorf("shape %q with %d models; want the production shape on the shipped catalog", rep.Settings.Shape, rep.Settings.Models)
	}
	if len(rep.Scenarios) != 1 {
		t.Fatalf("got %d scenarios, want 1", len(rep.Scenarios))
	}
	if rep.Versions.Stellwerk == "unknown" || rep.Versions.StellwerkGo == "" {
		t.Errorf("stellwerk's /version was not read: %+v", rep.Versions)
	}
	sc := rep.Scenarios[0]
	if sc.Baseline == nil || sc.Floor == nil || sc.Added == nil || sc.AddedOverFloor == nil || sc.FloorAdded == nil {
		t.Fatalf("no baseline, floor or added latency in %+v", sc)
	}
	for _, tr := range sc.targets() {
		if tr.OK == 0 || tr.Errors != 0 {
			t.Errorf("%s: %d ok, %d errors %v; want >0 ok and no errors", tr.Name, tr.OK, tr.Errors, tr.ErrorKinds)
		}
	}
	if sc.NoopCPUPer1k <= 0 || sc.EnvoyFCPUPer1k <= 0 || sc.StellwerkCPUPer1k <= 0 {
		t.Errorf("CPU per 1k: no-op %v, Envoy F %v, stellwerk %v; want each measured", sc.NoopCPUPer1k, sc.EnvoyFCPUPer1k, sc.StellwerkCPUPer1k)
	}
	if sc.StellwerkSwitches <= 0 || sc.NoopSwitches <= 0 {
		t.Errorf("context switches per request: stellwerk %v, no-op %v; want both counted", sc.StellwerkSwitches, sc.NoopSwitches)
	}
	if sc.StellwerkClassifyUS <= 0 || sc.StellwerkPolicyUS <= 0 || sc.StellwerkParseUS <= 0 || sc.StellwerkSelectUS <= 0 {
		t.Errorf("the decision's stages: parse %v, classify %v, policy %v, select %v µs; want each read", sc.StellwerkParseUS,
			sc.StellwerkClassifyUS, sc.StellwerkPolicyUS, sc.StellwerkSelectUS)
	}
	if sc.StellwerkDecideUS <= 0 || sc.StellwerkOverheadUS < sc.StellwerkDecideUS {
		t.Errorf("stellwerk's own time: decision %v µs, request side %v µs; want both read, the second the larger", sc.StellwerkDecideUS, sc.StellwerkOverheadUS)
	}
	if len(sc.Stellwerk.Routes) == 0 || sc.Baseline.Routes != nil || sc.Floor.Routes != nil {
		t.Errorf("routes: stellwerk %v, baseline %v, floor %v; want stellwerk's choices only", sc.Stellwerk.Routes, sc.Baseline.Routes, sc.Floor.Routes)
	}
	var md strings.Builder
	WriteMarkdown(&md, rep)
	for _, want := range []string{sc.Name, "stellwerk above the floor", "no-op server", "production shape", "stellwerk's own time per request"} {
		if !strings.Contains(md.String(), want) {
			t.Errorf("markdown report does not say %q:\n%s", want, md.String())
		}
	}
	if err := WriteJSON(filepath.Join(t.TempDir(), "r.json"), rep); err != nil {
		t.Errorf("json report: %v", err)
	}
}

// TestAttackIsOpenLoop: when the server stalls, requests keep being sent on
// schedule and the stall shows up as latency counted from each request's due
// time, not as fewer requests.
func TestAttackIsOpenLoop(t *testing.T) {
	var stall sync.Mutex
	var once sync.Once
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		once.Do(func() { // the first request holds everyone up for 300 ms
			stall.Lock()
			time.AfterFunc(300*time.Millisecond, stall.Unlock)
		})
		stall.Lock()
		//lint:ignore SA2001 taking the lock is the wait for the stall to end
		stall.Unlock()
		w.Write([]byte(`{}`))
	}))
	defer srv.Close()
	tg := newTarget("t", srv.URL, nil, 5*time.Second)
	defer tg.close()

	var mu sync.Mutex
	var lat []time.Duration
	sent, window := attack(context.Background(), tg, 200, time.Second, request{path: "/v1/chat/completions", bodies: [][]byte{[]byte(`{}`)}}, func(r result) {
		mu.Lock()
		defer mu.Unlock()
		if r.ok() {
			lat = append(lat, r.Total)
		}
	})
	if sent != 200 || len(lat) != 200 {
		t.Fatalf("sent %d, answered %d; want 200 of each", sent, len(lat))
	}
	if window > 1100*time.Millisecond {
		t.Errorf("sending took %s; a stalled server must not slow the schedule", window)
	}
	d := summarize(lat)
	// Requests due during the first 300 ms waited for the stall: about 60.
	if d.Max < 250 || d.P50 > 50 {
		t.Errorf("max %.1f ms, p50 %.1f ms; want the stall (~300 ms) in the max only", d.Max, d.P50)
	}
	if slow := countAbove(lat, 100*time.Millisecond); slow < 30 {
		t.Errorf("%d requests above 100 ms; want the ~40 due in the stall's first 200 ms", slow)
	}
}

func countAbove(ds []time.Duration, limit time.Duration) int {
	n := 0
	for _, d := range ds {
		if d > limit {
			n++
		}
	}
	return n
}

func TestSummarize(t *testing.T) {
	for name, tc := range map[string]struct {
		in   []time.Duration
		want Dist
	}{
		"empty": {nil, Dist{}},
		"one":   {[]time.Duration{2 * time.Millisecond}, Dist{N: 1, Min: 2, Mean: 2, P50: 2, P90: 2, P99: 2, P999: 2, Max: 2}},
		"1..1000 ms": {func() []time.Duration {
			var ds []time.Duration
			for i := 1000; i >= 1; i-- {
				ds = append(ds, time.Duration(i)*time.Millisecond)
			}
			return ds
		}(), Dist{N: 1000, Min: 1, Mean: 500.5, P50: 500, P90: 900, P99: 990, P999: 999, Max: 1000}},
	} {
		t.Run(name, func(t *testing.T) {
			if got := summarize(tc.in); got != tc.want {
				t.Errorf("got %+v, want %+v", got, tc.want)
			}
		})
	}
}

func TestBodySize(t *testing.T) {
	odd := Prompt{System: "Answer as \"Ada\".", Text: "Translate:\n\tdas ist \\ gut"}
	for _, ep := range Endpoints {
		for _, size := range []int{2 << 10, 32 << 10} {
			for _, stream := range []bool{false, true} {
				b := ep.Body(samePrompt, size, stream, "auto")
				if len(b) != size || !gjson.ValidBytes(b) {
					t.Errorf("%s size %d stream %v: got %d bytes, valid JSON %v", ep.Name, size, stream, len(b), gjson.ValidBytes(b))
				}
				if b := ep.Body(odd, size, stream, "auto"); len(b) != size || !gjson.ValidBytes(b) || !strings.Contains(gjson.ParseBytes(b).String(), "das ist") {
					t.Errorf("%s size %d stream %v, a prompt with quotes and escapes: got %d bytes, valid JSON %v: %.200s", ep.Name, size, stream, len(b), gjson.ValidBytes(b), b)
				}
				if want := stream && ep.StreamEnd != ""; gjson.GetBytes(b, "stream").Bool() != want {
					t.Errorf("%s size %d: stream field is not %v", ep.Name, size, want)
				}
			}
		}
	}
}

// TestEndpointsAgainstTheFakeProvider: each endpoint's request, sent as
// the load sends it, is answered by the fake provider (which speaks every
// API), and its stream ends as the endpoint expects.
func TestEndpointsAgainstTheFakeProvider(t *testing.T) {
	srv := httptest.NewServer(mockllm.New("p", "k"))
	defer srv.Close()
	tg := newTarget("t", srv.URL, map[string]string{"Authorization": "Bearer k"}, 5*time.Second)
	defer tg.close()
	for _, ep := range Endpoints {
		for _, stream := range []bool{false, true} {
			if stream && ep.StreamEnd == "" {
				continue
			}
			rq := ep.request(nil, 2048, stream, "m")
			if r := tg.do(context.Background(), time.Now(), rq, rq.body(0)); !r.ok() || r.Status != 200 {
				t.Errorf("%s stream %v: %+v", ep.Name, stream, r)
			}
		}
	}
	// A stream cut short is an error, whatever the API.
	for _, name := range []string{"chat", "responses", "messages"} {
		ep, _ := EndpointNamed(name)
		rq := ep.request(nil, 2048, true, "m")
		rq.headers = map[string]string{"x-mock-reset": "truncate"}
		if r := tg.do(context.Background(), time.Now(), rq, rq.body(0)); r.ok() {
			t.Errorf("%s: a truncated stream counted as an answer", name)
		}
	}
}

// TestVariedPrompts: the varied load is the corpus, in one order every
// time, each prompt's text where the endpoint's user text starts, with its
// system prompt.
func TestVariedPrompts(t *testing.T) {
	ps, err := LoadPrompts("../..", PromptsVaried)
	if err != nil {
		t.Fatal(err)
	}
	again, _ := LoadPrompts("../..", PromptsVaried)
	if len(ps) != 728 || !reflect.DeepEqual(ps, again) {
		t.Fatalf("got %d prompts, the same order twice: %v", len(ps), reflect.DeepEqual(ps, again))
	}
	if same, err := LoadPrompts("../..", PromptsSame); err != nil || same != nil {
		t.Fatalf("same: %v, %v", same, err)
	}
	if _, err := LoadPrompts("../..", "random"); err == nil {
		t.Fatal("an unknown prompt set was accepted")
	}
	rq := chatRequest(ps, 2048, false, "auto")
	seen := map[string]bool{}
	for i, p := range ps {
		b := rq.body(i)
		if !gjson.ValidBytes(b) || len(b) < 2048 {
			t.Fatalf("prompt %d: %d bytes, valid JSON %v", i, len(b), gjson.ValidBytes(b))
		}
		if got := gjson.GetBytes(b, "messages.1.content").String(); !strings.HasPrefix(got, p.Text+"\n\nNotes: ") {
			t.Fatalf("prompt %d: the user's text starts %.80q, want %.80q", i, got, p.Text)
		}
		if got := gjson.GetBytes(b, "messages.0.content").String(); got != p.System || got == "" {
			t.Fatalf("prompt %d: system %q, want %q", i, got, p.System)
		}
		seen[string(b)] = true
	}
	if len(seen) < 700 {
		t.Errorf("%d different bodies of %d prompts", len(seen), len(ps))
	}
	if !bytes.Equal(rq.body(len(ps)), rq.body(0)) {
		t.Error("the bodies do not start over after the last")
	}
}

// TestConversationPrompts: the conversation load is the varied load's
// prompts in the same order, eight user turns to a conversation, each
// request resending the turns before it exactly as they were sent (a
// short answer after each) on top of its size.
func TestConversationPrompts(t *testing.T) {
	varied, _ := LoadPrompts("../..", PromptsVaried)
	ps, err := LoadPrompts("../..", PromptsConversation)
	if err != nil || len(ps) != len(varied) {
		t.Fatalf("%d prompts, %v", len(ps), err)
	}
	rq, rv := chatRequest(ps, 2048, false, "auto"), chatRequest(varied, 2048, false, "auto")
	sent := make([]string, len(ps)) // each turn's user text when it was the newest
	for i, p := range ps {
		k := i % ConversationTurns
		if p.Text != varied[i].Text || p.System != varied[i-k].System || len(p.Earlier) != k {
			t.Fatalf("prompt %d: turn %d with %d earlier turns, system %q", i, k+1, len(p.Earlier), p.System)
		}
		b := rq.body(i)
		msgs := gjson.GetBytes(b, "messages").Array()
		if !gjson.ValidBytes(b) || len(msgs) != 2+2*k || len(b) < 2048*(k+1) {
			t.Fatalf("prompt %d: %d bytes, %d messages", i, len(b), len(msgs))
		}
		for j := range k {
			user, answer := msgs[1+2*j], msgs[2+2*j]
			if user.Get("role").String() != "user" || user.Get("content").String() != sent[i-k+j] ||
				answer.Get("role").String() != "assistant" || len(answer.Get("content").String()) >= 256 {
				t.Fatalf("prompt %d, turn %d: %.80s / %s", i, j+1, user.Raw, answer.Raw)
			}
		}
		sent[i] = msgs[len(msgs)-1].Get("content").String()
		if want := gjson.GetBytes(rv.body(i), "messages.1.content").String(); sent[i] != want {
			t.Fatalf("prompt %d: the newest turn is not the varied load's: %.80q", i, sent[i])
		}
	}
}

// TestAttackGoesThroughTheBodies: a target's requests take the bodies in
// turn, carrying on from one call of attack to the next.
func TestAttackGoesThroughTheBodies(t *testing.T) {
	var mu sync.Mutex
	got := map[string]int{}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		mu.Lock()
		got[string(b)]++
		mu.Unlock()
		w.Write([]byte(`{}`))
	}))
	defer srv.Close()
	tg := newTarget("t", srv.URL, nil, 5*time.Second)
	defer tg.close()
	rq := request{path: "/", bodies: [][]byte{[]byte(`"a"`), []byte(`"b"`), []byte(`"c"`)}}
	for range 2 {
		if sent, _ := attack(context.Background(), tg, 50, 100*time.Millisecond, rq, func(result) {}); sent != 5 {
			t.Fatalf("sent %d, want 5", sent)
		}
	}
	if want := map[string]int{`"a"`: 4, `"b"`: 3, `"c"`: 3}; !maps.Equal(got, want) {
		t.Errorf("bodies sent %v, want %v", got, want)
	}
}

func TestFlatness(t *testing.T) {
	for name, tc := range map[string]struct {
		xs               []float64
		flat, inconclude bool
	}{
		"steady":  {[]float64{90, 100, 100, 101, 99, 100, 102, 100}, true, false},
		"growing": {[]float64{100, 110, 120, 130, 140, 150, 160, 170}, false, false},
		"too few": {[]float64{1, 2, 3}, false, true},
		"warm-up": {[]float64{10, 50, 100, 100, 100, 100, 100, 105}, true, false},
	} {
		t.Run(name, func(t *testing.T) {
			f := flatness("x", tc.xs)
			if f.Flat != tc.flat || f.Inconclusive != tc.inconclude {
				t.Errorf("got %+v, want flat %v inconclusive %v", f, tc.flat, tc.inconclude)
			}
		})
	}
}

func TestParseStatCPU(t *testing.T) {
	line := []byte("4242 (envoy (main) x) S 1 4242 4242 0 -1 4194560 1 0 0 0 250 150 0 0 20 0 9 0 1 2 3")
	got, err := parseStatCPU(line)
	if err != nil || got != 4.0 {
		t.Errorf("got %v, %v; want 4 s (250 + 150 ticks)", got, err)
	}
}

func TestContextSwitches(t *testing.T) {
	status := []byte("Name:\tstellwerk\nState:\tS (sleeping)\nvoluntary_ctxt_switches:\t120\nnonvoluntary_ctxt_switches:\t7\n")
	if got := parseCtxtSwitches(status); got != 127 {
		t.Errorf("parseCtxtSwitches = %d, want 127", got)
	}
	// This process: every thread's switches, at least the main thread's.
	n, err := contextSwitches(os.Getpid())
	if err != nil || n <= 0 {
		t.Fatalf("contextSwitches(self) = %d, %v", n, err)
	}
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		t.Fatal(err)
	}
	if main := parseCtxtSwitches(b); n < main {
		t.Errorf("all threads' switches %d < the main thread's %d", n, main)
	}
}

// TestStackAdminAPI: the stack's admin token reads what the soak samples
// (goroutines on /debug/vars), and the admin API refuses a request without it.
func TestStackAdminAPI(t *testing.T) {
	root, envoy, bin := stackBinaries(t)
	ctx, cancel := context.WithTimeout(context.Background(), 25*time.Second)
	defer cancel()
	stack, err := StartStack(ctx, StackOptions{Root: root, Envoy: envoy, StellwerkArgv: []string{bin, "serve"}, Shape: ShapeOneModel, Dir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	defer stack.Close()
	var vars map[string]any
	if err := getJSON(ctx, stack.StellwerkAdmin+"/debug/vars", stack.AdminToken, &vars); err != nil {
		t.Fatal(err)
	}
	if _, ok := vars["goroutines"].(float64); !ok {
		t.Errorf("/debug/vars has no goroutines: %v", vars)
	}
	if err := getJSON(ctx, stack.StellwerkAdmin+"/debug/vars", "wrong", &vars); err == nil || !strings.Contains(err.Error(), "401") {
		t.Errorf("a wrong token: %v", err)
	}
}

// TestSliceOrderIsFair: over six rounds every target of three is first,
// middle and last twice, and over four rounds of two each goes first twice.
func TestSliceOrderIsFair(t *testing.T) {
	for n, rounds := range map[int]int{2: 4, 3: 6} {
		pos := make([][]int, n) // target → count per position
		for i := range pos {
			pos[i] = make([]int, n)
		}
		for k := range rounds {
			order := sliceOrder(k, n)
			seen := slices.Clone(order)
			slices.Sort(seen)
			for i, v := range seen {
				if v != i {
					t.Fatalf("n=%d round %d: %v is not a permutation", n, k, order)
				}
			}
			for p, target := range order {
				pos[target][p]++
			}
		}
		for target, counts := range pos {
			for p, c := range counts {
				if c != rounds/n {
					t.Errorf("n=%d: target %d in position %d %d times over %d rounds, want %d", n, target, p, c, rounds, rounds/n)
				}
			}
		}
	}
	if got := sliceOrder(1, 2); !slices.Equal(got, []int{1, 0}) {
		t.Errorf("two targets, round 1: %v, want B A", got)
	}
}

// TestRewriteCatalog: the shipped catalog keeps every provider, model, wire
// format and residency; only the base URLs move to the fake provider.
func TestRewriteCatalog(t *testing.T) {
	root, err := FindRoot(".")
	if err != nil {
		t.Fatal(err)
	}
	src, err := os.ReadFile(filepath.Join(root, "examples", "catalog.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	cat, err := rewriteCatalog(src, "http://127.0.0.1:9")
	if err != nil {
		t.Fatal(err)
	}
	out := string(cat.yaml)
	if strings.Count(out, "base_url: http://127.0.0.1:9/p/") != len(cat.providers) || strings.Contains(out, "base_url: http://vllm") || strings.Contains(out, "base_url: https") {
		t.Errorf("not every base_url points at the fake provider:\n%s", out)
	}
	for _, kept := range []string{"wire_format: anthropic", "residency: eu", "residency: on_prem", "header: x-api-key", "header: api-key"} {
		if strings.Count(out, kept) != strings.Count(string(src), kept) {
			t.Errorf("%q: %d times in the rewrite, %d in the catalog", kept, strings.Count(out, kept), strings.Count(string(src), kept))
		}
	}
	if len(cat.models) != strings.Count(string(src), "\n  - id: ") {
		t.Errorf("%d models, want every model of the catalog", len(cat.models))
	}
}

// TestProviderKeys: a catalog provider's request needs the key in the header
// its credential names; one without a credential needs none.
func TestProviderKeys(t *testing.T) {
	var reached []string
	next := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		reached = append(reached, r.URL.Path+" "+r.Header.Get("Authorization")+" "+r.Header.Get("x-api-key"))
	})
	h := providerKeys(next, []catalogProvider{{name: "openai", credHeader: "authorization"}, {name: "azure", credHeader: "api-key"},
		{name: "anthropic", credHeader: "x-api-key"}, {name: "vllm"}})
	for name, tc := range map[string]struct {
		path, header, value string
		want                int
	}{
		"bearer":            {"/p/openai/v1/chat/completions", "Authorization", "Bearer " + providerKey, 200},
		"bearer wrong":      {"/p/openai/v1/chat/completions", "Authorization", "Bearer nope", 401},
		"api-key":           {"/p/azure/v1/chat/completions", "api-key", providerKey, 200},
		"api-key as bearer": {"/p/azure/v1/chat/completions", "Authorization", "Bearer " + providerKey, 401},
		"x-api-key":         {"/p/anthropic/v1/messages", "x-api-key", providerKey, 200},
		"no credential":     {"/p/vllm/v1/chat/completions", "", "", 200},
		"unknown provider":  {"/p/nobody/v1/chat/completions", "Authorization", "Bearer " + providerKey, 404},
		"direct route":      {"/v1/chat/completions", "Authorization", "Bearer " + providerKey, 200},
	} {
		t.Run(name, func(t *testing.T) {
			reached = nil
			req := httptest.NewRequest(http.MethodPost, tc.path, nil)
			if tc.header != "" {
				req.Header.Set(tc.header, tc.value)
			}
			rec := httptest.NewRecorder()
			h.ServeHTTP(rec, req)
			if rec.Code != tc.want {
				t.Fatalf("status %d, want %d: %s", rec.Code, tc.want, rec.Body)
			}
			if tc.want == 200 && len(reached) != 1 {
				t.Errorf("the fake provider was reached %d times", len(reached))
			}
		})
	}
}

func TestRoundTrips(t *testing.T) {
	got := roundTrips([]string{
		"http.stellwerk.ext_proc.streams_started: 10",
		"http.stellwerk.ext_proc.stream_msgs_received: 40",
		"http.stellwerk_egress_a.ext_proc.stream_msgs_received: 3",
		"http.stellwerk_egress_b.ext_proc.stream_msgs_sent: 5",
		"garbage",
	})
	if got != (roundTripCounts{requests: 10, edge: 40, egress: 3}) {
		t.Errorf("%+v", got)
	}
}

// TestFloorModes: the floor's two processing modes give Envoy F the phases
// they name (checked by Envoy itself when it is installed: --mode
// validate), and an unknown mode is refused before anything starts.
func TestFloorModes(t *testing.T) {
	envoy, envoyErr := FindEnvoy(mustRoot(t))
	for _, c := range []struct {
		mode string
		want []string
	}{
		{FloorOne, []string{"request_header_mode: SKIP", "request_body_mode: BUFFERED", "response_header_mode: SKIP", "response_body_mode: NONE"}},
		{FloorPipelined, []string{"request_header_mode: SEND", "request_body_mode: STREAMED", "response_header_mode: SEND",
			"response_body_mode: STREAMED", "send_body_without_waiting_for_header_response: true"}},
	} {
		boot := directBootstrap(9901, 10000, 10001, "/tmp/noop.sock", c.mode)
		for _, w := range c.want {
			if !strings.Contains(boot, w) {
				t.Errorf("%s: the floor's bootstrap lacks %q:\n%s", c.mode, w, boot)
			}
		}
		var v map[string]any
		if err := yaml.Unmarshal([]byte(boot), &v); err != nil {
			t.Errorf("%s: bootstrap is not YAML: %v", c.mode, err)
		}
		if envoyErr != nil {
			continue
		}
		path := filepath.Join(t.TempDir(), "floor.yaml")
		if err := os.WriteFile(path, []byte(boot), 0o600); err != nil {
			t.Fatal(err)
		}
		if out, err := exec.Command(envoy, "--mode", "validate", "-c", path).CombinedOutput(); err != nil {
			t.Errorf("%s: Envoy refuses the floor's bootstrap: %v\n%s", c.mode, err, out)
		}
	}
	if _, err := StartStack(context.Background(), StackOptions{FloorMode: "twice"}); err == nil || !strings.Contains(err.Error(), "floor mode") {
		t.Errorf("StartStack with floor mode twice: %v, want it refused", err)
	}
}

func mustRoot(t *testing.T) string {
	t.Helper()
	root, err := FindRoot(".")
	if err != nil {
		t.Fatal(err)
	}
	return root
}

// TestParseOverhead reads stellwerk's router overhead histogram from
// Prometheus text and takes the mean of a stage between two readings.
func TestParseOverhead(t *testing.T) {
	reading := func(sum, count string, memo ...string) *overheadSums {
		hits, misses := count, "100"
		if len(memo) == 2 {
			hits, misses = memo[0], memo[1]
		}
		return parseOverhead(`# HELP stellwerk_router_overhead_seconds stellwerk's own time
# TYPE stellwerk_router_overhead_seconds histogram
stellwerk_router_overhead_seconds_bucket{stage="decide",le="0.0001"} 5
stellwerk_router_overhead_seconds_sum{stage="decide"} ` + sum + `
stellwerk_router_overhead_seconds_count{stage="decide"} ` + count + `
stellwerk_router_overhead_seconds_sum{stage="total"} 9
stellwerk_router_overhead_seconds_count{stage="total"} 3
stellwerk_requests_total{workspace="default"} 7
# TYPE stellwerk_policy_memo_hits_total counter
stellwerk_policy_memo_hits_total ` + hits + `
# TYPE stellwerk_policy_memo_misses_total counter
stellwerk_policy_memo_misses_total ` + misses + `
`)
	}
	before, after := reading("0.5", "1000"), reading("0.8", "2000")
	// 1,000 decisions in between, all from the memo; then 300 of 400.
	if got := after.memoPct(before); got != 100 {
		t.Errorf("memo share %v%%, want 100", got)
	}
	if got := reading("0.9", "2100", "2300", "200").memoPct(after); got != 75 {
		t.Errorf("memo share %v%%, want 75", got)
	}
	if got := after.memoPct(nil); got != -1 {
		t.Errorf("without a first reading: %v", got)
	}
	if got := before.memoPct(after); got != -1 {
		t.Errorf("the policy reloaded in between: %v", got)
	}
	if got := after.meanUS("decide", before); got != 300 {
		t.Errorf("decision mean %v µs, want 300", got)
	}
	if got := after.meanUS("total", before); got != 0 {
		t.Errorf("no request counted in between: %v, want 0", got)
	}
	if got := after.meanUS("reserve", before); got != 0 {
		t.Errorf("a stage without readings: %v", got)
	}
	if got := after.meanUS("decide", nil); got != 0 {
		t.Errorf("without a first reading: %v", got)
	}
}

// TestFramesFloorThroughEnvoy: a real Envoy in the pipelined floor mode
// through the frames transports of the no-op server (`--floor-transport
// frames|inline`) passes every request to the provider and its answer back
// unchanged: JSON of the bench's size, a body larger than Envoy's HTTP/2
// frames and the server's receive window, and a stream.
func TestFramesFloorThroughEnvoy(t *testing.T) {
	for _, transport := range []string{noopextproc.TransportFrames, noopextproc.TransportInline} {
		t.Run(transport, func(t *testing.T) { testFramesFloorThroughEnvoy(t, transport) })
	}
}

func testFramesFloorThroughEnvoy(t *testing.T, transport string) {
	root, envoy, bin := stackBinaries(t)
	ctx, cancel := context.WithTimeout(context.Background(), 40*time.Second)
	defer cancel()
	stack, err := StartStack(ctx, StackOptions{Root: root, Envoy: envoy, StellwerkArgv: []string{bin, "serve"}, Shape: ShapeOneModel,
		NoopArgv: []string{os.Args[0], "noop-extproc", "--transport", transport}, FloorMode: FloorPipelined, Dir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	defer stack.Close()
	for _, c := range []struct {
		size   int
		stream bool
	}{{2 << 10, false}, {2 << 10, true}, {6 << 20, false}, {32 << 10, true}} {
		for range 5 {
			body := fmt.Sprintf(`{"model":"gpt-4o-mini","stream":%t,"messages":[{"role":"user","content":%q}]}`, c.stream, strings.Repeat("a", c.size))
			req, _ := http.NewRequestWithContext(ctx, "POST", stack.FloorURL+"/v1/chat/completions", strings.NewReader(body))
			for k, v := range stack.DirectHeaders {
				req.Header.Set(k, v)
			}
			req.Header.Set("Content-Type", "application/json")
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			got, err := io.ReadAll(resp.Body)
			resp.Body.Close()
			if err != nil || resp.StatusCode != 200 {
				t.Fatalf("%d bytes, stream %t: %d %s %v", c.size, c.stream, resp.StatusCode, got, err)
			}
			want := `"object":"chat.completion"`
			if c.stream {
				want = "data: [DONE]"
			}
			if !strings.Contains(string(got), want) {
				t.Fatalf("%d bytes, stream %t: the answer lacks %s: %.300s", c.size, c.stream, want, got)
			}
		}
	}
}

// stackBinaries finds the repository root, Envoy (skipping the test without
// it, unless STELLWERK_E2E=require) and a stellwerk binary: $STELLWERK_BIN,
// else one built from this tree.
func stackBinaries(t *testing.T) (root, envoy, bin string) {
	t.Helper()
	root, err := FindRoot(".")
	if err != nil {
		t.Fatal(err)
	}
	envoy, err = FindEnvoy(root)
	if err != nil {
		if os.Getenv("STELLWERK_E2E") == "require" {
			t.Fatalf("envoy: %v (STELLWERK_E2E=require; run `make tools`)", err)
		}
		t.Skipf("envoy not available: %v (run `make tools`)", err)
	}
	bin = os.Getenv("STELLWERK_BIN")
	if bin == "" { // build from this tree: bin/stellwerk may be stale
		if bin, err = FindStellwerkBuild(root, t.TempDir()); err != nil {
			t.Fatal(err)
		}
	}
	return root, envoy, bin
}

// TestFailoverConfig: the production shape's failover settings are written
// only where a flag set them, under the config's own keys.
func TestFailoverConfig(t *testing.T) {
	if s := failoverConfig(0, 0); s != "" {
		t.Errorf("nothing set: %q", s)
	}
	var c struct {
		Failover struct {
			MaxAttempts            int    `yaml:"max_attempts"`
			StreamFirstByteTimeout string `yaml:"stream_first_byte_timeout"`
		} `yaml:"failover"`
	}
	if err := yaml.Unmarshal([]byte(failoverConfig(1, time.Minute)), &c); err != nil {
		t.Fatal(err)
	}
	if c.Failover.MaxAttempts != 1 || c.Failover.StreamFirstByteTimeout != "1m0s" {
		t.Errorf("both set: %+v", c.Failover)
	}
	c.Failover.MaxAttempts = 0
	if err := yaml.Unmarshal([]byte(failoverConfig(0, 2*time.Second)), &c); err != nil {
		t.Fatal(err)
	}
	if c.Failover.MaxAttempts != 0 || c.Failover.StreamFirstByteTimeout != "2s" {
		t.Errorf("the timeout alone: %+v", c.Failover)
	}
}
