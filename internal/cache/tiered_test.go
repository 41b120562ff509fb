package cache

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

type fakeL1 struct {
	mu   sync.Mutex
	m    map[Key]*Entry
	ttls map[Key]time.Duration
}

func newFakeL1() *fakeL1 { return &fakeL1{m: map[Key]*Entry{}, ttls: map[Key]time.Duration{}} }

func (f *fakeL1) Get(k Key) (*Entry, bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	e, ok := f.m[k]
	return e, ok
}

func (f *fakeL1) Set(k Key, e *Entry, ttl time.Duration) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.m[k], f.ttls[k] = e, ttl
}

func (f *fakeL1) Delete(k Key) {
	f.mu.Lock()
	defer f.mu.Unlock()
	delete(f.m, k)
}

func (f *fakeL1) Clear() {
	f.mu.Lock()
	defer f.mu.Unlock()
	clear(f.m)
}

func (f *fakeL1) Len() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return len(f.m)
}

func (f *fakeL1) Bytes() int64 { return 0 }

// fakeL2 is an in-memory L2 that can fail, or hang until its context ends.
type fakeL2 struct {
	mu      sync.Mutex
	m       map[Key]*Entry
	ttls    map[Key]time.Duration
	err     error
	hang    bool
	sets    atomic.Int32
	healthy bool
}

func newFakeL2() *fakeL2 {
	return &fakeL2{m: map[Key]*Entry{}, ttls: map[Key]time.Duration{}, healthy: true}
}

func (f *fakeL2) Get(ctx context.Context, k Key) (*Entry, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.err != nil {
		return nil, f.err
	}
	return f.m[k], nil
}

func (f *fakeL2) Set(ctx context.Context, k Key, e *Entry, ttl time.Duration) error {
	if f.hang {
		<-ctx.Done()
		return ctx.Err()
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	f.sets.Add(1)
	f.m[k], f.ttls[k] = e, ttl
	return nil
}

func (f *fakeL2) Delete(ctx context.Context, k Key) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	delete(f.m, k)
	return f.err
}

func (f *fakeL2) Clear(ctx context.Context) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	clear(f.m)
	return f.err
}

func (f *fakeL2) Healthy() bool { return f.healthy }

func (f *fakeL2) get(k Key) *Entry {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.m[k]
}

// fakeClock is a settable Options.Now.
type fakeClock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
}

func TestTieredL2HitFillsL1(t *testing.T) {
	l1, l2 := newFakeL1(), newFakeL2()
	clock := &fakeClock{now: time.Unix(1_700_000_000, 0)}
	tc := NewTiered(Options{L1: l1, L2: l2, Now: clock.Now})
	defer tc.Close()
	k := Key{7}
	e := sampleEntry()
	e.StoredAt, e.ExpiresAt = clock.Now(), time.Time{}
	l2.m[k] = e

	if got, tier := tc.Get(context.Background(), k, 0); got != e || tier != TierL2 {
		t.Fatalf("first Get = %v, %v; want the L2 entry", got, tier)
	}
	if _, ok := l1.Get(k); !ok {
		t.Fatal("an L2 hit did not fill L1")
	}
	if l1.ttls[k] != DefaultL1TTL {
		t.Errorf("L1 fill TTL = %v, want %v", l1.ttls[k], DefaultL1TTL)
	}
	l2.m = map[Key]*Entry{}
	if got, tier := tc.Get(context.Background(), k, 0); got != e || tier != TierL1 {
		t.Fatalf("second Get = %v, %v; want an L1 hit", got, tier)
	}
}

