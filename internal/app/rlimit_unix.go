//go:build unix

package app

import (
	"fmt"
	"syscall"
)

// RaiseFileLimit raises the soft RLIMIT_NOFILE to the hard limit, since every
// proxied request holds two descriptors (the client's connection and the
// upstream's) and a soft limit of 1024 would cap an instance near 500
// concurrent requests. It returns the soft limit before and after.
func RaiseFileLimit() (before, after uint64, err error) {
	var rl syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &rl); err != nil {
		return 0, 0, fmt.Errorf("reading RLIMIT_NOFILE: %w", err)
	}
	before = rl.Cur
	if rl.Cur >= rl.Max {
		return before, before, nil
	}
	rl.Cur = rl.Max
	if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &rl); err != nil {
		return before, before, fmt.Errorf("raising RLIMIT_NOFILE from %d to %d: %w", before, rl.Max, err)
	}
	return before, rl.Max, nil
}

// FileLimit is the soft RLIMIT_NOFILE, 0 when it cannot be read.
func FileLimit() uint64 {
	var rl syscall.Rlimit
	if syscall.Getrlimit(syscall.RLIMIT_NOFILE, &rl) != nil {
		return 0
	}
	return rl.Cur
}
