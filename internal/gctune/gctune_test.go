package gctune

import (
	"os"
	"runtime"
	"runtime/debug"
	"testing"
)

func TestPercent(t *testing.T) {
	const mib = 1 << 20
	for _, tc := range []struct {
		name                 string
		live, roots, minHeap uint64
		want                 int
	}{
		{"small heap reaches the floor", 4 * mib, 0, 64 * mib, 1500},
		{"half the floor is the base", 32 * mib, 0, 64 * mib, 100},
		{"between", 16 * mib, 0, 64 * mib, 300},
		{"large heap keeps the base", 512 * mib, 0, 64 * mib, 100},
		{"stacks count like heap", 4 * mib, 12 * mib, 64 * mib, 375},
		{"many stacks keep the base", 4 * mib, 60 * mib, 64 * mib, 100},
		{"capped", 1024, 0, 64 * mib, 10000},
		{"empty heap capped", 0, 0, 64 * mib, 10000},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := Percent(tc.live, tc.roots, tc.minHeap, 100)
			if got != tc.want {
				t.Fatalf("Percent(%d, %d, %d) = %d, want %d", tc.live, tc.roots, tc.minHeap, got, tc.want)
			}
			// The runtime's goal at that GOGC stays at the floor, unless
			// the base alone puts it higher or the cap binds.
			goal := tc.live + (tc.live+tc.roots)*uint64(got)/100
			if got > 100 && got < maxPercent && goal > tc.minHeap+tc.minHeap/100 {
				t.Fatalf("goal %d MiB past the floor %d MiB", goal/mib, tc.minHeap/mib)
			}
		})
	}
}

func TestFirstCollectionGoalIsTheFloor(t *testing.T) {
	const mib = 1 << 20
	for _, tc := range []struct{ minHeap, want uint64 }{{64 * mib, 1600}, {2 * mib, 100}, {1 << 40, maxPercent}} {
		if got := FirstPercent(tc.minHeap, 100); uint64(got) != tc.want {
			t.Errorf("FirstPercent(%d MiB) = %d, want %d", tc.minHeap/mib, got, tc.want)
		}
	}
}

func TestTunerOffWhenGOGCSet(t *testing.T) {
	t.Setenv("GOGC", "200")
	if Start(64<<20) != nil {
		t.Fatal("a tuner started although GOGC is set")
	}
	if Start(0) != nil {
		t.Fatal("a tuner started with no floor")
	}
}

func TestTunerSetsAndRestores(t *testing.T) {
	if v, set := os.LookupEnv("GOGC"); set {
		// The tuner is off by design when GOGC is set; test it without.
		os.Unsetenv("GOGC")
		t.Cleanup(func() { os.Setenv("GOGC", v) })
	}
	defer debug.SetGCPercent(debug.SetGCPercent(100))
	// The live heap the tuner starts from is the last collection's: collect
	// now, so an earlier run's 300 MiB (go test -count) is not counted.
	runtime.GC()
	tu := Start(256 << 20)
	if tu == nil {
		t.Fatal("no tuner")
	}
	first := tu.Percent()
	if first <= 100 {
		t.Fatalf("with a small live heap GOGC = %d, want above 100", first)
	}
	if got := debug.SetGCPercent(first); got != first {
		t.Fatalf("runtime GOGC %d, tuner says %d", got, first)
	}
	// Grow the live heap past the floor: after a collection the tuner
	// returns to the base.
	hold := make([][]byte, 0, 300)
	for range 300 {
		hold = append(hold, make([]byte, 1<<20))
	}
	for i := 0; i < 20 && tu.Percent() != 100; i++ {
		runtime.GC()
		runtime.Gosched()
	}
	runtime.KeepAlive(hold)
	if tu.Percent() != 100 {
		t.Fatalf("live heap above the floor, GOGC = %d, want 100", tu.Percent())
	}
	tu.Stop()
	if got := debug.SetGCPercent(100); got != 100 {
		t.Fatalf("Stop left GOGC at %d", got)
	}
}

func lookupGOGC() (string, bool) { return lookupEnv("GOGC") }

var lookupEnv = os.LookupEnv

// TestSoftLimitLeavesRoomUnder100MiBAtTheDefaultFloor: with the default
// 64 MiB floor and a small live heap, the limit leaves a fresh instance
// room for its binary and caches under 100 MiB of RSS; with a large live
// heap it never binds harder than GOGC=100 (2 x live + roots).
func TestSoftLimitLeavesRoomUnder100MiBAtTheDefaultFloor(t *testing.T) {
	const floor = 64 << 20
	tests := []struct {
		live, roots uint64
		atMost      int64
		atLeast     int64
	}{
		{0, 0, 80 << 20, floor},
		{4 << 20, 1 << 20, 80 << 20, floor},
		{200 << 20, 100 << 20, 900 << 20, 2*200<<20 + 100<<20},
	}
	for _, tt := range tests {
		got := SoftLimit(tt.live, tt.roots, floor)
		if got > tt.atMost || got < tt.atLeast {
			t.Errorf("SoftLimit(live %d MiB, roots %d MiB) = %d MiB, want %d..%d MiB",
				tt.live>>20, tt.roots>>20, got>>20, tt.atLeast>>20, tt.atMost>>20)
		}
	}
}
