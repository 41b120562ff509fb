package cache

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"
)

// Tier names where an answer was found.
type Tier uint8

// Tiers, in lookup order.
const (
	TierNone Tier = iota
	TierL1
	TierL2
)

// String returns "l1", "l2", or "" for TierNone: the metric label and the
// metadata.cache_tier value.
func (t Tier) String() string {
	switch t {
	case TierL1:
		return "l1"
	case TierL2:
		return "l2"
	default:
		return ""
	}
}

// L1 is the in-process tier (memory.Cache).
type L1 interface {
	Get(Key) (*Entry, bool)
	Set(Key, *Entry, time.Duration)
	Delete(Key)
	Clear()
	Len() int
	Bytes() int64
}

// L2 is the shared tier (redis.Cache). Get returns (nil, nil) on a miss.
type L2 interface {
	Get(context.Context, Key) (*Entry, error)
	Set(context.Context, Key, *Entry, time.Duration) error
	Delete(context.Context, Key) error
	Clear(context.Context) error
	Healthy() bool
}

// L2Batch is an L2 that looks many keys up in one round trip (redis.Cache:
// GetMany returns the entries in the keys' order, nil for a miss). Tiered
// uses it when its L2 has it.
type L2Batch interface {
	GetMany(context.Context, []Key) ([]*Entry, error)
}

// ErrWriteQueueFull is reported through Options.OnError when an L2 write is
// dropped because the write queue is full (L2 slower than the miss rate).
var ErrWriteQueueFull = errors.New("cache: L2 write queue full, write dropped")

// Default tier lifetimes and queue size.
const (
	DefaultL1TTL        = 300 * time.Second
	DefaultL2TTL        = 3600 * time.Second
	DefaultWriteQueue   = 1024
	DefaultDrainTimeout = time.Second
)

// Options configure a Tiered cache. Zero values take the defaults.
type Options struct {
	L1           L1 // nil: no L1
	L2           L2 // nil: no L2
	L1TTL        time.Duration
	L2TTL        time.Duration
	WriteQueue   int                                   // pending asynchronous L2 writes; a full queue drops writes
	DrainTimeout time.Duration                         // how long Close waits for queued L2 writes
	Now          func() time.Time                      // nil: time.Now
	OnError      func(tier Tier, op string, err error) // metrics hook; ops are "get", "set", "delete", "clear"
	// Trace, when set, wraps each tier's lookup (a tracing span per tier):
	// it is called before the lookup and its result after, with the outcome.
	Trace func(ctx context.Context, tier Tier) (context.Context, func(hit bool))
}

// Tiered looks answers up in L1 then L2 and stores them in both, writing L2
// in the background so that a slow or dead Redis never delays a response.
type Tiered struct {
	l1           L1
	l2           L2
	l1TTL, l2TTL time.Duration
	drainTimeout time.Duration
	now          func() time.Time
	onError      func(Tier, string, error)
	trace        func(context.Context, Tier) (context.Context, func(bool))

	queue  chan l2Write
	ctx    context.Context // cancelled when Close gives up draining
	cancel context.CancelFunc
	stop   chan struct{}
	done   chan struct{}
	closed atomic.Bool
	once   sync.Once
}

type l2Write struct {
	key Key
	e   *Entry
	ttl time.Duration
}

// NewTiered returns a Tiered cache. With an L2 it starts one writer
// goroutine, which Close stops.
func NewTiered(o Options) *Tiered {
	t := &Tiered{
		l1: o.L1, l2: o.L2,
		l1TTL: o.L1TTL, l2TTL: o.L2TTL,
		drainTimeout: o.DrainTimeout,
		now:          o.Now,
		onError:      o.OnError,
		trace:        o.Trace,
		stop:         make(chan struct{}),
		done:         make(chan struct{}),
	}
	if t.l1TTL <= 0 {
		t.l1TTL = DefaultL1TTL
	}
	if t.l2TTL <= 0 {
		t.l2TTL = DefaultL2TTL
	}
	if t.drainTimeout <= 0 {
		t.drainTimeout = DefaultDrainTimeout
	}
	if t.now == nil {
		t.now = time.Now
	}
	if t.onError == nil {
		t.onError = func(Tier, string, error) {}
	}
	t.ctx, t.cancel = context.WithCancel(context.Background())
	if t.l2 == nil {
		close(t.done)
		return t
	}
	n := o.WriteQueue
	if n <= 0 {
		n = DefaultWriteQueue
	}
	t.queue = make(chan l2Write, n)
	// Several writers, so Redis round trips overlap (rueidis pipelines
	// concurrent calls on one connection); one writer caps L2 writes at one
	// round trip each and drops writes under a burst of misses.
	var wg sync.WaitGroup
	for range l2Writers {
		wg.Go(t.writer)
	}
	go func() {
		wg.Wait()
		close(t.done)
	}()
	return t
}

