package route

import (
	"context"
	"net"
	"net/http"
	"os"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"testing/synctest"
	"time"

	"github.com/edge-agent/edge-agent/internal/api"
	"github.com/edge-agent/edge-agent/internal/provider"
)

// twoDeployments is a priority group: "primary" (a) first, "standby" (b).
func twoDeployments(t *testing.T, a, b *fake, cfg Config) (*Router, Target) {
	t.Helper()
	cfg.Providers = map[string]provider.Provider{a.name: a, b.name: b}
	cfg.Groups = []ModelGroup{{Name: "m", Strategy: StrategyPriority, Deployments: []Deployment{
		{Name: "primary", Provider: a, Model: "x", Priority: 1},
		{Name: "standby", Provider: b, Model: "x", Priority: 2}}}}
	r := mustRouter(t, cfg)
	return r, mustResolve(t, r, "m")
}

func TestBreakerOpensMovesTrafficAwayAndClosesAfterAProbe(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var healed atomic.Bool
		a := newFake("a", func(_ context.Context, req *provider.Request, _ int64) (*provider.Response, error) {
			if !healed.Load() {
				return nil, upstreamErr(500, nil)
			}
			return answerOK(req), nil
		})
		b := newFake("b", nil)
		var changes []string
		r, tg := twoDeployments(t, a, b, Config{OnBreakerChange: func(d string, s State) { changes = append(changes, d+":"+s.String()) }})
		ask := func() string {
			t.Helper()
			resp, err := r.ChatCompletion(t.Context(), tg, chatReq("m", false), nil)
			if err != nil {
				t.Fatalf("ChatCompletion: %v", err)
			}
			return resp.Provider
		}
		for i := range 5 {
			if p := ask(); p != "standby" {
				t.Fatalf("request %d answered by %q, want standby", i, p)
			}
		}
		if a.calls.Load() != 5 || r.Health()[0].State != StateOpen {
			t.Fatalf("primary called %d times, state %v; want 5 and open", a.calls.Load(), r.Health()[0].State)
		}
		for range 20 {
			ask()
		}
		if a.calls.Load() != 5 {
			t.Fatalf("primary called %d times while open, want no more", a.calls.Load())
		}
		time.Sleep(DefaultOpenFor)
		if s := r.Health()[0].State; s != StateHalfOpen {
			t.Fatalf("state after OpenFor = %v, want half-open", s)
		}
		healed.Store(true)
		if p := ask(); p != "primary" {
			t.Fatalf("probe answered by %q, want primary", p)
		}
		if p := ask(); p != "primary" || r.Health()[0].State != StateClosed {
			t.Fatalf("after the probe: %q, state %v; want primary and closed", p, r.Health()[0].State)
		}
		if got := strings.Join(changes, " "); got != "primary:open primary:half-open primary:closed" {
			t.Fatalf("breaker changes %q", got)
		}
	})
}

func TestFailedProbeReopensTheBreaker(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		a, b := newFake("a", failWith(502)), newFake("b", nil)
		r, tg := twoDeployments(t, a, b, Config{Breaker: BreakerConfig{ConsecutiveFailures: 2, OpenFor: 10 * time.Second}})
		for range 2 {
			if _, err := r.ChatCompletion(t.Context(), tg, chatReq("m", false), nil); err != nil {
				t.Fatal(err)
			}
		}
		time.Sleep(10 * time.Second)
		if _, err := r.ChatCompletion(t.Context(), tg, chatReq("m", false), nil); err != nil {
			t.Fatal(err)
		}
		if a.calls.Load() != 3 || r.Health()[0].State != StateOpen {
			t.Fatalf("primary called %d times, state %v; want one probe and open again", a.calls.Load(), r.Health()[0].State)
		}
		time.Sleep(5 * time.Second)
		if r.Health()[0].State != StateOpen {
			t.Fatalf("state %v half-way through the new OpenFor, want open", r.Health()[0].State)
		}
	})
}

func TestAllBreakersOpenAnswers503WithRetryAfter(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		f := newFake("openai", failWith(500))
		r, tg := oneProvider(t, f, Config{Breaker: BreakerConfig{OpenFor: 20 * time.Second}})
		for range 2 {
			_, _ = r.ChatCompletion(t.Context(), tg, chatReq("gpt-4o", false), nil)
		}
		calls := f.calls.Load()
		time.Sleep(5 * time.Second)
		_, err := r.ChatCompletion(t.Context(), tg, chatReq("gpt-4o", false), nil)
		e := apiErr(t, err)
		if e.Status != 503 || e.Code != "no_healthy_deployment" || f.calls.Load() != calls {
			t.Fatalf("got %v after %d more calls, want 503 no_healthy_deployment without calling", e, f.calls.Load()-calls)
		}
		if e.RetryAfter < 14*time.Second || e.RetryAfter > 16*time.Second {
			t.Fatalf("Retry-After %v, want about the 15s left until half-open", e.RetryAfter)
		}
	})
}

