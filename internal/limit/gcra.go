package limit

import (
	"context"
	"sync"
	"time"

	"github.com/zeebo/xxh3"
)

// Limit is a rate: Rate units per minute, at most Burst at once.
// Rate <= 0 means unlimited; Burst <= 0 means one minute's worth (Rate).
type Limit struct {
	Rate  int
	Burst int
}

// Unlimited reports whether the limit lets everything through.
func (l Limit) Unlimited() bool { return l.Rate <= 0 }

func (l Limit) burst() int64 {
	if l.Burst > 0 {
		return int64(l.Burst)
	}
	return int64(l.Rate)
}

// interval is the GCRA emission interval: the time one unit takes to refill.
func (l Limit) interval() time.Duration {
	if d := time.Minute / time.Duration(l.Rate); d > 0 {
		return d
	}
	return 1
}

// Decision is the outcome of one Allow.
type Decision struct {
	Allowed    bool
	Limit      int           // the burst (bucket size); 0 when unlimited
	Remaining  int           // units left right after this decision
	Reset      time.Duration // until the bucket is full again
	RetryAfter time.Duration // when denied: until the same request would pass
}

// Limiter is a GCRA rate limiter over named buckets.
type Limiter interface {
	// Allow spends n units from the bucket key if they are available. A
	// request larger than the bucket passes when the bucket is full and
	// leaves it in debt, so big requests are slowed, never refused forever.
	Allow(ctx context.Context, key string, l Limit, n int) (Decision, error)
	// Adjust spends n units unconditionally (n < 0 gives units back). It
	// corrects a token estimate once the real usage is known.
	Adjust(ctx context.Context, key string, l Limit, n int) error
}

// gcra applies one Allow (force=false) or Adjust (force=true) to the
// theoretical arrival time tat, all in nanoseconds. It is the same
// arithmetic as the Redis script.
func gcra(tat, now int64, l Limit, n int, force bool) (newTat int64, d Decision) {
	interval := int64(l.interval())
	burst := l.burst()
	tolerance := burst * interval
	if tat < now {
		tat = now
	}
	need := int64(n)
	if need > burst {
		need = burst
	}
	newTat = tat + int64(n)*interval
	if newTat < now {
		newTat = now
	}
	d = Decision{Allowed: true, Limit: int(burst)}
	if !force && tat+need*interval-tolerance > now {
		d.Allowed = false
		d.RetryAfter = time.Duration(tat + need*interval - tolerance - now)
		newTat = tat
	}
	d.Reset = time.Duration(newTat - now)
	if rem := (now + tolerance - newTat) / interval; rem > 0 {
		d.Remaining = int(rem)
	}
	return newTat, d
}

func unlimited() Decision { return Decision{Allowed: true} }

const localShards = 64

// LocalLimiter is an in-process Limiter. Buckets live in a sharded map and
// are dropped once full again, since a full bucket carries no state.
type LocalLimiter struct {
	now    func() time.Time
	shards [localShards]localShard
}

type localShard struct {
	mu        sync.Mutex
	tats      map[string]int64 // unix nanoseconds
	nextSweep int              // sweep full buckets when the map grows to this
}

// NewLocalLimiter returns an in-process limiter; now is the clock (nil for
// time.Now).
func NewLocalLimiter(now func() time.Time) *LocalLimiter {
	if now == nil {
		now = time.Now
	}
	l := &LocalLimiter{now: now}
	for i := range l.shards {
		l.shards[i].tats = make(map[string]int64)
	}
	return l
}

// Allow implements Limiter.
func (ll *LocalLimiter) Allow(_ context.Context, key string, l Limit, n int) (Decision, error) {
	if l.Unlimited() {
		return unlimited(), nil
	}
	return ll.apply(key, l, n, false), nil
}

// Adjust implements Limiter.
func (ll *LocalLimiter) Adjust(_ context.Context, key string, l Limit, n int) error {
	if l.Unlimited() || n == 0 {
		return nil
	}
	ll.apply(key, l, n, true)
	return nil
}

// minSweep is the smallest shard size that triggers a sweep. A shard sweeps
// its full buckets whenever it has doubled since the last sweep, which
// keeps memory within twice the buckets in use, at amortised O(1) cost and
// without a goroutine.
const minSweep = 64

func (ll *LocalLimiter) apply(key string, l Limit, n int, force bool) Decision {
	now := ll.now().UnixNano()
	s := &ll.shards[xxh3.HashString(key)%localShards]
	s.mu.Lock()
	defer s.mu.Unlock()
	tat, d := gcra(s.tats[key], now, l, n, force)
	if tat > now {
		s.tats[key] = tat
	} else {
		delete(s.tats, key)
	}
	if len(s.tats) >= s.nextSweep {
		for k, t := range s.tats {
			if t <= now {
				delete(s.tats, k)
			}
		}
		s.nextSweep = max(2*len(s.tats), minSweep)
	}
	return d
}

// Len is the number of buckets held in memory, for tests and metrics.
func (ll *LocalLimiter) Len() int {
	n := 0
	for i := range ll.shards {
		s := &ll.shards[i]
		s.mu.Lock()
		n += len(s.tats)
		s.mu.Unlock()
	}
	return n
}
