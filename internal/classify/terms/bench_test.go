package terms

import (
	"fmt"
	"runtime"
	"strings"
	"testing"
)

// benchLists are 1,000 terms in 10 lists: one- to three-word code names
// and product terms, some with accents, as a platform team would list them.
func benchLists() []List {
	words := strings.Fields("zephyr aurora nimbus cobalt falcon helios orion quasar tundra vega boréal crête " +
		"delta ember fjord glacier harbor iris jade kestrel lumen mistral nova onyx pulsar quill raven sierra talon umbra")
	lists := make([]List, 10)
	for i := range 1000 {
		a, b := words[i%len(words)], words[(i/len(words))%len(words)]
		var t string
		switch i % 3 {
		case 0:
			t = fmt.Sprintf("project %s %s", a, b)
		case 1:
			t = fmt.Sprintf("%s-%s %d", a, b, i)
		default:
			t = fmt.Sprintf("%s%s", a, b)
		}
		lists[i%10].Terms = append(lists[i%10].Terms, t)
	}
	for i := range lists {
		lists[i].Name = fmt.Sprintf("list_%d", i)
	}
	return lists
}

// benchText is 2 KiB of ordinary prompt text (English, a few accents)
// mentioning two of the terms.
func benchText() string {
	p := "Please summarise the quarterly report for the board. Revenue grew in the Nordic region, the café chain " +
		"in Zürich renewed its contract, and Project Zephyr Aurora moved to the pilot phase; costs for the data " +
		"centre migration stayed within budget. List the risks, the owners and the next steps in a short table. "
	var b strings.Builder
	for b.Len() < 2048 {
		b.WriteString(p)
	}
	return b.String()[:2048]
}

// BenchmarkCount is the cost a request pays for classify.terms: 1,000
// terms, 2 KiB of text (docs/benchmarks.md).
func BenchmarkCount(b *testing.B) {
	m, err := New(benchLists())
	if err != nil {
		b.Fatal(err)
	}
	text := benchText()
	counts := make([]int, len(m.Names()))
	m.Count(text, counts)
	if counts[0] == 0 {
		b.Fatalf("the text mentions no term: %v", counts)
	}
	b.SetBytes(int64(len(text)))
	b.ReportAllocs()
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	cpu0 := threadCPU()
	b.ResetTimer()
	for range b.N {
		m.Count(text, counts)
	}
	b.StopTimer()
	b.ReportMetric(float64(threadCPU()-cpu0)/float64(b.N), "cpu-ns/op")
}

// BenchmarkCountWithPatterns adds two patterns: each is one regexp pass more.
func BenchmarkCountWithPatterns(b *testing.B) {
	lists := benchLists()
	lists[0].Patterns = []string{`zph-\d{4}`, `\bproject [a-z]+ [a-z]+\b`}
	m, err := New(lists)
	if err != nil {
		b.Fatal(err)
	}
	text := benchText()
	counts := make([]int, len(m.Names()))
	b.SetBytes(int64(len(text)))
	b.ReportAllocs()
	b.ResetTimer()
	for range b.N {
		m.Count(text, counts)
	}
}

// BenchmarkNew is the compile cost at load and reload.
func BenchmarkNew(b *testing.B) {
	lists := benchLists()
	b.ReportAllocs()
	for range b.N {
		if _, err := New(lists); err != nil {
			b.Fatal(err)
		}
	}
}
