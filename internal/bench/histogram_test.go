package bench

import (
	"math"
	"math/rand/v2"
	"slices"
	"testing"
	"time"
)

func TestHistogramBucketsCoverEveryValue(t *testing.T) {
	for _, us := range []uint64{0, 1, 127, 128, 129, 255, 256, 257, 1000, 65_535, 1 << 20, 12_345_678, histMaxUs} {
		lo, w := bucketRange(bucketOf(us))
		if us < lo || us >= lo+w {
			t.Errorf("value %d µs landed in bucket [%d, %d)", us, lo, lo+w)
		}
		if us >= subCount && float64(w)/float64(us) > 1.0/subCount {
			t.Errorf("bucket of %d µs is %d wide, more than 1/%d of the value", us, w, subCount)
		}
	}
	if got, want := bucketOf(histMaxUs), histBuckets-1; got != want {
		t.Errorf("max value in bucket %d, want the last one %d", got, want)
	}
}

func TestHistogramPercentilesWithinOnePercent(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	tests := []struct {
		name string
		gen  func() time.Duration
	}{
		{"uniform 100µs..100ms", func() time.Duration {
			return 100*time.Microsecond + time.Duration(r.Int64N(int64(100*time.Millisecond)))
		}},
		{"lognormal around 2ms", func() time.Duration {
			return time.Duration(math.Exp(r.NormFloat64()*1.5) * float64(2*time.Millisecond))
		}},
		{"bimodal hits and misses", func() time.Duration {
			if r.IntN(10) < 7 {
				return 150*time.Microsecond + time.Duration(r.Int64N(int64(100*time.Microsecond)))
			}
			return 800*time.Millisecond + time.Duration(r.Int64N(int64(200*time.Millisecond)))
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := newHistogram()
			vals := make([]time.Duration, 100_000)
			for i := range vals {
				vals[i] = max(tt.gen(), 100*time.Microsecond)
				h.record(vals[i])
			}
			slices.Sort(vals)
			for _, q := range []float64{0.5, 0.9, 0.95, 0.99, 0.999} {
				exact := durUs(vals[int(math.Ceil(q*float64(len(vals))))-1])
				got := h.quantile(q)
				if rel := math.Abs(got-exact) / exact; rel > 0.01 {
					t.Errorf("q%g = %.1f µs, exact %.1f µs (%.2f %% off)", q, got, exact, rel*100)
				}
			}
			p := h.percentiles()
			if p.Min != round1(durUs(vals[0])) || p.Max != round1(durUs(vals[len(vals)-1])) {
				t.Errorf("min/max = %v/%v, want exact %v/%v", p.Min, p.Max, durUs(vals[0]), durUs(vals[len(vals)-1]))
			}
		})
	}
}

func TestHistogramMergeEqualsRecordingEverything(t *testing.T) {
	all, a, b := newHistogram(), newHistogram(), newHistogram()
	for i := range 10_000 {
		d := time.Duration(i*i) * time.Nanosecond
		all.record(d)
		if i%3 == 0 {
			a.record(d)
		} else {
			b.record(d)
		}
	}
	a.merge(b)
	if a.percentiles() != all.percentiles() {
		t.Errorf("merged %+v, want %+v", a.percentiles(), all.percentiles())
	}
}

func TestHistogramClampsBeyondSixtySeconds(t *testing.T) {
	h := newHistogram()
	h.record(2 * time.Minute)
	if got := h.quantile(0.5); got != durUs(2*time.Minute) {
		t.Errorf("p50 of one 2 min value = %v µs, want the exact max", got)
	}
}

func BenchmarkHistogramRecord(b *testing.B) {
	h := newHistogram()
	d := 1234 * time.Microsecond
	for b.Loop() {
		h.record(d)
		d += 7
	}
}
