package api

import (
	"math/rand/v2"
	"strconv"
	"testing"
	"time"
)

func TestAppendMillisMatchesStrconv(t *testing.T) {
	for _, c := range []struct {
		d    time.Duration
		want string
	}{
		{0, "0.000"},
		{499, "0.000"},
		{500, "0.001"}, // halves round up
		{time.Microsecond, "0.001"},
		{12345 * time.Nanosecond, "0.012"},
		{time.Millisecond, "1.000"},
		{1500 * time.Microsecond, "1.500"},
		{999_999_499, "999.999"},
		{999_999_500, "1000.000"},
		{3*time.Hour + 7*time.Microsecond, "10800000.007"},
		{-1500 * time.Microsecond, "-1.500"},
	} {
		if got := string(AppendMillis(nil, c.d)); got != c.want {
			t.Errorf("AppendMillis(%d) = %s, want %s", c.d, got, c.want)
		}
	}
	// Away from exact halves of a microsecond, where the float's own
	// rounding decides, it writes what strconv does.
	r := rand.New(rand.NewPCG(1, 2))
	for range 100_000 {
		d := time.Duration(r.Int64N(int64(10 * time.Second)))
		if d%1000 == 500 {
			continue
		}
		want := strconv.AppendFloat(nil, float64(d)/1e6, 'f', 3, 64)
		if got := AppendMillis(nil, d); string(got) != string(want) {
			t.Fatalf("AppendMillis(%d) = %s, strconv %s", d, got, want)
		}
	}
}

func BenchmarkAppendMillis(b *testing.B) {
	buf := make([]byte, 0, 32)
	d := 12345678 * time.Nanosecond
	b.Run("AppendMillis", func(b *testing.B) {
		for b.Loop() {
			buf = AppendMillis(buf[:0], d)
		}
	})
	b.Run("strconv", func(b *testing.B) {
		for b.Loop() {
			buf = strconv.AppendFloat(buf[:0], float64(d)/1e6, 'f', 3, 64)
		}
	})
}

func TestAppendUsage(t *testing.T) {
	if got := string(AppendUsage(nil, 10, 4, 3, -1)); got != `{"prompt_tokens":10,"completion_tokens":4,"total_tokens":14,"prompt_tokens_details":{"cached_tokens":3}}` {
		t.Fatal(got)
	}
	if got := string(AppendUsage(nil, 1, 2, 0, 5)); got != `{"prompt_tokens":1,"completion_tokens":2,"total_tokens":3,"prompt_tokens_details":{"cached_tokens":0},"completion_tokens_details":{"reasoning_tokens":5}}` {
		t.Fatal(got)
	}
}
