package classify

import (
	"encoding/json"
	"fmt"
	"strings"
	"testing"

	"github.com/tidwall/gjson"

	"github.com/stellwerk/stellwerk/internal/classify/injection"
	"github.com/stellwerk/stellwerk/internal/classify/pii"
	"github.com/stellwerk/stellwerk/internal/classify/secrets"
	"github.com/stellwerk/stellwerk/internal/classify/task"
)

// benchText builds about n bytes of realistic user text: prose, a code
// snippet, and now and then contact data, as a support or coding prompt has.
func benchText(n int) string {
	blocks := []string{
		"Our customer service team has been receiving complaints about delayed shipments for the last two weeks. ",
		"Could you analyze the following logs and explain step by step why the retry logic fails under load? ",
		"```go\nfunc retry(ctx context.Context, f func() error) error {\n\tfor i := 0; i < 5; i++ {\n\t\tif err := f(); err == nil {\n\t\t\treturn nil\n\t\t}\n\t}\n\treturn errTimeout\n}\n```\n",
		"Please contact maria.rossi@example.com or call +39 06 1234 5678 if anything is unclear. ",
		"The quarterly report shows revenue of 1,245,000 EUR, up 12% compared to last year, while costs rose by 4%. ",
		"Summarize the main risks in three bullet points and propose mitigations for each of them. ",
	}
	var b strings.Builder
	for i := 0; b.Len() < n; i++ {
		b.WriteString(blocks[i%len(blocks)])
	}
	return b.String()[:n]
}

func benchRequest(n int) gjson.Result {
	body, _ := json.Marshal(map[string]any{"model": "auto", "messages": []map[string]string{
		{"role": "system", "content": "You are a helpful assistant for an e-commerce company."},
		{"role": "user", "content": benchText(n)},
	}})
	return gjson.GetBytes(body, "messages")
}

// BenchmarkClassify measures the whole classifier: every detector over every
// segment, plus task, language, complexity and the rules.
func BenchmarkClassify(b *testing.B) {
	cl := defaultClassifier(b)
	for _, size := range []int{2 << 10, 1 << 10, 10 << 10, 100 << 10, 1000 << 10} {
		name := fmt.Sprintf("%dKB", size>>10)
		if size == 2<<10 {
			name = "chat_2KB"
		}
		b.Run(name, func(b *testing.B) {
			msgs := benchRequest(size)
			b.SetBytes(int64(size))
			b.ReportAllocs()
			for b.Loop() {
				cl.Classify(Request{Messages: msgs})
			}
		})
	}
	// The same 2 KB with the user-agent an OpenAI SDK sends, which a
	// provider gets and is read as a parameter.
	b.Run("chat_2KB_user_agent", func(b *testing.B) {
		msgs := benchRequest(2 << 10)
		hs := []Header{{Name: "user-agent", Value: "OpenAI/Python 1.54.3"}}
		b.SetBytes(2 << 10)
		b.ReportAllocs()
		for b.Loop() {
			cl.Classify(Request{Messages: msgs, Headers: hs})
		}
	})
}

// toolRequest is an agent turn: a system prompt, 20 tool definitions with
// JSON schemas, and a history of 10 tool calls with their results.
func toolRequest() []byte {
	var tools []map[string]any
	for i := range 20 {
		tools = append(tools, map[string]any{"type": "function", "function": map[string]any{
			"name":        fmt.Sprintf("tool_%d", i),
			"description": "Look up the order history of a customer and return the last orders with their status. Use it when the user asks about an order.",
			"parameters": map[string]any{"type": "object", "required": []string{"customer_id"}, "properties": map[string]any{
				"customer_id": map[string]any{"type": "string", "description": "The customer's id, as shown in the CRM."},
				"limit":       map[string]any{"type": "integer", "description": "How many orders to return (1-50).", "minimum": 1, "maximum": 50},
				"status":      map[string]any{"type": "string", "enum": []string{"open", "shipped", "delivered", "returned"}},
			}},
		}})
	}
	msgs := []map[string]any{{"role": "system", "content": "You are a support agent for an e-commerce company. Use the tools."},
		{"role": "user", "content": benchText(600)}}
	for i := range 10 {
		id := fmt.Sprintf("call_%d", i)
		msgs = append(msgs,
			map[string]any{"role": "assistant", "content": nil, "tool_calls": []map[string]any{{"id": id, "type": "function",
				"function": map[string]any{"name": fmt.Sprintf("tool_%d", i), "arguments": `{"customer_id":"C-48213","limit":5}`}}}},
			map[string]any{"role": "tool", "tool_call_id": id, "content": `[{"order":"A-1","status":"shipped","total":"129.00 EUR"},{"order":"A-2","status":"open"}]`})
	}
	body, _ := json.Marshal(map[string]any{"model": "auto", "messages": msgs, "tools": tools})
	return body
}

