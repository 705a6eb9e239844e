package pii

import (
	"strconv"
	"strings"
	"testing"
)

// benchParagraphs is chat-like prose: mostly words, some figures, dates,
// versions and prices, and now and then a piece of personal data.
var benchParagraphs = []string{
	"Hi! Could you help me rewrite this paragraph so it sounds friendlier? We shipped version 2.4.1 on 2024-03-17 and the rollout went fine, except that 12 of 340 pods restarted twice. ",
	"Our customer Jane wrote from jane.doe@example.com asking why her invoice for $1,250.00 was charged twice; she said you can call her at +44 20 7946 0958 after 5pm. ",
	"Summarise the following meeting notes in three bullet points. The team agreed to migrate the billing service by Q3, to keep the legacy API for another 90 days, and to review costs monthly. ",
	"Translate into German: the parcel with order number 4471 will arrive on Tuesday between 10:00 and 14:00, please make sure someone is at home to sign for it. ",
	"The server at 10.20.30.40 keeps timing out; logs show 502 errors every 15 minutes, and the load balancer health check on port 8080 reports 3 of 4 targets unhealthy. ",
	"Please refund card 4111 1111 1111 1111 and move the money to DE89 3704 0044 0532 0130 00 instead; the reference on the statement should read REF-2024-0042. ",
	"Write a short poem about autumn leaves drifting down the river, with a hopeful ending and no more than twelve lines, in the style of a nineteenth-century English poet. ",
	"Explain the difference between a mutex and a semaphore in Go, with an example that uses sync.WaitGroup and a buffered channel of size 8, and mention common pitfalls. ",
}

func benchText(size int) string {
	var b strings.Builder
	for k := 0; b.Len() < size; k++ {
		b.WriteString(benchParagraphs[k%len(benchParagraphs)])
	}
	return b.String()[:size]
}

func BenchmarkDetect(b *testing.B) {
	for _, kb := range []int{1, 10, 100, 1000} {
		text := benchText(kb << 10)
		b.Run(strconv.Itoa(kb)+"KB", func(b *testing.B) {
			dst := make([]Match, 0, 1<<14)
			b.SetBytes(int64(len(text)))
			b.ReportAllocs()
			for b.Loop() {
				dst = Detect(text, dst[:0])
			}
		})
	}
}