func TestTieredL1FillFromL2EndsWithTheL2Entry(t *testing.T) {
	l1, l2 := newFakeL1(), newFakeL2()
	clock := &fakeClock{now: time.Unix(1_700_000_000, 0)}
	tc := NewTiered(Options{L1: l1, L2: l2, Now: clock.Now})
	defer tc.Close()
	k := Key{8}
	e := sampleEntry()
	e.StoredAt, e.ExpiresAt = clock.Now().Add(-time.Hour), clock.Now().Add(30*time.Second)
	l2.m[k] = e
	if _, tier := tc.Get(context.Background(), k, 0); tier != TierL2 {
		t.Fatalf("tier = %v, want l2", tier)
	}
	if l1.ttls[k] != 30*time.Second {
		t.Errorf("L1 fill TTL = %v, want the 30s left in L2", l1.ttls[k])
	}
	clock.Advance(30 * time.Second)
	if got, tier := tc.Get(context.Background(), k, 0); got != nil || tier != TierNone {
		t.Fatalf("expired entry served from %v", tier)
	}
}

func TestTieredMaxAgeRejectsOlderEntriesWithoutDeletingThem(t *testing.T) {
	l1, l2 := newFakeL1(), newFakeL2()
	clock := &fakeClock{now: time.Unix(1_700_000_000, 0)}
	tc := NewTiered(Options{L1: l1, L2: l2, Now: clock.Now})
	defer tc.Close()
	k := Key{9}
	tc.Set(k, &Entry{Body: []byte("{}")}, 0)
	clock.Advance(10 * time.Second)

	for _, tt := range []struct {
		name   string
		maxAge time.Duration
		want   Tier
	}{
		{"younger than max-age", 11 * time.Second, TierL1},
		{"exactly max-age", 10 * time.Second, TierL1},
		{"older than max-age", 9 * time.Second, TierNone},
		{"no max-age", 0, TierL1},
	} {
		t.Run(tt.name, func(t *testing.T) {
			if _, tier := tc.Get(context.Background(), k, tt.maxAge); tier != tt.want {
				t.Fatalf("tier = %q, want %q", tier, tt.want)
			}
		})
	}
}

func TestTieredL2ErrorIsAReportedMiss(t *testing.T) {
	l2 := newFakeL2()
	l2.err = errors.New("connection refused")
	var reported []string
	tc := NewTiered(Options{L2: l2, OnError: func(tier Tier, op string, err error) {
		reported = append(reported, tier.String()+" "+op)
	}})
	defer tc.Close()
	if e, tier := tc.Get(context.Background(), Key{1}, 0); e != nil || tier != TierNone {
		t.Fatalf("Get = %v, %v; want a miss", e, tier)
	}
	if len(reported) != 1 || reported[0] != "l2 get" {
		t.Fatalf("reported %v, want [l2 get]", reported)
	}
}

func TestTieredSetNeverBlocksWhenL2Hangs(t *testing.T) {
	l1, l2 := newFakeL1(), newFakeL2()
	l2.hang = true
	var dropped atomic.Int32
	tc := NewTiered(Options{L1: l1, L2: l2, WriteQueue: 4, DrainTimeout: 20 * time.Millisecond,
		OnError: func(_ Tier, op string, err error) {
			if errors.Is(err, ErrWriteQueueFull) {
				dropped.Add(1)
			}
		}})
	begin := time.Now()
	for i := range 1000 {
		tc.Set(Key{byte(i), byte(i >> 8)}, sampleEntry(), 0)
	}
	if took := time.Since(begin); took > 100*time.Millisecond {
		t.Fatalf("1000 Sets took %v with a hanging L2", took)
	}
	if l1.Len() != 1000 {
		t.Fatalf("L1 holds %d entries, want 1000 (L1 is written synchronously)", l1.Len())
	}
	// One write in flight per writer and four queued; the rest are dropped.
	if d := dropped.Load(); d < 1000-4-l2Writers {
		t.Fatalf("dropped %d writes, want at least %d", d, 1000-4-l2Writers)
	}
	begin = time.Now()
	tc.Close()
	if took := time.Since(begin); took > time.Second {
		t.Fatalf("Close took %v with a hanging L2; it must give up after DrainTimeout", took)
	}
	// goleak (TestMain) checks that the writer goroutine ended.
}

