package limit

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/redis/rueidis"
)

// RedisOptions tune how the Redis-backed limiter and budget store use Redis
// and when they give up on it.
type RedisOptions struct {
	// Prefix of every Redis key; defaults to "llm-edge:rl:" for the limiter
	// and "llm-edge:budget:" for budgets.
	Prefix string
	// Timeout of one Redis round trip before the local fallback answers
	// (default 50ms): a slow Redis must not slow every request.
	Timeout time.Duration
	// Backoff is how long Redis is left alone after a failure (default 1s);
	// the first request after it tries Redis again, so recovery is automatic.
	Backoff time.Duration
	// OnFallback, if set, is called whenever a failure of Redis hands a call
	// to the local fallback. It must be cheap (a metric, a rate-limited log).
	OnFallback func(error)
	// Now is the clock for the backoff and budget periods (nil: time.Now).
	Now func() time.Time
	// OnRepair, if set, is called when a key held something that is not a
	// limiter's or budget's value (another type, or a string that is not a
	// number) and was replaced. Without the repair every call on that key
	// would fail and fall back to per-instance limits for good.
	OnRepair func()
}

func (o RedisOptions) withDefaults(prefix string) RedisOptions {
	if o.Prefix == "" {
		o.Prefix = prefix
	}
	if o.Timeout <= 0 {
		o.Timeout = 50 * time.Millisecond
	}
	if o.Backoff <= 0 {
		o.Backoff = time.Second
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	return o
}

// redisGate remembers a Redis failure so that, during the backoff, calls go
// straight to the fallback instead of each paying the timeout.
type redisGate struct {
	opts      RedisOptions
	downUntil atomic.Int64 // unix nanoseconds
}

func (g *redisGate) up() bool { return g.opts.Now().UnixNano() >= g.downUntil.Load() }

// Degraded reports whether Redis is being bypassed after a recent failure.
func (g *redisGate) Degraded() bool { return !g.up() }

// failed records err if it is a failure of Redis; it returns the caller's
// own context error instead when the request itself was cancelled, which
// says nothing about Redis.
func (g *redisGate) failed(ctx context.Context, err error) error {
	if ctxErr := ctx.Err(); ctxErr != nil {
		return ctxErr
	}
	g.downUntil.Store(g.opts.Now().Add(g.opts.Backoff).UnixNano())
	if g.opts.OnFallback != nil {
		g.opts.OnFallback(err)
	}
	return nil
}

func (g *redisGate) repaired() {
	if g.opts.OnRepair != nil {
		g.opts.OnRepair()
	}
}

// gcraScript is gcra in Lua, in microseconds, on Redis' clock so that every
// instance agrees on the time. It returns {allowed, remaining, reset_us,
// retry_after_us, repaired}. ARGV: interval_us, burst, n, force ("1" for
// Adjust). A key that holds another type, or a string that is not a
// number, is read as a fresh key and replaced (repaired = 1): a fresh key
// always allows, so the script then writes or deletes it.
// It is retryable so that a connection Redis dropped (a restart) costs one
// retry rather than a fallback; a retry can at worst charge twice, which
// errs on the side of limiting.
var gcraScript = rueidis.NewLuaScriptRetryable(`
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local interval = tonumber(ARGV[1])
local burst = tonumber(ARGV[2])
local n = tonumber(ARGV[3])
local force = ARGV[4] == '1'
local tolerance = interval * burst
local repaired = 0
local raw = redis.pcall('GET', KEYS[1])
if type(raw) == 'table' and raw.err then
  redis.call('DEL', KEYS[1])
  raw = false
  repaired = 1
end
local tat = nil
if raw then
  tat = tonumber(raw)
  if not tat then repaired = 1 end
end
if not tat then tat = now end
if tat < now then tat = now end
local need = n
if need > burst then need = burst end
local newTat = tat + n * interval
if newTat < now then newTat = now end
local allowed = 1
local retry = 0
local allowAt = tat + need * interval - tolerance
if (not force) and allowAt > now then
  allowed = 0
  retry = allowAt - now
  newTat = tat
else
  local ttl = math.ceil((newTat - now) / 1000)
  if ttl > 0 then
    redis.call('SET', KEYS[1], string.format('%.0f', newTat), 'PX', ttl)
  else
    redis.call('DEL', KEYS[1])
  end
end
local remaining = math.floor((now + tolerance - newTat) / interval)
if remaining < 0 then remaining = 0 end
return {allowed, remaining, math.ceil(newTat - now), math.ceil(retry), repaired}
`)

// RedisLimiter is a Limiter shared by every gateway instance on one Redis.
// When Redis fails or is slow it answers from its fallback (a local
// limiter), so limits hold per instance: never unlimited, never refusing
// everyone. It returns to Redis by itself once Redis answers again.
type RedisLimiter struct {
	client   rueidis.Client
	fallback Limiter
	redisGate
}

// NewRedisLimiter returns a limiter on client that falls back to fallback.
func NewRedisLimiter(client rueidis.Client, fallback Limiter, o RedisOptions) *RedisLimiter {
	return &RedisLimiter{client: client, fallback: fallback, redisGate: redisGate{opts: o.withDefaults("llm-edge:rl:")}}
}

// Allow implements Limiter.
func (r *RedisLimiter) Allow(ctx context.Context, key string, l Limit, n int) (Decision, error) {
	if l.Unlimited() {
		return unlimited(), nil
	}
	if r.up() {
		d, err := r.exec(ctx, key, l, n, false)
		if err == nil {
			return d, nil
		}
		if err := r.failed(ctx, err); err != nil {
			return Decision{}, err
		}
	}
	return r.fallback.Allow(ctx, key, l, n)
}

// Adjust implements Limiter.
func (r *RedisLimiter) Adjust(ctx context.Context, key string, l Limit, n int) error {
	if l.Unlimited() || n == 0 {
		return nil
	}
	if r.up() {
		_, err := r.exec(ctx, key, l, n, true)
		if err == nil {
			return nil
		}
		if err := r.failed(ctx, err); err != nil {
			return err
		}
	}
	return r.fallback.Adjust(ctx, key, l, n)
}

func (r *RedisLimiter) exec(ctx context.Context, key string, l Limit, n int, force bool) (Decision, error) {
	ctx, cancel := context.WithTimeout(ctx, r.opts.Timeout)
	defer cancel()
	intervalUS := float64(l.interval()) / float64(time.Microsecond)
	forceArg := "0"
	if force {
		forceArg = "1"
	}
	vals, err := gcraScript.Exec(ctx, r.client, []string{r.opts.Prefix + key}, []string{
		strconv.FormatFloat(intervalUS, 'f', -1, 64), strconv.FormatInt(l.burst(), 10), strconv.Itoa(n), forceArg,
	}).AsIntSlice()
	if err != nil {
		return Decision{}, fmt.Errorf("redis rate limit script: %w", err)
	}
	if len(vals) != 5 {
		return Decision{}, errors.New("redis rate limit script: unexpected reply")
	}
	if vals[4] == 1 {
		r.repaired()
	}
	return Decision{
		Allowed:    vals[0] == 1,
		Limit:      int(l.burst()),
		Remaining:  int(vals[1]),
		Reset:      time.Duration(vals[2]) * time.Microsecond,
		RetryAfter: time.Duration(vals[3]) * time.Microsecond,
	}, nil
}
