package main

import "testing"

func TestBeladyBoundsTheOnlinePolicies(t *testing.T) {
	for _, s := range []float64{0.8, 1.0, 1.2} {
		trace := Zipf(s, 5000, 50_000, 7)
		r, err := Replay(trace, s, 5000, 500)
		if err != nil {
			t.Fatal(err)
		}
		if r.LRU > r.Belady || r.TinyLFU > r.Belady {
			t.Fatalf("s=%v: an online policy beat the optimum: %+v", s, r)
		}
		if r.LRU <= 0 || r.TinyLFU <= 0 || r.Belady >= 1 {
			t.Fatalf("s=%v: implausible ratios %+v", s, r)
		}
	}
}

func TestBeladyOnATinyTrace(t *testing.T) {
	// Capacity 2: a b c a b. c is never used again, so the optimum does
	// not admit it, and a and b both hit.
	trace := []int32{0, 1, 2, 0, 1}
	if got := belady(trace, 2); got != 2.0/5 {
		t.Fatalf("belady = %v, want 0.4", got)
	}
	if got := lru(trace, 2); got != 0 {
		t.Fatalf("lru = %v, want 0", got)
	}
}
