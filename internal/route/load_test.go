package route

import (
	"context"
	"net/http"
	"os"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"go.uber.org/goleak"

	"github.com/edge-agent/edge-agent/internal/provider"
)

// faulty answers like a misbehaving provider: each call fails with 500 at
// rate5xx and 429 (Retry-After: 1) at rate429, deterministically from rnd.
func faulty(rnd *lockedRand, rate5xx, rate429 *atomic.Value) func(context.Context, *provider.Request, int64) (*provider.Response, error) {
	return func(_ context.Context, req *provider.Request, _ int64) (*provider.Response, error) {
		time.Sleep(20 * time.Millisecond) // upstream latency
		x := rnd.Float64()
		switch r5, r4 := rate5xx.Load().(float64), rate429.Load().(float64); {
		case x < r5:
			return nil, upstreamErr(500, nil)
		case x < r5+r4:
			return nil, upstreamErr(429, http.Header{"Retry-After": {"1"}})
		}
		return answerOK(req), nil
	}
}

func rate(v float64) *atomic.Value {
	var a atomic.Value
	a.Store(v)
	return &a
}

// drive sends n requests from workers concurrent clients, each pausing
// between requests, and returns how many failed and who answered.
func drive(t *testing.T, r *Router, tg Target, n, workers int, pause time.Duration) (failed int, by map[string]int) {
	t.Helper()
	var mu sync.Mutex
	by = map[string]int{}
	var wg sync.WaitGroup
	next := atomic.Int64{}
	for range workers {
		wg.Go(func() {
			for next.Add(1) <= int64(n) {
				resp, err := r.ChatCompletion(context.Background(), tg, chatReq("m", false), nil)
				mu.Lock()
				if err != nil {
					failed++
				} else {
					by[resp.Provider]++
				}
				mu.Unlock()
				time.Sleep(pause)
			}
		})
	}
	wg.Wait()
	return failed, by
}

func TestSingleFlakyDeploymentStaysUnderOnePercentErrors(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		seed := uint64(7)
		if s := os.Getenv("ROUTE_SEED"); s != "" {
			seed, _ = strconv.ParseUint(s, 10, 64)
		}
		f := newFake("openai", faulty(newRand(seed), rate(0.10), rate(0.05)))
		var opened atomic.Int32
		r, tg := oneProvider(t, f, Config{Rand: newRand(seed + 1).Float64,
			OnBreakerChange: func(_ string, s State) {
				if s == StateOpen {
					opened.Add(1)
				}
			}})
		failed, _ := drive(t, r, tg, 2000, 8, 10*time.Millisecond)
		if failed >= 20 {
			t.Fatalf("%d of 2000 requests failed with 10%% 500s and 5%% 429s (breaker opened %d times), want < 1%%", failed, opened.Load())
		}
		t.Logf("%d of 2000 failed, %d upstream calls, breaker opened %d times", failed, f.calls.Load(), opened.Load())
	})
}

func TestBreakerMovesTrafficFromAFailingDeploymentAndBack(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		bad5xx := rate(0.30)
		bad := newFake("bad", faulty(newRand(3), bad5xx, rate(0)))
		good := newFake("good", faulty(newRand(4), rate(0), rate(0)))
		r := mustRouter(t, Config{Rand: newRand(2).Float64,
			Providers: map[string]provider.Provider{"bad": bad, "good": good},
			Groups: []ModelGroup{{Name: "m", Deployments: []Deployment{
				{Name: "bad", Provider: bad, Model: "x"}, {Name: "good", Provider: good, Model: "x"}}}}})
		tg := mustResolve(t, r, "m")
		failed, by := drive(t, r, tg, 2000, 8, 40*time.Millisecond)
		if failed >= 20 {
			t.Fatalf("%d of 2000 requests failed, want < 1%%", failed)
		}
		if by["bad"] > 2000/4 {
			t.Fatalf("answers %v: the failing deployment still served more than a quarter", by)
		}
		t.Logf("30%% failing: answers %v, failed %d", by, failed)

		bad5xx.Store(0.0)
		time.Sleep(DefaultOpenFor)
		failed, by = drive(t, r, tg, 1000, 8, 40*time.Millisecond)
		if failed != 0 || by["bad"] < 400 {
			t.Fatalf("after healing: answers %v, failed %d; want about half on the healed deployment", by, failed)
		}
	})
}

func TestNoGoroutineLeftAfterManyRequestsWithFailures(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		rnd := newRand(11)
		answer := func(ctx context.Context, req *provider.Request, _ int64) (*provider.Response, error) {
			x := rnd.Float64()
			switch {
			case x < 0.10:
				return nil, upstreamErr(500, nil)
			case x < 0.15:
				return nil, upstreamErr(429, nil)
			case x < 0.17:
				return nil, upstreamErr(400, nil)
			case x < 0.19:
				<-ctx.Done() // a stall: the first-byte timeout ends it
				return nil, provider.TransportError(ctx, "x", ctx.Err())
			}
			if !req.Stream {
				return answerOK(req), nil
			}
			s := newFakeStream(ctx, chunks(req.Model, 3)...)
			switch y := rnd.Float64(); {
			case y < 0.05:
				s.stallAt = 0
			case y < 0.10:
				s.stallAt = 2
			case y < 0.15:
				s.failAt, s.failErr = 1, upstreamErr(502, nil)
			}
			return &provider.Response{Stream: s}, nil
		}
		a, b := newFake("a", answer), newFake("b", answer)
		r := mustRouter(t, Config{Rand: newRand(5).Float64, MaxInflight: 64,
			Timeouts:  TimeoutConfig{FirstByte: time.Second, StreamIdle: time.Second},
			Providers: map[string]provider.Provider{"a": a, "b": b},
			Groups: []ModelGroup{{Name: "m", Strategy: StrategyLeastLatency, Fallbacks: []string{"b/y"},
				Deployments: []Deployment{{Name: "da", Provider: a, Model: "x", MaxInflight: 8}, {Name: "db", Provider: b, Model: "x", MaxInflight: 8}}}}})
		tg := mustResolve(t, r, "m")
		var wg sync.WaitGroup
		next := atomic.Int64{}
		for range 32 {
			wg.Go(func() {
				for i := next.Add(1); i <= 10000; i = next.Add(1) {
					resp, err := r.ChatCompletion(context.Background(), tg, chatReq("m", i%2 == 0), nil)
					if err != nil {
						continue
					}
					if resp.Stream != nil {
						if i%6 == 0 {
							_, _ = resp.Stream.Next() // a client that leaves early
						} else {
							_, _ = readAll(resp.Stream)
						}
						resp.Stream.Close()
					}
				}
			})
		}
		wg.Wait()
		for _, h := range r.Health() {
			if h.Inflight != 0 {
				t.Fatalf("deployment %s has %d calls in flight after all requests ended", h.Name, h.Inflight)
			}
		}
		if n := len(r.global); n != 0 {
			t.Fatalf("%d global slots held after all requests ended", n)
		}
	})
	goleak.VerifyNone(t)
}
