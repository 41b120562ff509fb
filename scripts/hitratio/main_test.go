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

// optimum is the best hit count over every admission and eviction choice,
// by exhaustive search (keys < 16, short traces).
func optimum(trace []int32, size int) int {
	type state struct {
		i   int
		set uint16
	}
	memo := map[state]int{}
	var best func(i int, set uint16) int
	best = func(i int, set uint16) int {
		if i == len(trace) {
			return 0
		}
		if v, ok := memo[state{i, set}]; ok {
			return v
		}
		bit := uint16(1) << trace[i]
		var v int
		switch {
		case set&bit != 0:
			v = 1 + best(i+1, set)
		default:
			v = best(i+1, set) // not admitted
			if n := popcount(set); n < size {
				v = max(v, best(i+1, set|bit))
			} else {
				for b := range 16 {
					if set&(1<<b) != 0 {
						v = max(v, best(i+1, set&^(1<<b)|bit))
					}
				}
			}
		}
		memo[state{i, set}] = v
		return v
	}
	return best(0, 0)
}

func popcount(x uint16) int {
	n := 0
	for ; x != 0; x &= x - 1 {
		n++
	}
	return n
}

func TestBeladyMatchesExhaustiveSearch(t *testing.T) {
	for seed := range uint64(200) {
		keys, size := 3+int(seed%5), 1+int(seed%3)
		trace := Zipf(0.7, keys, 16, seed)
		want := float64(optimum(trace, size)) / float64(len(trace))
		if got := belady(trace, size); got != want {
			t.Fatalf("trace %v, capacity %d: belady %v, exhaustive optimum %v", trace, size, got, want)
		}
		if l := lru(trace, size); l > want {
			t.Fatalf("trace %v, capacity %d: lru %v above the optimum %v", trace, size, l, want)
		}
	}
}
