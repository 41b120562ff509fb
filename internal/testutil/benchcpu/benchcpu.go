//go:build unix

// Package benchcpu reports a benchmark's CPU time per operation.
package benchcpu

import (
	"syscall"
	"testing"
	"time"
)

// Report reports the process's CPU time (user+system) per operation as
// "cpu-ns/op", a steadier measure than wall time when other work shares
// the machine. Use as defer benchcpu.Report(b)().
func Report(b *testing.B) func() {
	start := cpuTime()
	return func() {
		if b.N > 0 {
			b.ReportMetric(float64(cpuTime()-start)/float64(b.N), "cpu-ns/op")
		}
	}
}

func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
