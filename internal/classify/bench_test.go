package classify

import (
	"encoding/json"
	"fmt"
	"strings"
	"testing"

	"github.com/tidwall/gjson"
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
