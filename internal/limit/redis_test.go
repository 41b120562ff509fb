package limit

import (
	"context"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/rueidis"

	"github.com/edge-agent/edge-agent/internal/testutil/redistest"
)

func redisClient(t *testing.T, srv *redistest.Server) rueidis.Client {
	t.Helper()
	c, err := rueidis.NewClient(rueidis.ClientOption{InitAddress: []string{srv.Addr}, DisableCache: true})
	if err != nil {
		t.Fatalf("redis client: %v", err)
	}
	t.Cleanup(c.Close)
	return c
}

// alternate spends n single requests from key, alternating between the
// limiters as two gateway instances would, and counts refusals.
func alternate(t *testing.T, lims []Limiter, key string, l Limit, n int) (denied int) {
	t.Helper()
	for i := range n {
		d, err := lims[i%len(lims)].Allow(t.Context(), key, l, 1)
		if err != nil {
			t.Fatalf("Allow: %v", err)
		}
		if !d.Allowed {
			denied++
			if d.RetryAfter <= 0 {
				t.Fatalf("denied without RetryAfter: %+v", d)
			}
		}
	}
	return denied
}

func TestRedisLimiterSharesOneLimitAcrossInstancesAndFallsBackWhenRedisIsDown(t *testing.T) {
	srv := redistest.Start(t)
	var fallbacks atomic.Int64
	opts := RedisOptions{Backoff: 200 * time.Millisecond, OnFallback: func(err error) { fallbacks.Add(1); t.Logf("fallback %v: %v", time.Now().Format("05.000"), err) }}
	one := NewRedisLimiter(redisClient(t, srv), NewLocalLimiter(nil), opts)
	two := NewRedisLimiter(redisClient(t, srv), NewLocalLimiter(nil), opts)
	both := []Limiter{one, two}
	l := Limit{Rate: 100, Burst: 100}

	// Refill is 1 per 600ms, so a test machine that takes a while still
	// lands within a couple of requests of 50.
	if denied := alternate(t, both, "shared", l, 150); denied < 47 || denied > 50 {
		t.Fatalf("two instances on one Redis denied %d of 150, want about 50", denied)
	}
	if fallbacks.Load() != 0 {
		t.Fatalf("fell back %d times with Redis up", fallbacks.Load())
	}

	srv.Stop()
	// Each instance now limits on its own: still limits, still allows.
	if denied := alternate(t, []Limiter{one}, "outage", l, 150); denied < 47 || denied > 50 {
		t.Fatalf("with Redis down one instance denied %d of 150, want about 50 (local limit)", denied)
	}
	if fallbacks.Load() == 0 || !one.Degraded() {
		t.Fatalf("Redis down but no fallback was reported (fallbacks %d, degraded %v)", fallbacks.Load(), one.Degraded())
	}
	if err := one.Adjust(t.Context(), "outage", l, -10); err != nil {
		t.Fatalf("Adjust with Redis down: %v", err)
	}

	srv.Restart()
	time.Sleep(opts.Backoff + 50*time.Millisecond)
	if denied := alternate(t, both, "after", l, 150); denied < 47 || denied > 50 {
		t.Fatalf("after Redis came back two instances denied %d of 150, want about 50 (shared again)", denied)
	}
	if one.Degraded() || two.Degraded() {
		t.Fatal("still degraded after Redis came back")
	}
}

func TestRedisLimiterAnswersFromFallbackWhenRedisIsSlow(t *testing.T) {
	srv := redistest.Start(t)
	c := redisClient(t, srv)
	lim := NewRedisLimiter(c, NewLocalLimiter(nil), RedisOptions{Timeout: 30 * time.Millisecond})
	l := Limit{Rate: 100}
	if _, err := lim.Allow(t.Context(), "k", l, 1); err != nil {
		t.Fatal(err)
	}
	pauser := redisClient(t, srv)
	if err := pauser.Do(t.Context(), pauser.B().ClientPause().Timeout(500).All().Build()).Error(); err != nil {
		t.Fatalf("CLIENT PAUSE: %v", err)
	}
	start := time.Now()
	d, err := lim.Allow(t.Context(), "k", l, 1)
	if err != nil || !d.Allowed {
		t.Fatalf("Allow during a Redis stall = %+v, %v; want allowed by the fallback", d, err)
	}
	if took := time.Since(start); took > 250*time.Millisecond {
		t.Fatalf("Allow took %v during a Redis stall, want about the 30ms timeout", took)
	}
	if !lim.Degraded() {
		t.Fatal("a timed-out Redis call did not mark the limiter degraded")
	}
}

func TestRedisLimiterCallerCancellationIsNotARedisFailure(t *testing.T) {
	srv := redistest.Start(t)
	lim := NewRedisLimiter(redisClient(t, srv), NewLocalLimiter(nil), RedisOptions{})
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	if _, err := lim.Allow(ctx, "k", Limit{Rate: 10}, 1); err == nil {
		t.Fatal("Allow with a cancelled context succeeded")
	}
	if lim.Degraded() {
		t.Fatal("a cancelled request marked Redis as down")
	}
}

func TestRedisLimiterAdjustAndLimitsCorrectShareTokens(t *testing.T) {
	srv := redistest.Start(t)
	one := NewLimits(NewRedisLimiter(redisClient(t, srv), NewLocalLimiter(nil), RedisOptions{}), Options{KeyTPM: 1000})
	two := NewLimits(NewRedisLimiter(redisClient(t, srv), NewLocalLimiter(nil), RedisOptions{}), Options{KeyTPM: 1000})
	p := principal("a")
	ctx := t.Context()
	if _, tok, err := one.Check(ctx, p, 500); err != nil || tok.Remaining != 500 {
		t.Fatalf("Check = %+v, %v", tok, err)
	}
	one.Correct(ctx, p, 500, 900)
	if _, tok, _ := two.Check(ctx, p, 0); tok.Remaining < 99 || tok.Remaining > 101 {
		t.Fatalf("other instance sees %d tokens left, want about 100", tok.Remaining)
	}
	two.Correct(ctx, p, 900, 300)
	_, tok, _ := one.Check(ctx, p, 0)
	if tok.Remaining < 699 || tok.Remaining > 701 {
		t.Fatalf("after a refund of 600: %d left, want about 700", tok.Remaining)
	}
	if tok.Reset <= 0 || tok.Reset > 20*time.Second {
		t.Fatalf("reset = %v, want about 18s", tok.Reset)
	}
}