// l2Writers is the number of goroutines writing queued entries to L2.
const l2Writers = 8

// Get looks k up in L1, then L2; an L2 hit fills L1. With maxAge > 0 an
// entry stored longer ago than maxAge is a miss (and stays stored: another
// request may accept it). An L2 failure is a miss, reported through OnError.
func (t *Tiered) Get(ctx context.Context, k Key, maxAge time.Duration) (*Entry, Tier) {
	now := t.now()
	if t.l1 != nil {
		var done func(bool)
		if t.trace != nil {
			_, done = t.trace(ctx, TierL1)
		}
		e, ok := t.l1.Get(k)
		hit := ok && fresh(e, now, maxAge)
		if done != nil {
			done(hit)
		}
		if hit {
			return e, TierL1
		}
	}
	if t.l2 == nil {
		return nil, TierNone
	}
	var done func(bool)
	if t.trace != nil {
		ctx, done = t.trace(ctx, TierL2)
	}
	e, err := t.l2.Get(ctx, k)
	hit := err == nil && e != nil && fresh(e, now, maxAge)
	if done != nil {
		done(hit)
	}
	if err != nil {
		t.onError(TierL2, "get", err)
		return nil, TierNone
	}
	if !hit {
		return nil, TierNone
	}
	if t.l1 != nil {
		ttl := t.l1TTL
		if !e.ExpiresAt.IsZero() {
			ttl = min(ttl, e.ExpiresAt.Sub(now))
		}
		t.l1.Set(k, e, ttl)
	}
	return e, TierL2
}

// GetMany is Get for many keys at once: each in L1, then the L1 misses in
// L2 together, one round trip when L2 is an L2Batch (one call per key
// otherwise). It returns the entries and their tiers in the keys' order (nil
// and TierNone for a miss); L2 hits fill L1.
func (t *Tiered) GetMany(ctx context.Context, keys []Key, maxAge time.Duration) ([]*Entry, []Tier) {
	out, tiers := make([]*Entry, len(keys)), make([]Tier, len(keys))
	batch, ok := t.l2.(L2Batch)
	if !ok || len(keys) < 2 {
		for i, k := range keys {
			out[i], tiers[i] = t.Get(ctx, k, maxAge)
		}
		return out, tiers
	}
	now := t.now()
	var miss []Key
	var at []int
	if t.l1 != nil {
		var done func(bool)
		if t.trace != nil {
			_, done = t.trace(ctx, TierL1)
		}
		for i, k := range keys {
			if e, ok := t.l1.Get(k); ok && fresh(e, now, maxAge) {
				out[i], tiers[i] = e, TierL1
				continue
			}
			miss, at = append(miss, k), append(at, i)
		}
		if done != nil {
			done(len(miss) == 0)
		}
		if len(miss) == 0 {
			return out, tiers
		}
	} else {
		miss, at = keys, make([]int, len(keys))
		for i := range at {
			at[i] = i
		}
	}
	var done func(bool)
	if t.trace != nil {
		ctx, done = t.trace(ctx, TierL2)
	}
	es, err := batch.GetMany(ctx, miss)
	if err != nil {
		t.onError(TierL2, "get", err) // es still holds what decoded
	}
	hits := 0
	for j, e := range es {
		if e == nil || !fresh(e, now, maxAge) {
			continue
		}
		hits++
		i := at[j]
		out[i], tiers[i] = e, TierL2
		if t.l1 != nil {
			ttl := t.l1TTL
			if !e.ExpiresAt.IsZero() {
				ttl = min(ttl, e.ExpiresAt.Sub(now))
			}
			t.l1.Set(keys[i], e, ttl)
		}
	}
	if done != nil {
		done(hits == len(miss))
	}
	return out, tiers
}

