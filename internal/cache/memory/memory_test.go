package memory

import (
	"context"
	"strings"
	"testing"
	"testing/synctest"
	"time"

	"go.uber.org/goleak"

	"github.com/edge-agent/edge-agent/internal/cache"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func newCache(t testing.TB, o Options) *Cache {
	t.Helper()
	c, err := New(o)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	return c
}

func entry(bodyBytes int) *cache.Entry {
	return &cache.Entry{Body: []byte(strings.Repeat("x", bodyBytes)), Provider: "openai", Model: "m"}
}

func key(i int) cache.Key { return cache.Key{byte(i), byte(i >> 8), byte(i >> 16)} }

func TestHitReturnsTheStoredEntryAndMissReportsFalse(t *testing.T) {
	c := newCache(t, Options{})
	e := entry(100)
	c.Set(key(1), e, 0)
	if got, ok := c.Get(key(1)); !ok || got != e {
		t.Fatalf("Get = %v, %v; want the stored pointer", got, ok)
	}
	if got, ok := c.Get(key(2)); ok || got != nil {
		t.Fatalf("Get of an absent key = %v, %v", got, ok)
	}
	c.Delete(key(1))
	if _, ok := c.Get(key(1)); ok {
		t.Fatal("Delete left the entry")
	}
}

func TestEntriesExpireAfterTheirTTL(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		c, err := New(Options{TTL: 300 * time.Second})
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		c.Set(key(1), entry(10), 0)              // default TTL
		c.Set(key(2), entry(10), 10*time.Second) // per-write TTL
		time.Sleep(9 * time.Second)
		if _, ok := c.Get(key(2)); !ok {
			t.Fatal("entry expired before its 10s TTL")
		}
		time.Sleep(2 * time.Second)
		if _, ok := c.Get(key(2)); ok {
			t.Fatal("entry outlived its 10s TTL")
		}
		if _, ok := c.Get(key(1)); !ok {
			t.Fatal("default-TTL entry expired after 11s")
		}
		time.Sleep(290 * time.Second)
		if _, ok := c.Get(key(1)); ok {
			t.Fatal("entry outlived the 300s default TTL")
		}
	})
}

func TestByteBoundEvicts(t *testing.T) {
	c := newCache(t, Options{MaxBytes: 100_000})
	e := entry(1000) // ~1.2 KB with overhead
	for i := range 1000 {
		c.Set(key(i), e, 0)
		c.c.CleanUp() // run pending maintenance so the bound holds now
	}
	if b := c.Bytes(); b > 100_000 || b < 50_000 {
		t.Fatalf("Bytes() = %d, want at most 100000 and the cache reasonably full", b)
	}
	if n := c.Len(); n > 100_000/e.Size() {
		t.Fatalf("Len() = %d entries of %d bytes under a 100000 byte bound", n, e.Size())
	}
}

func TestEntryBoundEvicts(t *testing.T) {
	c := newCache(t, Options{MaxBytes: 1 << 30, MaxEntries: 100})
	for i := range 1000 {
		c.Set(key(i), entry(10), 0)
		c.c.CleanUp()
	}
	if n := c.Len(); n > 100 || n < 50 {
		t.Fatalf("Len() = %d, want at most 100 and the cache reasonably full", n)
	}
}

func TestOversizedEntryIsNotKeptAndBytesStayExact(t *testing.T) {
	c := newCache(t, Options{MaxBytes: 10_000})
	c.Set(key(1), entry(100), 0)
	c.Set(key(2), entry(50_000), 0)
	c.c.CleanUp()
	if _, ok := c.Get(key(2)); ok {
		t.Fatal("an entry larger than MaxBytes was kept")
	}
	c.Set(key(1), entry(200), 0) // replacement
	c.c.CleanUp()
	if want := int64(entry(200).Size()); c.Bytes() != want {
		t.Fatalf("Bytes() = %d, want %d after eviction and replacement", c.Bytes(), want)
	}
	c.Clear()
	c.c.CleanUp()
	if c.Bytes() != 0 || c.Len() != 0 {
		t.Fatalf("after Clear: Bytes %d, Len %d", c.Bytes(), c.Len())
	}
}

func TestNewRejectsNegativeBounds(t *testing.T) {
	for _, o := range []Options{{MaxBytes: -1}, {MaxEntries: -1}, {TTL: -time.Second}} {
		if _, err := New(o); err == nil {
			t.Errorf("New(%+v) succeeded", o)
		}
	}
}

// The cache satisfies the L1 interface of the tiered cache.
var _ cache.L1 = (*Cache)(nil)

func BenchmarkGetHit(b *testing.B) {
	c := newCache(b, Options{})
	e := entry(1000)
	c.Set(key(1), e, 0)
	b.ReportAllocs()
	for b.Loop() {
		if _, ok := c.Get(key(1)); !ok {
			b.Fatal("miss")
		}
	}
}

func BenchmarkTieredGetL1Hit(b *testing.B) {
	c := newCache(b, Options{})
	t := cache.NewTiered(cache.Options{L1: c})
	defer t.Close()
	t.Set(key(1), entry(1000), 0)
	ctx := context.Background()
	b.ReportAllocs()
	for b.Loop() {
		if _, tier := t.Get(ctx, key(1), 0); tier != cache.TierL1 {
			b.Fatal("miss")
		}
	}
}