// paddedRequest is one user message of n one-character text parts and a
// part with personal data and a key: the security review's attack.
func paddedRequest(n int) []byte {
	parts := make([]map[string]string, 0, n+1)
	for range n {
		parts = append(parts, map[string]string{"type": "text", "text": "a"})
	}
	parts = append(parts, map[string]string{"type": "text", "text": "Pay to DE89 3704 0044 0532 0130 00, key AKIAIOSFODNN7EXAMPLE"})
	body, _ := json.Marshal(map[string]any{"model": "auto", "messages": []map[string]any{{"role": "user", "content": parts}}})
	return body
}

// BenchmarkClassifyShapes measures request shapes other than one long
// message: tools and tool calls, and many tiny parts up to the cap.
func BenchmarkClassifyShapes(b *testing.B) {
	cl := defaultClassifier(b)
	for _, c := range []struct {
		name string
		body []byte
	}{{"tools_20_calls_10", toolRequest()}, {"padded_4097_parts", paddedRequest(4096)}, {"parts_past_cap", paddedRequest(MaxSegments)}} {
		b.Run(c.name, func(b *testing.B) {
			req := bodyRequest(gjson.ParseBytes(c.body))
			b.SetBytes(int64(len(c.body)))
			b.ReportAllocs()
			for b.Loop() {
				cl.Classify(req)
			}
		})
	}
}

// BenchmarkDetectors measures each of the classifier's passes over the
// same prose on its own, 2 KB and 32 KB: where Classify's time goes.
func BenchmarkDetectors(b *testing.B) {
	cl := defaultClassifier(b)
	counts := make([]int, len(cl.terms.Names()))
	var pb [32]pii.Match
	var sb [8]secrets.Match
	for _, size := range []int{2 << 10, 32 << 10} {
		text, msgs := benchText(size), benchRequest(size)
		for _, c := range []struct {
			name string
			f    func()
		}{
			{"extract", func() { x := extraction{}; x.request(Request{Messages: msgs}) }},
			{"terms", func() { cl.terms.Count(text, counts) }},
			{"tokens", func() { EstimateTokens(text) }},
			{"secrets", func() { secrets.Detect(text, sb[:0]) }},
			{"pii", func() { pii.Detect(text, pb[:0]) }},
			{"injection", func() { injection.Score(text) }},
			{"task", func() { task.Classify("You are a helpful assistant.", text) }},
			{"language", func() { DetectLanguage(text) }},
			{"complexity", func() { measureComplexity(text, 500, 2, 0) }},
		} {
			b.Run(fmt.Sprintf("%s/%dKB", c.name, size>>10), func(b *testing.B) {
				b.SetBytes(int64(len(text)))
				b.ReportAllocs()
				for b.Loop() {
					c.f()
				}
			})
		}
	}
}

func BenchmarkEstimateTokens(b *testing.B) {
	text := benchText(100 << 10)
	b.SetBytes(int64(len(text)))
	b.ReportAllocs()
	for b.Loop() {
		EstimateTokens(text)
	}
}

func BenchmarkDetectLanguage(b *testing.B) {
	text := benchText(100 << 10)
	b.SetBytes(int64(len(text)))
	b.ReportAllocs()
	for b.Loop() {
		DetectLanguage(text)
	}
}

// evictBuf is larger than a core's L2 cache: walking it between two
// requests leaves the classifier's tables and code where a request finds
// them at 100 requests/s, after Envoy, the provider and the other
// requests' work have run on the core.
var evictBuf = make([]byte, 4<<20)

func evictCaches() {
	for i := 0; i < len(evictBuf); i += 64 {
		evictBuf[i]++
	}
}

// BenchmarkClassifyCold is chat_2KB with the caches evicted before each
// request (the eviction is not timed).
func BenchmarkClassifyCold(b *testing.B) {
	cl := defaultClassifier(b)
	msgs := benchRequest(2 << 10)
	b.SetBytes(2 << 10)
	b.ReportAllocs()
	for b.Loop() {
		b.StopTimer()
		evictCaches()
		b.StartTimer()
		cl.Classify(Request{Messages: msgs})
	}
}

