package extproc

import (
	"bufio"
	"encoding/json"
	"os"
	"strings"
	"testing"

	extprocv3 "github.com/envoyproxy/go-control-plane/envoy/service/ext_proc/v3"
)

// BenchmarkChatRequestCorpus is BenchmarkChatRequestRecorded over varied
// prompts, as `stellwerk-bench run --prompts varied` sends them: each
// iteration the next of the task classifier's 728 prompts (code, maths,
// questions, writing, translation, …), its system prompt and text followed
// by prose up to 2 KB. Every request is classified anew and routed by its
// own task; the policy memo meets each classification outcome once and
// answers it from then on, as in a long-running server.
func BenchmarkChatRequestCorpus(b *testing.B) {
	bodies := corpusBodies(b, 2048)
	st := recordedState(b)
	hm := headersMsg("POST", "/v1/chat/completions", false, "authorization", "Bearer sk-open")
	msgs := make([]*extprocv3.ProcessingRequest, len(bodies))
	size := 0
	for i, body := range bodies {
		msgs[i] = bodyMsg(body)
		size += len(body)
	}
	var seen attemptLog
	b.ReportAllocs()
	b.SetBytes(int64(size / len(bodies)))
	i := 0
	for b.Loop() {
		p := benchRequestPhases(b, st, &seen, hm, msgs[i%len(msgs)])
		if p.directID != "" {
			seen.directDone(p.directID)
		}
		i++
	}
}

// corpusBodies are the chat requests of the task classifier's corpus, as
// the bench's varied load builds them (internal/bench.PromptsVaried).
func corpusBodies(b *testing.B, size int) []string {
	f, err := os.Open("../internal/classify/task/testdata/prompts.jsonl")
	if err != nil {
		b.Fatal(err)
	}
	defer f.Close()
	const filler = "The routing layer moved most traffic to the cheaper model during the night shift. "
	var out []string
	sc := bufio.NewScanner(f)
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		var e struct{ Text, System string }
		if err := json.Unmarshal(sc.Bytes(), &e); err != nil {
			b.Fatal(err)
		}
		if e.System == "" {
			e.System = "You are a concise assistant for an operations team."
		}
		sys, _ := json.Marshal(e.System)
		text, _ := json.Marshal(e.Text + "\n\nNotes: ")
		body := `{"model":"auto","messages":[{"role":"system","content":` + string(sys) + `},{"role":"user","content":` +
			strings.TrimSuffix(string(text), `"`)
		for len(body)+len(filler)+4 < size {
			body += filler
		}
		out = append(out, body+`"}]}`)
	}
	if len(out) == 0 {
		b.Fatal("no prompts")
	}
	return out
}
