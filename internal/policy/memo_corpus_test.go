package policy

import (
	"bufio"
	"context"
	"encoding/json"
	"os"
	"reflect"
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