// conversationRequests are turn after turn of conversations: request k of
// a conversation is its system prompt and its first k texts, user and
// assistant in turn, each text ~0.6 KB (user) or ~0.9 KB (assistant) and
// unlike any other conversation's.
func conversationRequests(conversations, turns int) []gjson.Result {
	var out []gjson.Result
	for c := range conversations {
		var texts []string
		for t := range turns {
			n := 600
			if t%2 == 1 {
				n = 900
			}
			texts = append(texts, fmt.Sprintf("Conversation %d, turn %d. ", c, t)+benchText(n + t*7)[t%5*3:])
		}
		for k := 1; k <= turns; k++ {
			msgs := []map[string]string{{"role": "system", "content": "You are a helpful assistant for an e-commerce company."}}
			for i, t := range texts[:k] {
				role := "user"
				if i%2 == 1 {
					role = "assistant"
				}
				msgs = append(msgs, map[string]string{"role": role, "content": t})
			}
			body, _ := json.Marshal(map[string]any{"model": "auto", "messages": msgs})
			out = append(out, gjson.GetBytes(body, "messages"))
		}
	}
	return out
}

// BenchmarkClassifyAppPrompt is an application's request: the same 3 KB
// system prompt every time and a new 500-byte user message. With the memo
// the system prompt's findings and the task model's reading of it are
// looked up; no_memo reads it every time (as before the memo). Each user
// message is new: the benchmark cycles through 1,000 of them, a new
// caller on each pass.
func BenchmarkClassifyAppPrompt(b *testing.B) {
	system := strings.Repeat("You are the support assistant of an online shop. Answer in the customer's language, cite the order number, never promise refunds. ", 24)[:3<<10]
	var reqs []gjson.Result
	for i := range 1000 {
		body, _ := json.Marshal(map[string]any{"model": "auto", "messages": []map[string]string{
			{"role": "system", "content": system},
			{"role": "user", "content": fmt.Sprintf("Question %d. ", i) + benchText(500)},
		}})
		reqs = append(reqs, gjson.GetBytes(body, "messages"))
	}
	benchmarkMemo(b, reqs)
}

// BenchmarkClassifyConversation classifies 50 conversations of 20 turns,
// each turn resending the ones before (1.4–16 KB, 9.2 KB on average), in
// order: memo is the classifier as it runs, no_memo scans every text
// every time (as before the memo). Each pass over the 1,000 requests is a
// new caller, so nothing is found that this caller did not send before.
func BenchmarkClassifyConversation(b *testing.B) {
	reqs := conversationRequests(50, 20)
	benchmarkMemo(b, reqs)
}

// benchmarkMemo classifies reqs in turn, with the memo and without (as
// before it); each pass over them is a new caller, so nothing is found
// that the caller did not send before.
func benchmarkMemo(b *testing.B, reqs []gjson.Result) {
	size := 0
	for _, r := range reqs {
		size += len(r.Raw)
	}
	for _, memo := range []bool{true, false} {
		name := "memo"
		if !memo {
			name = "no_memo"
		}
		b.Run(name, func(b *testing.B) {
			cl := defaultClassifier(b)
			if !memo {
				cl.memo = nil
			}
			b.SetBytes(int64(size / len(reqs)))
			b.ReportAllocs()
			i, scope := 0, ""
			for b.Loop() {
				if i%len(reqs) == 0 {
					scope = fmt.Sprint("pass-", i/len(reqs))
				}
				cl.Classify(Request{Messages: reqs[i%len(reqs)], Key: scope})
				i++
			}
		})
	}
}

// BenchmarkPlain is the pass that looks for characters a model reads
// through, on 2 KB of text in which there are none: what every request
// pays for it.
func BenchmarkPlain(b *testing.B) {
	for name, line := range map[string]string{
		"ascii":  "Please summarise the quarterly report for the board and list the risks. ",
		"latin":  "Bitte fasse den Quartalsbericht für den Vorstand zusammen, später gern. ",
		"arabic": "يرجى تلخيص التقرير الفصلي لمجلس الإدارة وذكر المخاطر والخطوات التالية. ",
		"cjk":    "请为董事会总结季度报告，并列出风险、负责人和下一步工作。",
	} {
		text := strings.Repeat(line, 2048/len(line)+1)[:2048]
		text = strings.ToValidUTF8(text, "")
		b.Run(name, func(b *testing.B) {
			b.SetBytes(int64(len(text)))
			b.ReportAllocs()
			for b.Loop() {
				plain(text)
			}
		})
	}
}
