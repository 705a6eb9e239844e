package task

import (
	"strings"
	"testing"
)

// benchText builds n bytes of mixed prose, code and numbers ending in an instruction.
func benchText(n int) string {
	const chunk = "The quarterly report shows revenue of 4.2M (+8%) and churn of 3.1%. " +
		"func Sum(xs []int) (s int) { for _, x := range xs { s += x }; return s } " +
		"Die Ergebnisse wurden am 3. Mai veröffentlicht, les résultats sont bons. "
	var b strings.Builder
	for b.Len() < n-40 {
		b.WriteString(chunk)
	}
	s := b.String()[:n-40]
	return s + "\nSummarize the text above in 3 bullets."
}

func BenchmarkClassify(b *testing.B) {
	for _, size := range []struct {
		name string
		n    int
	}{{"1KB", 1 << 10}, {"10KB", 10 << 10}, {"100KB", 100 << 10}, {"1000KB", 1000 << 10}} {
		text := benchText(size.n)
		b.Run(size.name, func(b *testing.B) {
			b.SetBytes(int64(len(text)))
			b.ReportAllocs()
			for b.Loop() {
				Classify("You are a helpful assistant.", text)
			}
		})
	}
}
