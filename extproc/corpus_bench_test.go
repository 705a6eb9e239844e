package extproc

import (
	"bytes"
	"compress/gzip"
	"crypto/sha256"
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	extprocv3 "github.com/envoyproxy/go-control-plane/envoy/service/ext_proc/v3"

	"github.com/stellwerk/stellwerk/internal/bench"
	"github.com/stellwerk/stellwerk/internal/classify"
	"github.com/stellwerk/stellwerk/internal/config"
	"github.com/stellwerk/stellwerk/internal/telemetry"
)

// BenchmarkChatRequestCorpus is BenchmarkChatRequestRecorded over varied
// prompts, the bodies `stellwerk-bench run --prompts varied` sends: each
// iteration the next of the task classifier's 728 prompts (code, maths,
// questions, writing, translation, …), its system prompt and text followed
// by prose up to 2 KB. Every request is classified anew and routed by its
// own task; the policy memo meets each classification outcome once and
// answers it from then on, as in a long-running server.
func BenchmarkChatRequestCorpus(b *testing.B) { benchmarkCorpus(b, 2048) }

// BenchmarkChatRequestCorpusLarge is BenchmarkChatRequestCorpus with each
// prompt filled to 32 KB, the bench's large size, where the classifiers'
// passes over the text and the JSON's are most of a request's work.
func BenchmarkChatRequestCorpusLarge(b *testing.B) { benchmarkCorpus(b, 32768) }

// BenchmarkChatRequestCorpusCold is BenchmarkChatRequestCorpus on a core
// that did other work between two requests, as a server's does at a
// hundred requests a second: before each request (untimed) other code
// runs — JSON, compression, hashing over 256 KB — and 8 MB of memory is
// walked, so the request meets the caches, TLBs and branch predictors
// that work left. Its stage metrics are the loop's counterpart of the live
// ones in make bench.
func BenchmarkChatRequestCorpusCold(b *testing.B) {
	b.Run("2KB", func(b *testing.B) { benchmarkCorpusBetween(b, 2048, otherWork()) })
}

func benchmarkCorpus(b *testing.B, size int) { benchmarkCorpusBetween(b, size, nil) }

// otherWork returns a function that runs unrelated code over unrelated
// data: what Envoy, the provider and the other requests do to a core.
func otherWork() func() {
	walk := make([]byte, 8<<20)
	text := []byte(strings.Repeat("Lorem ipsum dolor sit amet, consectetur adipiscing elit. ", 4700)) // 256 KB
	doc := map[string]any{"a": []any{1.5, "x", true, map[string]any{"b": "c"}}, "text": string(text[:4096])}
	return func() {
		for i := 0; i < len(walk); i += 64 {
			walk[i]++
		}
		var z bytes.Buffer
		w, _ := gzip.NewWriterLevel(&z, gzip.BestSpeed)
		w.Write(text)
		w.Close()
		sha256.Sum256(text)
		for range 8 {
			j, _ := json.Marshal(doc)
			var back map[string]any
			_ = json.Unmarshal(j, &back)
		}
	}
}

func benchmarkCorpusBetween(b *testing.B, size int, between func()) {
	prompts, err := bench.LoadPrompts("..", bench.PromptsVaried)
	if err != nil {
		b.Fatal(err)
	}
	chat, _ := bench.EndpointNamed("chat")
	msgs := make([]*extprocv3.ProcessingRequest, len(prompts))
	total := 0
	for i, p := range prompts {
		body := string(chat.Body(p, size, false, "auto"))
		msgs[i] = bodyMsg(body)
		total += len(body)
	}
	benchmarkBodies(b, recordedState(b), msgs, total, nil, between)
}

// BenchmarkChatRequestConversation is BenchmarkChatRequestRecorded over
// conversations, turn after turn: 40 conversations of 10 user prompts from
// the corpus (each with 600 bytes of notes) and 9 answers of 900 bytes
// between them; request k resends the k-1 turns before it (0.8–14 KB).
// The classifier finds what the key sent in earlier turns in its memo
// (internal/classify/memo.go); each pass over the 760 requests starts
// with a new one, so nothing comes from an earlier pass.
func BenchmarkChatRequestConversation(b *testing.B) {
	prompts, err := bench.LoadPrompts("..", bench.PromptsVaried)
	if err != nil {
		b.Fatal(err)
	}
	c, err := config.Load("../examples/production.yaml")
	if err != nil {
		b.Fatal(err)
	}
	c.ApplyDefaults()
	notes := strings.Repeat("The routing layer moved most traffic to the cheaper model during the night shift. ", 12)
	var msgs []*extprocv3.ProcessingRequest
	size := 0
	for conv := range 40 {
		turns := []map[string]string{{"role": "system", "content": prompts[conv*10].System}}
		for t := range 10 {
			p := prompts[(conv*10+t)%len(prompts)]
			if t > 0 {
				turns = append(turns, map[string]string{"role": "assistant",
					"content": fmt.Sprintf("Answer %d of conversation %d. %s", t, conv, notes[:900])})
			}
			turns = append(turns, map[string]string{"role": "user", "content": p.Text + "\n\nNotes: " + notes[:600]})
			body, _ := json.Marshal(map[string]any{"model": "auto", "max_tokens": 300, "messages": turns})
			msgs = append(msgs, bodyMsg(string(body)))
			size += len(body)
		}
	}
	st := recordedState(b)
	benchmarkBodies(b, st, msgs, size, func() {
		if st.Router.Classifier, err = classify.New(c.Classify); err != nil {
			b.Fatal(err)
		}
	}, nil)
}

// benchmarkBodies runs the request phases of each body message in turn
// with a virtual key; pass, when set, runs (untimed) before each pass over
// them.
// benchmarkBodies runs the request phases over msgs in turn. pass, if
// set, runs (untimed) before each pass over them; between before each
// request.
func benchmarkBodies(b *testing.B, st *State, msgs []*extprocv3.ProcessingRequest, size int, pass, between func()) {
	hm := headersMsg("POST", "/v1/chat/completions", false, "authorization", "Bearer sk-open")
	var seen attemptLog
	var stages telemetry.Overhead // summed, reported per request as the live metric splits it
	b.ReportAllocs()
	b.SetBytes(int64(size / len(msgs)))
	i := 0
	for b.Loop() {
		if pass != nil && i%len(msgs) == 0 {
			b.StopTimer()
			pass()
			b.StartTimer()
		}
		if between != nil {
			b.StopTimer()
			between()
			b.StartTimer()
		}
		p := benchRequestPhases(b, st, &seen, hm, msgs[i%len(msgs)])
		if p.directID != "" {
			seen.directDone(p.directID)
		}
		stages.Parse += p.stages.Parse
		stages.Classify += p.stages.Classify
		stages.Policy += p.stages.Policy
		stages.Select += p.stages.Select
		i++
	}
	per := func(d time.Duration) float64 { return float64(d.Microseconds()) / float64(max(i, 1)) }
	b.ReportMetric(per(stages.Parse), "parse-µs/op")
	b.ReportMetric(per(stages.Classify), "classify-µs/op")
	b.ReportMetric(per(stages.Policy), "policy-µs/op")
	b.ReportMetric(per(stages.Select), "select-µs/op")
}
