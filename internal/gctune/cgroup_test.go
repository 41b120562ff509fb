package gctune

import (
	"math"
	"os"
	"path/filepath"
	"runtime/debug"
	"testing"
)

func TestCgroupMemoryLimitReadsV2ThenV1(t *testing.T) {
	for _, tc := range []struct {
		name   string
		files  map[string]string
		want   int64
		wantOK bool
		bad    bool
	}{
		{"v2 limit", map[string]string{"memory.max": "268435456\n"}, 256 << 20, true, false},
		{"v2 unlimited", map[string]string{"memory.max": "max\n"}, 0, false, false},
		{"v1 limit", map[string]string{"memory/memory.limit_in_bytes": "536870912\n"}, 512 << 20, true, false},
		{"v1 unlimited", map[string]string{"memory/memory.limit_in_bytes": "9223372036854771712\n"}, 0, false, false},
		{"none", nil, 0, false, false},
		{"garbage", map[string]string{"memory.max": "lots\n"}, 0, false, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			root := t.TempDir()
			for f, v := range tc.files {
				p := filepath.Join(root, f)
				if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
					t.Fatal(err)
				}
				if err := os.WriteFile(p, []byte(v), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			got, ok, err := CgroupMemoryLimit(root)
			if (err != nil) != tc.bad || got != tc.want || ok != tc.wantOK {
				t.Fatalf("got %d %v %v; want %d %v error=%v", got, ok, err, tc.want, tc.wantOK, tc.bad)
			}
		})
	}
}

func TestLimitFromCgroupSetsNinetyPercentUnlessGOMEMLIMIT(t *testing.T) {
	defer debug.SetMemoryLimit(debug.SetMemoryLimit(-1))
	root := t.TempDir()
	if err := os.WriteFile(filepath.Join(root, "memory.max"), []byte("1000000000\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	os.Unsetenv("GOMEMLIMIT")
	debug.SetMemoryLimit(math.MaxInt64)
	if l, err := LimitFromCgroup(root); err != nil || l != 900000000 || debug.SetMemoryLimit(-1) != 900000000 {
		t.Fatalf("set %d (%v), runtime limit %d; want 900000000", l, err, debug.SetMemoryLimit(-1))
	}
	debug.SetMemoryLimit(math.MaxInt64)
	t.Setenv("GOMEMLIMIT", "2GiB")
	if l, _ := LimitFromCgroup(root); l != 0 || debug.SetMemoryLimit(-1) != math.MaxInt64 {
		t.Fatalf("GOMEMLIMIT set, yet the limit became %d", debug.SetMemoryLimit(-1))
	}
}
