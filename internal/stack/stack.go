// Package stack takes a goroutine's stack to the size its work needs in
// one copy, while the goroutine is shallow.
//
// A goroutine's stack doubles each time a call does not fit, copying every
// frame on it (and fixing the pointers into it) each time; at 5000 streams
// stack copies were 5-8 % of the gateway's CPU (docs/benchmarks.md). The
// frame of a grower is larger than half of its size, so the runtime grows
// the stack straight to the next size that holds it, and the copy holds
// the few frames above the grower. The stack stays so: it shrinks only
// when a collection finds less than a quarter of it in use. A goroutine
// whose stack is that large already pays a function call.
package stack

// Grow16K takes the calling goroutine's stack to 16 KiB: what serving a
// request needs (net/http's parsing, the body's validation and the
// pipeline go more than 8 KiB deep). net/http's connection goroutine
// starts small, at the runtime's average stack, and every request that
// follows a detached stream starts on a new one.
//
//go:noinline
func Grow16K() {
	var frame [16<<10/2 + 1<<10]byte
	keep16(&frame)
}

//go:noinline
func keep16(*[16<<10/2 + 1<<10]byte) {}

// Grow8K takes the calling goroutine's stack to 8 KiB: what a detached
// stream's goroutine needs (the route, the provider call and the relay go
// more than 4 KiB deep, and less than 8), and a dial.
//
//go:noinline
func Grow8K() {
	var frame [8<<10/2 + 1<<10]byte
	keep8(&frame)
}

//go:noinline
func keep8(*[8<<10/2 + 1<<10]byte) {}
