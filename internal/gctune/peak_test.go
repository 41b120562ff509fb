package gctune

import (
	"fmt"
	"os"
	"os/exec"
	"runtime"
	"runtime/metrics"
	"strconv"
	"strings"
	"sync"
	"testing"
)

// TestHeapGoalStaysNearTheFloorUnderLoad runs a fresh process (the first
// collection has not happened yet, as at start-up) that starts the tuner,
// parks 1000 goroutines with grown stacks and allocates 512 MiB of garbage,
// and checks the largest heap goal the runtime had: with a 64 MiB floor it
// must stay under 100 MiB.
func TestHeapGoalStaysNearTheFloorUnderLoad(t *testing.T) {
	if os.Getenv("GCTUNE_CHILD") == "1" {
		fmt.Println("PEAK", allocateUnderTuner())
		return
	}
	cmd := exec.Command(os.Args[0], "-test.run=^TestHeapGoalStaysNearTheFloorUnderLoad$", "-test.count=1")
	cmd.Env = append(os.Environ(), "GCTUNE_CHILD=1", "GOGC=", "GOMEMLIMIT=")
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("child: %v\n%s", err, out)
	}
	_, rest, ok := strings.Cut(string(out), "PEAK ")
	if !ok {
		t.Fatalf("child printed no peak:\n%s", out)
	}
	peak, err := strconv.ParseUint(strings.Fields(rest)[0], 10, 64)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("largest heap goal: %.1f MiB", float64(peak)/(1<<20))
	if peak > 100<<20 {
		t.Fatalf("heap goal reached %d MiB with a 64 MiB floor, want at most 100", peak>>20)
	}
}

func allocateUnderTuner() uint64 {
	// GOGC= (empty) in the environment counts as set; the child clears it.
	os.Unsetenv("GOGC")
	tu := Start(64 << 20)
	if tu == nil {
		panic("no tuner")
	}
	defer tu.Stop()
	goal := []metrics.Sample{{Name: "/gc/heap/goal:bytes"}}
	var peak uint64
	sample := func() {
		metrics.Read(goal)
		peak = max(peak, goal[0].Value.Uint64())
	}
	sample()
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for range 1000 {
		wg.Go(func() { deepWait(64, stop) })
	}
	var sink []byte
	for i := range 512 * 16 {
		sink = make([]byte, 64<<10)
		sink[0] = byte(i)
		if i%64 == 0 {
			sample()
			runtime.Gosched()
		}
	}
	runtime.KeepAlive(sink)
	sample()
	close(stop)
	wg.Wait()
	return peak
}

// deepWait grows its goroutine's stack (about 32 KiB) and then waits.
func deepWait(n int, stop <-chan struct{}) byte {
	var pad [448]byte
	if n == 0 {
		<-stop
		return pad[0]
	}
	pad[n%len(pad)] = byte(n)
	return deepWait(n-1, stop) + pad[0]
}
