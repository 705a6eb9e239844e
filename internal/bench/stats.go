package bench

import (
	"math"
	"slices"
	"time"
)

// Dist summarises a latency distribution, in milliseconds.
type Dist struct {
	N    int     `json:"n"`
	Min  float64 `json:"min_ms"`
	Mean float64 `json:"mean_ms"`
	P50  float64 `json:"p50_ms"`
	P90  float64 `json:"p90_ms"`
	P99  float64 `json:"p99_ms"`
	P999 float64 `json:"p99_9_ms"`
	Max  float64 `json:"max_ms"`
}

// summarize computes nearest-rank percentiles; it sorts ds.
func summarize(ds []time.Duration) Dist {
	if len(ds) == 0 {
		return Dist{}
	}
	slices.Sort(ds)
	var sum time.Duration
	for _, d := range ds {
		sum += d
	}
	q := func(p float64) float64 {
		i := int(math.Ceil(p*float64(len(ds))-1e-9)) - 1 // 0.99*1000 must be 990
		return ms(ds[max(0, min(i, len(ds)-1))])
	}
	return Dist{N: len(ds), Min: ms(ds[0]), Mean: ms(sum / time.Duration(len(ds))),
		P50: q(0.50), P90: q(0.90), P99: q(0.99), P999: q(0.999), Max: ms(ds[len(ds)-1])}
}

func ms(d time.Duration) float64 { return math.Round(float64(d)/1e3) / 1e3 }

// added is stellwerk's distribution minus the baseline's, quantile by
// quantile. Requests are not paired (they ran in different time slices), so
// this is the shift of the distribution, not a per-request difference.
func added(sw, base Dist) Dist {
	r := func(x float64) float64 { return math.Round(x*1e3) / 1e3 }
	return Dist{N: sw.N, Min: r(sw.Min - base.Min), Mean: r(sw.Mean - base.Mean), P50: r(sw.P50 - base.P50),
		P90: r(sw.P90 - base.P90), P99: r(sw.P99 - base.P99), P999: r(sw.P999 - base.P999), Max: r(sw.Max - base.Max)}
}

// Histogram is a raw distribution: how many requests finished within each
// upper bound (1-2-5 steps from 0.1 ms). Counts[i] are the requests above
// BoundsMS[i-1] and at most BoundsMS[i]; a last count without a bound is
// above 50 s.
type Histogram struct {
	BoundsMS []float64 `json:"bounds_ms"`
	Counts   []int     `json:"counts"`
}

var histBounds = func() []float64 {
	var b []float64
	for e := 0.1; e < 100_000; e *= 10 {
		b = append(b, e, 2*e, 5*e)
	}
	return b
}()

func histogram(ds []time.Duration) Histogram {
	h := Histogram{BoundsMS: histBounds, Counts: make([]int, len(histBounds)+1)}
	for _, d := range ds {
		v := float64(d) / 1e6
		i, _ := slices.BinarySearch(histBounds, v)
		h.Counts[i]++
	}
	// Trim empty buckets at both ends, keeping bounds aligned with counts.
	lo, hi := 0, len(h.Counts)
	for lo < hi && h.Counts[lo] == 0 {
		lo++
	}
	for hi > lo && h.Counts[hi-1] == 0 {
		hi--
	}
	if lo == hi {
		return Histogram{}
	}
	bounds := append([]float64(nil), histBounds[lo:min(hi, len(histBounds))]...)
	return Histogram{BoundsMS: bounds, Counts: h.Counts[lo:hi]}
}

// meanOf is the mean of xs, NaN when empty.
func meanOf(xs []float64) float64 {
	if len(xs) == 0 {
		return math.NaN()
	}
	s := 0.0
	for _, x := range xs {
		s += x
	}
	return s / float64(len(xs))
}