func TestTieredCloseDrainsQueuedWrites(t *testing.T) {
	l2 := newFakeL2()
	tc := NewTiered(Options{L2: l2, WriteQueue: 256})
	for i := range 200 {
		tc.Set(Key{byte(i)}, sampleEntry(), 0)
	}
	tc.Close()
	if n := l2.sets.Load(); n != 200 {
		t.Fatalf("L2 received %d writes, want 200", n)
	}
	tc.Set(Key{0xff}, sampleEntry(), 0) // after Close: L1 only, no panic
	tc.Close()                          // idempotent
}

func TestTieredSetTTLs(t *testing.T) {
	clock := &fakeClock{now: time.Unix(1_700_000_000, 0)}
	for _, tt := range []struct {
		name           string
		ttl            time.Duration
		wantL1, wantL2 time.Duration
	}{
		{"defaults", 0, 300 * time.Second, time.Hour},
		{"short explicit applies to both", 10 * time.Second, 10 * time.Second, 10 * time.Second},
		{"long explicit is capped in L1", 24 * time.Hour, 300 * time.Second, 24 * time.Hour},
	} {
		t.Run(tt.name, func(t *testing.T) {
			l1, l2 := newFakeL1(), newFakeL2()
			tc := NewTiered(Options{L1: l1, L2: l2, Now: clock.Now})
			e := &Entry{Body: []byte("{}")}
			tc.Set(Key{1}, e, tt.ttl)
			tc.Close()
			if l1.ttls[Key{1}] != tt.wantL1 || l2.ttls[Key{1}] != tt.wantL2 {
				t.Fatalf("TTLs L1 %v, L2 %v; want %v, %v", l1.ttls[Key{1}], l2.ttls[Key{1}], tt.wantL1, tt.wantL2)
			}
			stored := l2.get(Key{1})
			if !stored.StoredAt.Equal(clock.Now()) || !stored.ExpiresAt.Equal(clock.Now().Add(tt.wantL2)) {
				t.Fatalf("stored at %v expiring %v", stored.StoredAt, stored.ExpiresAt)
			}
			if !e.StoredAt.IsZero() {
				t.Fatal("Set modified the caller's entry")
			}
		})
	}
}

func TestTieredDeleteAndClearReachBothTiers(t *testing.T) {
	l1, l2 := newFakeL1(), newFakeL2()
	tc := NewTiered(Options{L1: l1, L2: l2})
	tc.Set(Key{1}, sampleEntry(), 0)
	tc.Set(Key{2}, sampleEntry(), 0)
	tc.Close() // flush the queued L2 writes
	ctx := context.Background()
	if err := tc.Delete(ctx, Key{1}); err != nil {
		t.Fatal(err)
	}
	if _, ok := l1.Get(Key{1}); ok || l2.get(Key{1}) != nil {
		t.Fatal("Delete left the entry in a tier")
	}
	if err := tc.Clear(ctx); err != nil {
		t.Fatal(err)
	}
	if l1.Len() != 0 || l2.get(Key{2}) != nil {
		t.Fatal("Clear left entries")
	}
	l2.err = errors.New("down")
	if err := tc.Clear(ctx); err == nil {
		t.Fatal("Clear hid the L2 failure from the admin API")
	}
}

func TestTieredWithoutL2(t *testing.T) {
	tc := NewTiered(Options{L1: newFakeL1()})
	defer tc.Close()
	if !tc.L2Healthy() {
		t.Fatal("no L2 must count as healthy")
	}
	tc.Set(Key{1}, sampleEntry(), 0)
	if _, tier := tc.Get(context.Background(), Key{1}, 0); tier != TierL1 {
		t.Fatalf("tier = %q, want l1", tier)
	}
	if _, tier := tc.Get(context.Background(), Key{2}, 0); tier != TierNone {
		t.Fatalf("tier = %q, want a miss", tier)
	}
}

