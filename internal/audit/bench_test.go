package audit

import (
	"context"
	"fmt"
	"slices"
	"testing"
	"time"
)

// BenchmarkRecord is what the request path pays: Record on a running log
// writing to SQLite (the writer goroutine seals and commits meanwhile; the
// record is built beforehand, as the edge has its fields already). p50 and
// p99 are of single calls.
func BenchmarkRecord(b *testing.B) {
	db := backends()[0].open(b)
	st := openStore(b, db)
	o := testOptions(b)
	o.BatchInterval, o.BatchSize, o.Buffer = 50*time.Millisecond, 512, 1<<20
	l := openLog(b, st, testSigner("a"), o)
	recs := make([]*Record, 4096)
	for i := range recs {
		recs[i] = decision(i, "support")
	}
	lat := make([]time.Duration, 0, 1<<16)
	b.ReportAllocs()
	b.ResetTimer()
	i := 0
	for b.Loop() {
		r := recs[i%len(recs)]
		r.Time = time.Time{}
		start := time.Now()
		l.Record(r)
		if len(lat) < cap(lat) {
			lat = append(lat, time.Since(start))
		}
		i++
		if i%len(recs) == 0 {
			b.StopTimer()
			_ = l.Flush(context.Background())
			b.StartTimer()
		}
	}
	b.StopTimer()
	slices.Sort(lat)
	if len(lat) > 0 {
		b.ReportMetric(float64(lat[len(lat)/2].Nanoseconds()), "p50-ns")
		b.ReportMetric(float64(lat[len(lat)*99/100].Nanoseconds()), "p99-ns")
	}
}

// BenchmarkStoreAppend is the store's throughput: batches of 512 sealed
// decision records (about 3 KB of JSON each) committed in one transaction,
// on SQLite and PostgreSQL.
func BenchmarkStoreAppend(b *testing.B) {
	for _, be := range backends() {
		b.Run(be.name, func(b *testing.B) {
			st := openStore(b, be.open(b))
			const batch = 512
			prev, seq := "", uint64(0)
			es := make([]Entry, batch)
			b.ResetTimer()
			for b.Loop() {
				b.StopTimer()
				for i := range es {
					seq++
					body, _ := jsonRecord(decision(int(seq), "support"))
					es[i] = Entry{Writer: "bench/1", Seq: seq, Time: time.Now().UTC().Truncate(time.Microsecond), Kind: KindDecision,
						Workspace: "support", ID: fmt.Sprint(seq), Body: body}
					es[i].seal(prev)
					prev = es[i].Hash
				}
				b.StartTimer()
				if err := st.Append(context.Background(), es, nil); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(b.N*batch)/b.Elapsed().Seconds(), "records/s")
		})
	}
}

// BenchmarkLogThroughput is the whole writer: Record, seal (JSON + two
// hashes), group commit, until everything is in the store.
func BenchmarkLogThroughput(b *testing.B) {
	for _, be := range backends() {
		b.Run(be.name, func(b *testing.B) {
			st := openStore(b, be.open(b))
			o := testOptions(b)
			o.BatchInterval, o.BatchSize, o.Buffer = 50*time.Millisecond, 512, 1<<16
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
				if err := l.Flush(context.Background()); err != nil {
					b.Fatal(err)
				}
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
	l := openLog(b, st, s, testOptions(b))
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
