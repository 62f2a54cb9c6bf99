// Package load generates bounded HTTP load on loopback servers and reads
// the results of external load tools, for the scenarios of bench.
//
// HTTP runs an in-process generator (fasthttp client for HTTP/1.1, net/http
// for HTTP/2) at a fixed concurrency for a duration or a request count,
// recording latencies in a Histogram. Wrk runs wrk(1) when installed and
// parses its report. Both refuse any address that is not loopback.
package load

import (
	"math"
	"math/bits"
	"time"
)

// Histogram buckets. Values below 2^subBits ns are counted exactly; above,
// each power of two is split into 2^subBits buckets, so a quantile is off by
// less than 1/64 (1.6 %) of its value. Values from 2^(maxExp+1) ns (≈ 37
// min) up all land in the top bucket.
const (
	subBits  = 6
	subCount = 1 << subBits
	maxExp   = 40
	nBuckets = (maxExp-subBits+1)*subCount + subCount
)

// Histogram records durations in log-linear buckets: 2,304 counters, no
// allocation per value, mergeable. The zero value is ready to use. It is not
// safe for concurrent use: give each goroutine its own and Merge them.
type Histogram struct {
	counts   [nBuckets]uint64
	n        uint64
	sum      float64
	min, max int64
}

// bucketOf returns the bucket index of v nanoseconds.
func bucketOf(v int64) int {
	if v < subCount {
		if v < 0 {
			return 0
		}
		return int(v)
	}
	shift := bits.Len64(uint64(v)) - subBits - 1 // v>>shift is in [64,128)
	i := (shift+1)*subCount + int(v>>shift) - subCount
	if i >= nBuckets {
		return nBuckets - 1
	}
	return i
}

// bucketBounds returns the smallest and largest value of bucket i.
func bucketBounds(i int) (lo, hi int64) {
	if i < subCount {
		return int64(i), int64(i)
	}
	shift := i/subCount - 1
	top := int64(i%subCount + subCount)
	return top << shift, (top+1)<<shift - 1
}

// Record adds one duration.
func (h *Histogram) Record(d time.Duration) {
	v := int64(d)
	if v < 0 {
		v = 0
	}
	h.counts[bucketOf(v)]++
	if h.n == 0 || v < h.min {
		h.min = v
	}
	if v > h.max {
		h.max = v
	}
	h.n++
	h.sum += float64(v)
}

// Merge adds the counts of o to h.
func (h *Histogram) Merge(o *Histogram) {
	if o.n == 0 {
		return
	}
	for i, c := range o.counts {
		h.counts[i] += c
	}
	if h.n == 0 || o.min < h.min {
		h.min = o.min
	}
	if o.max > h.max {
		h.max = o.max
	}
	h.n += o.n
	h.sum += o.sum
}

// Count returns the number of recorded values.
func (h *Histogram) Count() uint64 { return h.n }

// Min returns the smallest recorded value (exact).
func (h *Histogram) Min() time.Duration { return time.Duration(h.min) }

// Max returns the largest recorded value (exact).
func (h *Histogram) Max() time.Duration { return time.Duration(h.max) }

// Mean returns the mean of the recorded values (exact).
func (h *Histogram) Mean() time.Duration {
	if h.n == 0 {
		return 0
	}
	return time.Duration(math.Round(h.sum / float64(h.n)))
}

// Quantile returns the q-quantile (0 ≤ q ≤ 1) of the recorded values: the
// middle of the bucket holding the value of rank ceil(q·n), clamped to the
// exact min and max. It returns 0 for an empty histogram.
func (h *Histogram) Quantile(q float64) time.Duration {
	if h.n == 0 {
		return 0
	}
	rank := uint64(math.Ceil(q * float64(h.n)))
	if rank < 1 {
		rank = 1
	}
	if rank > h.n {
		rank = h.n
	}
	var cum uint64
	for i, c := range h.counts {
		cum += c
		if cum >= rank {
			lo, hi := bucketBounds(i)
			mid := lo + (hi-lo)/2
			return time.Duration(min(max(mid, h.min), h.max))
		}
	}
	return time.Duration(h.max)
}