func TestBreakerOpensOnFailureRateWithoutConsecutiveFailures(t *testing.T) {
	cfg := BreakerConfig{ConsecutiveFailures: 5, FailureRate: 0.5, Window: 10 * time.Second, MinRequests: 20,
		OpenFor: time.Second, HalfOpenProbes: 1}
	b := newBreaker(&cfg)
	now := time.Unix(1000, 0)
	opened := -1
	for i := range 40 {
		o := outcomeSuccess
		if i%2 == 1 {
			o = outcomeFailure
		}
		now = now.Add(100 * time.Millisecond)
		if b.record(now, o, false) && opened < 0 {
			opened = i
		}
	}
	if opened != 19 {
		t.Fatalf("opened at call %d, want 19: the 20th call with half of them failed", opened)
	}
}

func TestBreakerForgetsFailuresOutsideTheWindow(t *testing.T) {
	cfg := BreakerConfig{ConsecutiveFailures: -1, FailureRate: 0.5, Window: 10 * time.Second, MinRequests: 4,
		OpenFor: time.Second, HalfOpenProbes: 1}
	b := newBreaker(&cfg)
	now := time.Unix(1000, 0)
	for range 3 {
		b.record(now, outcomeFailure, false)
	}
	now = now.Add(11 * time.Second)
	if b.record(now, outcomeSuccess, false) || b.state != StateClosed {
		t.Fatalf("breaker %v after old failures left the window, want closed", b.state)
	}
}

func TestRateLimitsDoNotOpenTheBreaker(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		f := newFake("openai", failWith(429))
		r, tg := oneProvider(t, f, Config{Breaker: BreakerConfig{ConsecutiveFailures: 2}})
		for range 5 {
			_, _ = r.ChatCompletion(t.Context(), tg, chatReq("gpt-4o", false), nil)
		}
		if s := r.Health()[0].State; s != StateClosed {
			t.Fatalf("state %v after only 429s, want closed", s)
		}
	})
}

// TestTheGatewaysOwnDescriptorLimitDoesNotOpenTheBreaker: a dial that
// fails for want of a file descriptor is the gateway's limit, not the
// deployment's failure: a 503 with Retry-After, not retried, and the
// breaker stays closed (at 10000 streams on a 20000-descriptor machine it
// opened and turned the rest of the run into 503s).
func TestTheGatewaysOwnDescriptorLimitDoesNotOpenTheBreaker(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		emfile := &net.OpError{Op: "dial", Net: "tcp", Err: os.NewSyscallError("socket", syscall.EMFILE)}
		f := newFake("openai", func(ctx context.Context, _ *provider.Request, _ int64) (*provider.Response, error) {
			return nil, provider.TransportError(ctx, "openai", emfile)
		})
		r, tg := oneProvider(t, f, Config{Breaker: BreakerConfig{ConsecutiveFailures: 2}})
		for range 5 {
			_, err := r.ChatCompletion(t.Context(), tg, chatReq("gpt-4o", false), nil)
			e := api.FromError(err)
			if e.Status != http.StatusServiceUnavailable || e.Code != provider.CodeOutOfDescriptors || e.RetryAfter <= 0 {
				t.Fatalf("got %d %s (Retry-After %v), want 503 %s with Retry-After", e.Status, e.Code, e.RetryAfter, provider.CodeOutOfDescriptors)
			}
		}
		if n := f.calls.Load(); n != 5 {
			t.Errorf("%d upstream calls for 5 requests: the limit was retried", n)
		}
		if s := r.Health()[0].State; s != StateClosed {
			t.Fatalf("state %v after the gateway ran out of descriptors, want closed", s)
		}
	})
}

func TestHealthReportsEveryDeployment(t *testing.T) {
	a, b := newFake("a", nil), newFake("b", nil)
	r, _ := twoDeployments(t, a, b, Config{})
	h := r.Health()
	var names []string
	for _, d := range h {
		names = append(names, d.Name+"@"+d.Provider+"="+d.State.String())
	}
	if got := strings.Join(names, " "); got != "primary@a=closed standby@b=closed a@a=closed b@b=closed" {
		t.Fatalf("Health() = %s", got)
	}
}
