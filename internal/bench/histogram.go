package bench

import (
	"math"
	"math/bits"
	"time"
)

// The histogram is log-linear in microseconds, as HdrHistogram is: values
// below 2^subBits are exact, and every power of two above that is split
// into 2^subBits linear buckets, so a bucket is never wider than 1/128 of
// its value (0.4 % error when reporting its midpoint).
const (
	subBits  = 7
	subCount = 1 << subBits
	// histMaxUs is 60 s; slower answers are clamped into the last bucket
	// (min and max stay exact).
	histMaxUs = 60_000_000
)

var histBuckets = bucketOf(histMaxUs) + 1

// histogram records durations. It is not safe for concurrent use: each
// worker owns one and they are merged when the run ends.
type histogram struct {
	counts []uint64
	n      uint64
	sum    time.Duration
	min    time.Duration
	max    time.Duration
}

func newHistogram() *histogram {
	return &histogram{counts: make([]uint64, histBuckets)}
}

func bucketOf(us uint64) int {
	if us < subCount {
		return int(us)
	}
	msb := bits.Len64(us) - 1
	shift := msb - subBits
	return (shift+1)<<subBits + int(us>>uint(shift)) - subCount
}

// bucketRange returns the smallest value of bucket i and its width.
func bucketRange(i int) (lo, width uint64) {
	if i < subCount {
		return uint64(i), 1
	}
	shift := i>>subBits - 1
	mant := uint64(i&(subCount-1)) + subCount
	return mant << uint(shift), 1 << uint(shift)
}

func (h *histogram) record(d time.Duration) {
	if d < 0 {
		d = 0
	}
	us := uint64(d / time.Microsecond)
	if us > histMaxUs {
		us = histMaxUs
	}
	h.counts[bucketOf(us)]++
	if h.n == 0 || d < h.min {
		h.min = d
	}
	if d > h.max {
		h.max = d
	}
	h.n++
	h.sum += d
}

func (h *histogram) merge(o *histogram) {
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

// quantile returns the value at quantile q (0..1) in microseconds: the
// middle of the bucket holding rank ceil(q·n), clamped to the exact
// minimum and maximum.
func (h *histogram) quantile(q float64) float64 {
	if h.n == 0 {
		return 0
	}
	rank := uint64(math.Ceil(q * float64(h.n)))
	rank = max(rank, 1)
	minUs, maxUs := durUs(h.min), durUs(h.max)
	var seen uint64
	for i, c := range h.counts {
		seen += c
		if seen >= rank {
			lo, w := bucketRange(i)
			v := float64(lo) + float64(w)/2
			return math.Min(math.Max(v, minUs), maxUs)
		}
	}
	return maxUs
}

func (h *histogram) mean() float64 {
	if h.n == 0 {
		return 0
	}
	return durUs(h.sum) / float64(h.n)
}

// percentiles summarises h; all zero when nothing was recorded.
func (h *histogram) percentiles() Percentiles {
	if h.n == 0 {
		return Percentiles{}
	}
	return Percentiles{
		Count: h.n,
		Min:   round1(durUs(h.min)),
		Mean:  round1(h.mean()),
		P50:   round1(h.quantile(0.50)),
		P90:   round1(h.quantile(0.90)),
		P95:   round1(h.quantile(0.95)),
		P99:   round1(h.quantile(0.99)),
		P999:  round1(h.quantile(0.999)),
		Max:   round1(durUs(h.max)),
	}
}

func durUs(d time.Duration) float64 { return float64(d) / float64(time.Microsecond) }

func round1(v float64) float64 { return math.Round(v*10) / 10 }