func fresh(e *Entry, now time.Time, maxAge time.Duration) bool {
	if !e.ExpiresAt.IsZero() && !now.Before(e.ExpiresAt) {
		return false
	}
	return maxAge <= 0 || now.Sub(e.StoredAt) <= maxAge
}

// Set stores e under k: in L1 at once, in L2 through the write queue. It
// never blocks; when the queue is full the L2 write is dropped and reported.
//
// ttl 0 uses each tier's default. An explicit ttl is the L2 lifetime and is
// capped at the L1 TTL for L1: the L1 TTL also bounds how long other
// instances keep serving an entry after it is deleted through the admin API,
// which only reaches this instance's L1.
//
// Set stores a copy of e with StoredAt (when zero) and ExpiresAt filled in;
// the caller keeps ownership of e but must not modify e.Body afterwards.
func (t *Tiered) Set(k Key, e *Entry, ttl time.Duration) {
	now := t.now()
	l1TTL, l2TTL := t.l1TTL, t.l2TTL
	if ttl > 0 {
		l1TTL, l2TTL = min(ttl, t.l1TTL), ttl
	}
	c := *e
	if c.StoredAt.IsZero() {
		c.StoredAt = now
	}
	if t.l2 != nil {
		c.ExpiresAt = now.Add(l2TTL)
	} else {
		c.ExpiresAt = now.Add(l1TTL)
	}
	if t.l1 != nil {
		t.l1.Set(k, &c, l1TTL)
	}
	if t.l2 == nil || t.closed.Load() {
		return
	}
	select {
	case t.queue <- l2Write{key: k, e: &c, ttl: l2TTL}:
	default:
		t.onError(TierL2, "set", ErrWriteQueueFull)
	}
}

func (t *Tiered) writer() {
	for {
		select {
		case w := <-t.queue:
			t.write(w)
		case <-t.stop:
			for t.ctx.Err() == nil {
				select {
				case w := <-t.queue:
					t.write(w)
				default:
					return
				}
			}
			return
		}
	}
}

func (t *Tiered) write(w l2Write) {
	if err := t.l2.Set(t.ctx, w.key, w.e, w.ttl); err != nil {
		t.onError(TierL2, "set", err)
	}
}

// Delete removes k from both tiers. A write of k still in the queue may land
// after it; the admin API deletes settled entries, not racing ones.
func (t *Tiered) Delete(ctx context.Context, k Key) error {
	if t.l1 != nil {
		t.l1.Delete(k)
	}
	if t.l2 == nil {
		return nil
	}
	if err := t.l2.Delete(ctx, k); err != nil {
		t.onError(TierL2, "delete", err)
		return fmt.Errorf("delete from L2: %w", err)
	}
	return nil
}

// Clear removes every entry from both tiers (in L2, only this cache's keys).
func (t *Tiered) Clear(ctx context.Context) error {
	if t.l1 != nil {
		t.l1.Clear()
	}
	if t.l2 == nil {
		return nil
	}
	if err := t.l2.Clear(ctx); err != nil {
		t.onError(TierL2, "clear", err)
		return fmt.Errorf("clear L2: %w", err)
	}
	return nil
}

// L2Healthy reports whether L2 answered its last call; true without L2.
func (t *Tiered) L2Healthy() bool {
	return t.l2 == nil || t.l2.Healthy()
}

// Close stops the L2 writer after it has written what is queued, waiting at
// most DrainTimeout before abandoning the rest. Later Sets still fill L1 but
// no longer write L2. Close does not close L1 or L2: their creator does,
// after Close, so that the drained writes can land.
func (t *Tiered) Close() {
	t.once.Do(func() {
		t.closed.Store(true)
		close(t.stop)
		timer := time.NewTimer(t.drainTimeout)
		defer timer.Stop()
		select {
		case <-t.done:
		case <-timer.C:
			t.cancel()
			<-t.done
		}
		t.cancel()
	})
}
