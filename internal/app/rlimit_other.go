//go:build !unix

package app

// RaiseFileLimit does nothing where there is no RLIMIT_NOFILE.
func RaiseFileLimit() (before, after uint64, err error) { return 0, 0, nil }

// FileLimit is 0 where there is no RLIMIT_NOFILE: the caps take their
// defaults.
func FileLimit() uint64 { return 0 }
