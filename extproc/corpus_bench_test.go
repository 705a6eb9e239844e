package extproc

import (
	"testing"

	extprocv3 "github.com/envoyproxy/go-control-plane/envoy/service/ext_proc/v3"

	"github.com/stellwerk/stellwerk/internal/bench"
)

// BenchmarkChatRequestCorpus is BenchmarkChatRequestRecorded over varied
// prompts, the bodies `stellwerk-bench run --prompts varied` sends: each
// iteration the next of the task classifier's 728 prompts (code, maths,
// questions, writing, translation, …), its system prompt and text followed
// by prose up to 2 KB. Every request is classified anew and routed by its
// own task; the policy memo meets each classification outcome once and
// answers it from then on, as in a long-running server.
func BenchmarkChatRequestCorpus(b *testing.B) {
	prompts, err := bench.LoadPrompts("..", bench.PromptsVaried)
	if err != nil {
		b.Fatal(err)
	}
	chat, _ := bench.EndpointNamed("chat")
	msgs := make([]*extprocv3.ProcessingRequest, len(prompts))
	size := 0
	for i, p := range prompts {
		body := string(chat.Body(p, 2048, false, "auto"))
		msgs[i] = bodyMsg(body)
		size += len(body)
	}
	st := recordedState(b)
	hm := headersMsg("POST", "/v1/chat/completions", false, "authorization", "Bearer sk-open")
	var seen attemptLog
	b.ReportAllocs()
	b.SetBytes(int64(size / len(msgs)))
	i := 0
	for b.Loop() {
		p := benchRequestPhases(b, st, &seen, hm, msgs[i%len(msgs)])
		if p.directID != "" {
			seen.directDone(p.directID)
		}
		i++
	}
}
