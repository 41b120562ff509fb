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
// The runtime's heap goal is live + (live + stacks + globals) x GOGC/100,
// and before the first collection 4 MiB x GOGC/100; Percent uses the same
// arithmetic, so the goal it sets never passes the floor: not before the
// first collection (treating the heap as 1 MiB there gave GOGC 6300 and a
// first goal of 252 MiB), and not with thousands of goroutine stacks (each
// counted GOGC/100 times). A new GOGC applies only from the cycle after
// the finalizer ran, so between them the runtime may briefly use a goal
// computed with the old, raised GOGC and many more stacks; the tuner also
// sets a soft memory limit, 1.25 x the floor or 3 x (live + roots) whichever
// is larger (never above an operator's or the cgroup's limit), which bounds
// that transient and never binds harder than GOGC=100 would.
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
	limit   int64 // the memory limit before Start (GOMEMLIMIT, cgroup)
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
		sample: []metrics.Sample{{Name: "/gc/heap/live:bytes"}, {Name: "/gc/scan/stack:bytes"},
			{Name: "/gc/scan/globals:bytes"}, {Name: "/gc/cycles/total:gc-cycles"}}}
	t.limit = debug.SetMemoryLimit(-1)
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
	debug.SetMemoryLimit(t.limit)
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
	u := func(i int) uint64 {
		if t.sample[i].Value.Kind() == metrics.KindUint64 {
			return t.sample[i].Value.Uint64()
		}
		return 0
	}
	var p int
	if u(3) == 0 {
		p = FirstPercent(t.minHeap, t.base)
	} else {
		p = Percent(u(0), u(1)+u(2), t.minHeap, t.base)
	}
	t.last.Store(int64(p))
	debug.SetGCPercent(p)
	debug.SetMemoryLimit(min(t.limit, SoftLimit(u(0), u(1)+u(2), t.minHeap)))
}

// SoftLimit is the memory limit the tuner sets: 1.25 x minHeap, or 3 x the
// scanned heap (live + roots) when that is larger, so it bounds a transient
// goal but binds no harder than GOGC=100. The limit counts all of the
// runtime's memory (heap, stacks, its own structures); with 1.5 x minHeap
// a fresh instance under request load peaked at 99-102 MiB RSS in its
// first 10 s (binary and caches included), over the 100 MiB a container
// sized for the 64 MiB default floor may allow.
func SoftLimit(live, roots, minHeap uint64) int64 {
	l := max(minHeap+minHeap/4, 3*(live+roots))
	return int64(min(l, math.MaxInt64))
}

// maxPercent bounds GOGC: past it a tiny heap would make the goal track
// noise.
const maxPercent = 10000

// runtimeHeapMinimum is the runtime's heap goal before its first
// collection at GOGC=100 (it scales with GOGC).
const runtimeHeapMinimum = 4 << 20

// FirstPercent is the GOGC that puts the first collection at minHeap.
func FirstPercent(minHeap uint64, base int) int {
	p := float64(minHeap) / runtimeHeapMinimum * 100
	return int(math.Max(float64(base), math.Min(p, maxPercent)))
}

// Percent is the GOGC that puts the next collection at the larger of
// minHeap and what base alone would give, for a live heap of live bytes and
// roots bytes of goroutine stacks and globals (which the runtime adds to
// live when it applies GOGC).
func Percent(live, roots, minHeap uint64, base int) int {
	if live >= minHeap {
		return base
	}
	scan := max(live+roots, 1)
	p := float64(minHeap-live) / float64(scan) * 100
	if p <= float64(base) {
		return base
	}
	return int(math.Min(p, maxPercent))
}
