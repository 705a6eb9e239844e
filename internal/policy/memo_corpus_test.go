package policy

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"reflect"
	"runtime"
	"sync"
	"testing"

	"github.com/tidwall/gjson"
	"go.uber.org/zap"

	"github.com/stellwerk/stellwerk/internal/classify"
	"github.com/stellwerk/stellwerk/internal/config"
)

// corpus is the task classifier's prompt corpus (728 prompts: benchmark
// rows and everyday requests), each classified by the shipped classifier
// as a one-message chat request.
func corpus(tb testing.TB) []*classify.Result {
	f, err := os.Open("../classify/task/testdata/prompts.jsonl")
	if err != nil {
		tb.Fatal(err)
	}
	defer f.Close()
	cl, err := classify.New(config.Classify{})
	if err != nil {
		tb.Fatal(err)
	}
	var out []*classify.Result
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		text := gjson.GetBytes(sc.Bytes(), "text").Str
		msgs, _ := json.Marshal([]map[string]string{{"role": "user", "content": text}})
		r := cl.Classify(classify.Request{Messages: gjson.ParseBytes(msgs)})
		out = append(out, &r)
	}
	if len(out) < 500 {
		tb.Fatalf("corpus has %d prompts", len(out))
	}
	return out
}

// shippedLive is the shipped library over the shipped catalog, live
// latencies and a cooldown, and a plain request of the support workspace.
func shippedLive(tb testing.TB) (*Engine, *Input, *CatalogTerms, *liveState) {
	m, err := NewManager(context.Background(), Source{Library: true}, zap.NewNop())
	if err != nil {
		tb.Fatal(err)
	}
	c, cat := production(tb)
	return m.Current(), shippedRequest(c, false), NewCatalogTerms(cat), newLiveState(cat, "openai")
}

// TestMemoOverACorpus: over hundreds of different prompts the memo's
// decisions are exactly what an evaluation gives, and (with the injection
// score rounded to 0.01) most prompts share a decision with an earlier one.
func TestMemoOverACorpus(t *testing.T) {
	e, in, ct, st := shippedLive(t)
	for _, cls := range corpus(t) {
		st.step()
		in.Classification = cls
		in.Candidates = st.candidates(cls.Task, cls.InputTokens, 512)
		got, err := e.Decide(context.Background(), in, ct)
		if err != nil {
			t.Fatal(err)
		}
		v, release := in.Value(ct)
		want, err := e.Eval(context.Background(), v)
		release()
		if err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(got, want) {
			t.Fatalf("memo answered %+v, evaluation %+v (score %v)", got, want, cls.Injection.Score)
		}
	}
	hits, misses := e.MemoStats()
	t.Logf("memo over %d prompts: %d evaluated, %d answered from the memo", hits+misses, misses, hits)
	if hits+misses == 0 || misses == 0 {
		t.Fatalf("the memo was not used (hits %d, misses %d)", hits, misses)
	}
}

// BenchmarkDecideCorpus is the policy's cost per request over a stream of
// different prompts (the corpus, in order, again and again), live
// latencies and a cooldown included: memo hits and the evaluations of
// what it has not seen, in the proportion this stream has them.
func BenchmarkDecideCorpus(b *testing.B) {
	e, in, ct, st := shippedLive(b)
	in.WorkspaceTerm = NewWorkspaceTerm(in.Workspace, in.Team) // the router keeps one per workspace
	prompts := corpus(b)
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		cls := prompts[i%len(prompts)]
		i++
		st.step()
		in.Classification = cls
		in.Candidates = st.candidates(cls.Task, cls.InputTokens, 512)
		if _, err := e.Decide(context.Background(), in, ct); err != nil {
			b.Fatal(err)
		}
	}
	hits, misses := e.MemoStats()
	b.ReportMetric(float64(misses)/float64(hits+misses), "evaluated/op")
}

// euWorkspaces are n workspaces of the production example's support
// workspace, each with its own name and EU residency: every request of
// each excludes the same 49 models, for reasons that name its workspace.
func euWorkspaces(in *Input, n int) []*WorkspaceTerm {
	terms := make([]*WorkspaceTerm, n)
	for i := range terms {
		w := in.Workspace
		w.Name, w.Residency, w.Allow = fmt.Sprintf("ws-%04d", i), "eu", nil
		terms[i] = NewWorkspaceTerm(w, nil)
	}
	return terms
}

// TestMemoSharesAcrossWorkspaces: many workspaces' decisions are what an
// evaluation gives, concurrently, and the memo keeps one copy of each
// exclusion map however many entries hold it (one per workspace here: the
// reasons name it).
func TestMemoSharesAcrossWorkspaces(t *testing.T) {
	e, in, ct, st := shippedLive(t)
	terms := euWorkspaces(in, 8)
	prompts := corpus(t)[:24]
	cands := st.candidates("summarization", 500, 512)
	var wg sync.WaitGroup
	for g := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i, cls := range prompts {
				req := *in
				req.Classification = cls
				req.WorkspaceTerm = terms[(i+g)%len(terms)]
				req.Candidates = cands
				got, err := e.Decide(context.Background(), &req, ct)
				if err != nil {
					t.Error(err)
					return
				}
				v, release := req.Value(ct)
				want, err := e.Eval(context.Background(), v)
				release()
				if err != nil || !reflect.DeepEqual(got, want) {
					t.Errorf("memo answered %+v, evaluation %+v (%v)", got, want, err)
					return
				}
			}
		}()
	}
	wg.Wait()
	e.memo.mu.RLock()
	defer e.memo.mu.RUnlock()
	maps := map[uintptr]bool{}
	for _, d := range e.memo.cur {
		if d == readsName {
			continue // the reasons name the workspace (share.go)
		}
		if len(d.Exclude) != 49 {
			t.Fatalf("a decision excludes %d models, want 49", len(d.Exclude))
		}
		maps[reflect.ValueOf(d.Exclude).Pointer()] = true
	}
	if len(e.memo.cur) <= len(terms) || len(maps) != len(terms) {
		t.Errorf("%d entries hold %d exclusion maps, want one per workspace (%d)", len(e.memo.cur), len(maps), len(terms))
	}
}

// BenchmarkDecideWorkspaces is BenchmarkDecideCorpus over 1,000 EU
// workspaces, requests spread over them: with -benchtime 150000x the memo
// reaches its steady state (evaluated/op is what it still evaluates;
// memo-KB/entry its size, from the heap).
func BenchmarkDecideWorkspaces(b *testing.B) {
	e, in, ct, st := shippedLive(b)
	terms := euWorkspaces(in, 1000)
	prompts := corpus(b)
	var m0, m1 runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&m0)
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		cls := prompts[(i*7919)%len(prompts)]
		in.WorkspaceTerm = terms[(i*104729)%len(terms)]
		i++
		st.step()
		in.Classification = cls
		in.Candidates = st.candidates(cls.Task, cls.InputTokens, 512)
		if _, err := e.Decide(context.Background(), in, ct); err != nil {
			b.Fatal(err)
		}
	}
	runtime.GC()
	runtime.ReadMemStats(&m1)
	hits, misses := e.MemoStats()
	b.ReportMetric(float64(misses)/float64(hits+misses), "evaluated/op")
	if n := len(e.memo.cur) + len(e.memo.prev); n > 0 {
		b.ReportMetric(float64(int64(m1.HeapAlloc)-int64(m0.HeapAlloc))/1024/float64(n), "memo-KB/entry")
	}
}
