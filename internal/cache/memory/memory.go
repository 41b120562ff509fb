// Package memory is the in-process cache tier (L1): a W-TinyLFU cache of
// decoded entries bounded by bytes and by entry count, with per-entry TTLs.
package memory

import (
	"errors"
	"math"
	"sync/atomic"
	"time"

	"github.com/maypok86/otter/v2"

	"github.com/edge-agent/edge-agent/internal/cache"
)

// Defaults for zero Options fields.
const (
	DefaultMaxBytes = 256 << 20
	DefaultTTL      = 300 * time.Second
)

// Options configure an L1 cache.
type Options struct {
	// MaxBytes bounds the approximate memory of the entries (Entry.Size);
	// 0 means DefaultMaxBytes.
	MaxBytes int64
	// MaxEntries bounds the number of entries; 0 means no count bound.
	MaxEntries int
	// TTL is the lifetime of an entry written with ttl 0; 0 means DefaultTTL.
	TTL time.Duration
}

// Cache is the L1 tier. It stores *cache.Entry as is, so a hit costs no
// decoding; entries must not be modified once stored.
type Cache struct {
	c     *otter.Cache[cache.Key, item]
	ttl   time.Duration
	bytes atomic.Int64
}

// item carries the TTL chosen at write time to otter's expiry calculator.
type item struct {
	e   *cache.Entry
	ttl time.Duration
}

// New returns an L1 cache.
//
// otter bounds a cache by a single maximum weight, so both bounds are folded
// into it: an entry weighs its size but at least MaxBytes/MaxEntries
// (rounded up). The total weight stays under MaxBytes, so the real bytes do,
// and since every entry weighs at least MaxBytes/MaxEntries there are never
// more than MaxEntries of them. When entries are small the count bound is
// the one that bites, as intended; when they are large, the byte bound is.
func New(o Options) (*Cache, error) {
	if o.MaxBytes < 0 || o.MaxEntries < 0 || o.TTL < 0 {
		return nil, errors.New("memory cache: MaxBytes, MaxEntries and TTL must not be negative")
	}
	if o.MaxBytes == 0 {
		o.MaxBytes = DefaultMaxBytes
	}
	if o.TTL == 0 {
		o.TTL = DefaultTTL
	}
	var floor uint32 = 1
	if o.MaxEntries > 0 {
		f := (o.MaxBytes + int64(o.MaxEntries) - 1) / int64(o.MaxEntries)
		floor = uint32(min(f, math.MaxUint32))
	}
	c := &Cache{ttl: o.TTL}
	oc, err := otter.New(&otter.Options[cache.Key, item]{
		MaximumWeight: uint64(o.MaxBytes),
		Weigher: func(_ cache.Key, v item) uint32 {
			return max(floor, uint32(min(v.e.Size(), math.MaxUint32)))
		},
		ExpiryCalculator: otter.ExpiryWritingFunc(func(e otter.Entry[cache.Key, item]) time.Duration {
			return e.Value.ttl
		}),
		// Atomic, so Bytes never lags behind an eviction or replacement.
		OnAtomicDeletion: func(e otter.DeletionEvent[cache.Key, item]) {
			c.bytes.Add(-int64(e.Value.e.Size()))
		},
		// Maintenance (draining the read and write buffers, evicting) runs
		// on the goroutine that filled a buffer, amortised over the reads
		// that filled it. The default executor starts a goroutine for it,
		// every few reads of a hot key: that costs more than the work and
		// wakes another thread, which shows in the latency of a hit. This
		// is safe here: the only handler is an atomic add, and nothing
		// calls back into the cache.
		Executor: func(fn func()) { fn() },
	})
	if err != nil {
		return nil, err
	}
	c.c = oc
	return c, nil
}

// Get returns the live entry for k.
func (c *Cache) Get(k cache.Key) (*cache.Entry, bool) {
	v, ok := c.c.GetIfPresent(k)
	return v.e, ok
}

// Set stores e under k for ttl (0: the default TTL).
func (c *Cache) Set(k cache.Key, e *cache.Entry, ttl time.Duration) {
	if ttl <= 0 {
		ttl = c.ttl
	}
	c.bytes.Add(int64(e.Size()))
	c.c.Set(k, item{e: e, ttl: ttl})
}

// Delete removes k.
func (c *Cache) Delete(k cache.Key) { c.c.Invalidate(k) }

// Clear removes every entry.
func (c *Cache) Clear() { c.c.InvalidateAll() }

// Len is the approximate number of entries.
func (c *Cache) Len() int { return c.c.EstimatedSize() }

// Bytes is the approximate memory held by the entries (sum of Entry.Size).
func (c *Cache) Bytes() int64 { return c.bytes.Load() }

// Close stops otter's periodic expiry goroutine. The cache still works
// afterwards; expired entries are then removed only as they are touched.
func (c *Cache) Close() { c.c.StopAllGoroutines() }
