package audit

import (
	"context"
	"fmt"
	"math/rand/v2"
	"slices"
	"testing"
	"time"

	"github.com/stellwerk/stellwerk/internal/handoff"
)

// BenchmarkRecord is what the request path pays: building the record's
// struct (one allocation, as the edge does) and Record handing it over. A
// goroutine empties the buffer as the writer would, without writing, so
// the figure is the hand-over alone at any b.N; the writer's own cost is
// BenchmarkLogThroughput's. p50 and p99 are of single calls.
func BenchmarkRecord(b *testing.B) {
	l := &Log{in: handoff.New[*Record](1<<16, 512), o: Options{Buffer: 1 << 16}}
	stop := make(chan struct{})
	go func() {
		var batch []*Record
		for {
			select {
			case <-l.in.Wake():
				batch = l.in.Take(batch[:0], 0)
			case <-stop:
				return
			}
		}
	}()
	defer close(stop)
	tmpl := decision(1, "support")
	lat := make([]time.Duration, 0, 1<<16)
	b.ReportAllocs()
	for b.Loop() {
		start := time.Now()
		r := new(Record)
		*r = *tmpl
		r.Time = time.Time{}
		l.Record(r)
		if len(lat) < cap(lat) {
			lat = append(lat, time.Since(start))
		}
	}
	slices.Sort(lat)
	if len(lat) > 0 {
		b.ReportMetric(float64(lat[len(lat)/2].Nanoseconds()), "p50-ns")
		b.ReportMetric(float64(lat[len(lat)*99/100].Nanoseconds()), "p99-ns")
	}
	if d := l.dropped.Load(); d > 0 {
		b.ReportMetric(float64(d), "dropped")
	}
}

// BenchmarkStoreAppend is the store's throughput: batches of sealed
// decision records committed in one transaction, on SQLite and PostgreSQL,
// for records of 8 candidates (about 3 KB of JSON) and of the shipped
// catalog's 71 (about 17 KB, as production writes them); stored-B is what
// a record takes in the store after compression.
func BenchmarkStoreAppend(b *testing.B) {
	for _, be := range backends() {
		for _, c := range []struct{ cands, batch int }{{8, 512}, {71, 512}, {71, 25}} {
			name := fmt.Sprintf("%s/candidates=%d", be.name, c.cands)
			if c.batch != 512 { // the writer's batch at 500 requests/s (50 ms)
				name += fmt.Sprintf("/batch=%d", c.batch)
			}
			cands, batch := c.cands, c.batch
			b.Run(name, func(b *testing.B) {
				st := openStore(b, be.open(b))
				prev, seq := "", uint64(0)
				es := make([]Entry, batch)
				var json, stored int
				for b.Loop() {
					b.StopTimer()
					for i := range es {
						seq++
						body, _ := jsonRecord(wideDecision(int(seq), cands))
						es[i] = Entry{Writer: "bench/1", Seq: seq, Time: time.Now().UTC().Truncate(time.Microsecond), Kind: KindDecision,
							Workspace: "support", ID: fmt.Sprint(seq), Body: body}
						es[i].seal(prev)
						prev = es[i].Hash
					}
					b.StartTimer()
					if err := st.Append(context.Background(), es, nil); err != nil {
						b.Fatal(err)
					}
					b.StopTimer()
					json, stored = len(es[0].Body), len(putBody(es[0].Body))
					if d := st.dicts.cur; d != nil { // against the store's dictionary, as Append stored it
						stored = len(d.d.Encode(nil, es[0].Body))
					}
					b.StartTimer()
				}
				b.ReportMetric(float64(b.N*batch)/b.Elapsed().Seconds(), "records/s")
				b.ReportMetric(float64(json), "json-B")
				b.ReportMetric(float64(stored), "stored-B")
			})
		}
	}
}

// wideDecision is decision(i) with n candidate lines, the ones past the
// eighth written as the shipped catalog's are in production: rejected or
// excluded with a reason, an estimated cost, quality, latency, residency.
// As in production, the numbers change from request to request — the
// estimated costs with the request's tokens, the learned latencies, the
// eligible lines' ranks and scores — so a record compresses about as a
// real one does (~2 KB against the store's dictionary, where records whose
// numbers repeat took ~0.4 KB; BenchmarkStoreAppendExport has real ones).
func wideDecision(i, n int) *Record {
	r := decision(i, "support")
	reasons := []string{"provider credential not configured", "residency: workspace legal requires eu, model is us",
		"context window 8192 tokens is smaller than the request's 9120", "quality 0.52 below the floor 0.70 for summarize"}
	for j := len(r.Candidates); j < n; j++ {
		c := Candidate{Model: fmt.Sprintf("vendor-%d/model-%d-instruct", j%9, j), Provider: fmt.Sprintf("vendor-%d", j%9),
			Verdict: "eligible", EstimatedCostEUR: 0.000117392 * float64(j+1) / 7,
			Quality: 0.2 + float64(j%40)/57, LatencyMS: 300 + 37*j, Residency: []string{"us", "eu", "onprem"}[j%3]}
		if j%5 == 0 { // about as many lines as on the shipped catalog are rejected
			c.Verdict, c.Reason = []string{"rejected", "excluded"}[j%2], reasons[j%len(reasons)]
		}
		r.Candidates = append(r.Candidates, c)
	}
	rng := rand.New(rand.NewPCG(uint64(i), 71))
	tokens := 50 + rng.Float64()*2000
	rank := rng.Perm(len(r.Candidates))
	for j := range r.Candidates {
		c := &r.Candidates[j]
		c.EstimatedCostEUR = Money(c.EstimatedCostEUR * tokens / 231)
		c.LatencyMS += rng.IntN(40)
		if c.Verdict == "eligible" || c.Verdict == "chosen" {
			c.Rank = rank[j] + 1
			c.Score = float64(rng.IntN(1_000_000)) / 1_000_000
		}
	}
	return r
}

// BenchmarkLogThroughput is the whole writer: Record, seal (JSON + two
// hashes), group commit, until everything is in the store.
func BenchmarkLogThroughput(b *testing.B) {
	for _, be := range backends() {
		b.Run(be.name, func(b *testing.B) {
			st := openStore(b, be.open(b))
			o := testOptions(b)
			o.BatchInterval, o.BatchSize, o.Buffer = 50*time.Millisecond, 512, 1<<16
			o.StoreTimeout = time.Minute
			l := openLog(b, st, testSigner("a"), o)
			const n = 20000
			recs := make([]*Record, n)
			b.ResetTimer()
			for b.Loop() {
				b.StopTimer()
				for i := range recs {
					recs[i] = decision(i, "support")
				}
				b.StartTimer()
				for _, r := range recs {
					for !l.Record(r) {
						time.Sleep(100 * time.Microsecond)
					}
				}
				flush(b, l)
			}
			b.ReportMetric(float64(b.N*n)/b.Elapsed().Seconds(), "records/s")
		})
	}
}

// BenchmarkVerify is verification speed over a stored chain.
func BenchmarkVerify(b *testing.B) {
	db := backends()[0].open(b)
	st := openStore(b, db)
	s := testSigner("a")
	o := testOptions(b)
	o.Buffer = 1 << 16
	l := openLog(b, st, s, o)
	recordN(b, l, 0, 10000)
	closeLog(b, l)
	b.ResetTimer()
	for b.Loop() {
		rep, err := st.Verify(context.Background(), []PublicKey{s.Public()}, VerifyOptions{})
		if err != nil || !rep.OK() {
			b.Fatal(err, rep)
		}
	}
	b.ReportMetric(float64(b.N*10000)/b.Elapsed().Seconds(), "records/s")
}
