package stack

import "testing"

// deep goes about n KiB deep, as a request's parsing does.
//
//go:noinline
func deep(n int) int {
	var frame [1 << 10]byte
	frame[n%len(frame)] = byte(n)
	if n == 0 {
		return int(frame[0])
	}
	return deep(n-1) + int(frame[n%len(frame)])
}

// BenchmarkGoroutineGoingDeep: a new goroutine that goes 12 KiB deep, as
// net/http's connection goroutine does for each request after a detached
// stream, with its stack left to double as it goes (plain) and taken to
// 16 KiB first (Grow16K).
func BenchmarkGoroutineGoingDeep(b *testing.B) {
	for _, c := range []struct {
		name string
		grow func()
	}{{"plain", func() {}}, {"Grow16K", Grow16K}} {
		b.Run(c.name, func(b *testing.B) {
			done := make(chan int)
			for b.Loop() {
				go func() {
					c.grow()
					done <- deep(12)
				}()
				<-done
			}
		})
	}
}
