package load

import (
	"math"
	"math/rand/v2"
	"slices"
	"testing"
	"time"
)

func TestBucketBoundsContainValue(t *testing.T) {
	values := []int64{0, 1, 63, 64, 65, 127, 128, 129, 1000, 1 << 20, 123456789, 1<<41 - 1}
	rng := rand.New(rand.NewPCG(1, 2))
	for range 2000 {
		values = append(values, rng.Int64N(1<<41))
	}
	prevHi := int64(-1)
	for i := range nBuckets {
		lo, hi := bucketBounds(i)
		if lo != prevHi+1 {
			t.Fatalf("bucket %d starts at %d, want %d (buckets must tile the range)", i, lo, prevHi+1)
		}
		prevHi = hi
	}
	for _, v := range values {
		i := bucketOf(v)
		lo, hi := bucketBounds(i)
		if v < lo || v > hi {
			t.Errorf("bucketOf(%d) = %d with bounds [%d, %d], want v inside", v, i, lo, hi)
		}
		if v >= subCount && float64(hi-lo+1)/float64(v) > 1.0/subCount+1e-12 {
			t.Errorf("bucket of %d is %d wide, want ≤ 1/%d of the value", v, hi-lo+1, subCount)
		}
	}
	if got := bucketOf(1 << 50); got != nBuckets-1 {
		t.Errorf("bucketOf(2^50) = %d, want the top bucket %d", got, nBuckets-1)
	}
	if got := bucketOf(-5); got != 0 {
		t.Errorf("bucketOf(-5) = %d, want 0", got)
	}
}

func TestHistogramQuantiles(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	var exact []time.Duration
	var a, b Histogram // recorded in two halves, then merged
	for i := range 20000 {
		// Log-uniform between 50µs and 500ms, as latencies spread.
		d := time.Duration(50e3 * math.Pow(10, rng.Float64()*4))
		exact = append(exact, d)
		if i%2 == 0 {
			a.Record(d)
		} else {
			b.Record(d)
		}
	}
	var h Histogram
	h.Merge(&a)
	h.Merge(&b)
	h.Merge(&Histogram{}) // merging an empty one changes nothing
	slices.Sort(exact)

	if h.Count() != uint64(len(exact)) {
		t.Fatalf("Count() = %d, want %d", h.Count(), len(exact))
	}
	if h.Min() != exact[0] || h.Max() != exact[len(exact)-1] {
		t.Errorf("Min, Max = %v, %v; want %v, %v", h.Min(), h.Max(), exact[0], exact[len(exact)-1])
	}
	for _, q := range []float64{0, 0.01, 0.5, 0.9, 0.99, 0.999, 1} {
		rank := int(q*float64(len(exact)) + 0.999999)
		rank = min(max(rank, 1), len(exact))
		want := exact[rank-1]
		got := h.Quantile(q)
		if rel := float64(got-want) / float64(want); rel > 1.0/subCount || rel < -1.0/subCount {
			t.Errorf("Quantile(%v) = %v, want %v within 1/%d (off by %.2f%%)", q, got, want, subCount, rel*100)
		}
	}
	var sum time.Duration
	for _, d := range exact {
		sum += d
	}
	if mean := sum / time.Duration(len(exact)); absDur(h.Mean()-mean) > time.Microsecond {
		t.Errorf("Mean() = %v, want %v", h.Mean(), mean)
	}
}

func TestHistogramEmptyAndSmall(t *testing.T) {
	var h Histogram
	if h.Quantile(0.5) != 0 || h.Mean() != 0 || h.Count() != 0 {
		t.Errorf("empty histogram: q50 %v mean %v count %d, want zeros", h.Quantile(0.5), h.Mean(), h.Count())
	}
	h.Record(40)
	h.Record(-3) // clamps to 0
	if got := h.Quantile(1); got != 40 {
		t.Errorf("Quantile(1) = %v, want 40ns (exact below %d ns)", got, subCount)
	}
	if got := h.Quantile(0.5); got != 0 {
		t.Errorf("Quantile(0.5) = %v, want 0", got)
	}
}

func absDur(d time.Duration) time.Duration {
	if d < 0 {
		return -d
	}
	return d
}
