package gctune

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"runtime/debug"
	"strconv"
	"strings"
)

// CgroupMemoryLimit reads the memory limit of the cgroup mounted at root
// (/sys/fs/cgroup): v2's memory.max, else v1's memory/memory.limit_in_bytes.
// ok is false when there is no limit ("max", or v1's near-2^63 "unlimited").
func CgroupMemoryLimit(root string) (limit int64, ok bool, err error) {
	for _, f := range []string{"memory.max", filepath.Join("memory", "memory.limit_in_bytes")} {
		b, err := os.ReadFile(filepath.Join(root, f))
		if errors.Is(err, fs.ErrNotExist) {
			continue
		}
		if err != nil {
			return 0, false, fmt.Errorf("reading cgroup memory limit: %w", err)
		}
		v := strings.TrimSpace(string(b))
		if v == "max" {
			return 0, false, nil
		}
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil || n <= 0 {
			return 0, false, fmt.Errorf("cgroup %s: %q is not a number of bytes", f, v)
		}
		if n >= 1<<62 { // v1 writes "unlimited" as 2^63 rounded down to a page
			return 0, false, nil
		}
		return n, true, nil
	}
	return 0, false, nil
}

// LimitFromCgroup sets the Go memory limit to 90% of the cgroup's memory
// limit, so the collector works harder near it instead of the kernel
// killing the process. It does nothing when GOMEMLIMIT is set or there is
// no limit, and returns the limit set (0: none).
func LimitFromCgroup(root string) (int64, error) {
	if _, set := os.LookupEnv("GOMEMLIMIT"); set {
		return 0, nil
	}
	n, ok, err := CgroupMemoryLimit(root)
	if err != nil || !ok {
		return 0, err
	}
	l := n / 10 * 9
	debug.SetMemoryLimit(l)
	return l, nil
}