func TestTieredTracesEachTierLookupWithItsOutcome(t *testing.T) {
	l1, l2 := newFakeL1(), newFakeL2()
	var got []string
	tc := NewTiered(Options{L1: l1, L2: l2, Trace: func(ctx context.Context, tier Tier) (context.Context, func(bool)) {
		return ctx, func(hit bool) { got = append(got, fmt.Sprintf("%s:%v", tier, hit)) }
	}})
	defer tc.Close()
	k := Key{9}
	if e, _ := tc.Get(context.Background(), k, 0); e != nil {
		t.Fatal("unexpected hit")
	}
	e := sampleEntry()
	e.StoredAt, e.ExpiresAt = time.Now(), time.Now().Add(time.Hour) // fresh
	if err := l2.Set(context.Background(), k, e, time.Minute); err != nil {
		t.Fatal(err)
	}
	tc.Get(context.Background(), k, 0) // L2 hit, fills L1
	tc.Get(context.Background(), k, 0) // L1 hit
	want := []string{"l1:false", "l2:false", "l1:false", "l2:true", "l1:true"}
	if !slices.Equal(got, want) {
		t.Fatalf("traced %v, want %v", got, want)
	}
}

// batchL2 is a fakeL2 that also looks keys up in batches, counting calls.
type batchL2 struct {
	*fakeL2
	batches, keys int
}

func (b *batchL2) GetMany(ctx context.Context, keys []Key) ([]*Entry, error) {
	b.batches++
	b.keys += len(keys)
	out := make([]*Entry, len(keys))
	for i, k := range keys {
		e, err := b.fakeL2.Get(ctx, k)
		if err != nil {
			return nil, err
		}
		out[i] = e
	}
	return out, nil
}

func TestTieredGetManyAsksL2OnceForWhatL1Lacks(t *testing.T) {
	l1, l2 := newFakeL1(), &batchL2{fakeL2: newFakeL2()}
	clock := &fakeClock{now: time.Unix(1_700_000_000, 0)}
	tc := NewTiered(Options{L1: l1, L2: l2, Now: clock.Now})
	defer tc.Close()
	ctx := context.Background()
	inL1, inL2, stale := sampleEntry(), sampleEntry(), sampleEntry()
	inL1.StoredAt, inL2.StoredAt, stale.StoredAt = clock.Now(), clock.Now(), clock.Now().Add(-time.Hour)
	l1.Set(Key{1}, inL1, time.Minute)
	l2.m[Key{2}], l2.m[Key{4}] = inL2, stale
	keys := []Key{{1}, {2}, {3}, {4}}
	es, tiers := tc.GetMany(ctx, keys, 10*time.Minute)
	if es[0] != inL1 || tiers[0] != TierL1 || es[1] != inL2 || tiers[1] != TierL2 ||
		es[2] != nil || tiers[2] != TierNone || es[3] != nil || tiers[3] != TierNone {
		t.Fatalf("entries %v, tiers %v", es, tiers)
	}
	if l2.batches != 1 || l2.keys != 3 {
		t.Fatalf("L2 asked %d times for %d keys; want once, for the 3 L1 lacked", l2.batches, l2.keys)
	}
	if _, ok := l1.Get(Key{2}); !ok {
		t.Fatal("an L2 hit did not fill L1")
	}
	// All in L1 now but 3 and 4: L2 is asked for those alone.
	if es, _ = tc.GetMany(ctx, keys[:2], 0); es[0] != inL1 || es[1] != inL2 || l2.batches != 1 {
		t.Fatalf("entries %v after %d batches; want both from L1 with no L2 call", es, l2.batches)
	}
	l2.err = errors.New("down")
	if es, tiers = tc.GetMany(ctx, keys[2:], 0); es[0] != nil || es[1] != nil || tiers[0] != TierNone {
		t.Fatalf("an L2 failure must be a miss: %v %v", es, tiers)
	}
}
