// Package gctune keeps the garbage collector from running too often when
// the live heap is small.
//
// With the default GOGC=100 the collector runs each time the heap doubles.
// A gateway's live heap is small (a few MiB) until its cache fills, while it
// allocates a few KiB per request, so at tens of thousands of requests a
// second it would collect many times a second, spending several percent of
// its CPU on marking. Tuner raises GOGC while the live heap is small, so that
// the next collection comes no sooner than when the heap reaches a floor
// (GC_MIN_HEAP, 64 MiB by default), and returns to the base GOGC as the live
// heap grows past half of it: memory use is max(floor, 2 x live), where
// plain GOGC=100 would give 2 x live.
//
// The tuner re-computes GOGC after every collection (a finalizer is the
// hook: it runs once per cycle). It does nothing when the GOGC environment
// variable is set: an operator's explicit choice wins.
package gctune

import (
	"math"
	"os"
	"runtime"
	"runtime/debug"
	"runtime/metrics"
	"sync/atomic"
)

// Tuner adjusts GOGC after each collection. Stop ends it.
type Tuner struct {
	minHeap uint64
	base    int
	stopped atomic.Bool
	sample  []metrics.Sample
	last    atomic.Int64 // the GOGC set last, for tests and /admin
}

// Start starts a tuner with heap floor minHeap. It returns nil, and
// changes nothing, when GOGC is set in the environment or minHeap <= 0.
func Start(minHeap int64) *Tuner {
	if _, set := os.LookupEnv("GOGC"); set || minHeap <= 0 {
		return nil
	}
	t := &Tuner{minHeap: uint64(minHeap), base: 100,
		sample: []metrics.Sample{{Name: "/gc/heap/live:bytes"}}}
	t.tune()
	t.arm()
	return t
}

// Stop restores the base GOGC and ends the tuning. Safe on nil.
func (t *Tuner) Stop() {
	if t == nil || t.stopped.Swap(true) {
		return
	}
	debug.SetGCPercent(t.base)
}

// Percent is the GOGC the tuner set last.
func (t *Tuner) Percent() int {
	if t == nil {
		return 0
	}
	return int(t.last.Load())
}

// sentinel is garbage as soon as it is made; its finalizer runs after the
// next collection and makes the next one.
type sentinel struct{ _ [16]byte }

func (t *Tuner) arm() {
	s := new(sentinel)
	runtime.SetFinalizer(s, func(*sentinel) {
		if t.stopped.Load() {
			return
		}
		t.tune()
		t.arm()
	})
}

func (t *Tuner) tune() {
	metrics.Read(t.sample)
	var live uint64
	if t.sample[0].Value.Kind() == metrics.KindUint64 {
		live = t.sample[0].Value.Uint64()
	}
	p := Percent(live, t.minHeap, t.base)
	t.last.Store(int64(p))
	debug.SetGCPercent(p)
}

// Percent is the GOGC that puts the next collection at the larger of
// minHeap and what base alone would give, for a live heap of live bytes.
func Percent(live, minHeap uint64, base int) int {
	if live == 0 {
		live = 1 << 20
	}
	if live >= minHeap {
		return base
	}
	p := (float64(minHeap)/float64(live) - 1) * 100
	if p <= float64(base) {
		return base
	}
	return int(math.Min(p, 10000))
}
