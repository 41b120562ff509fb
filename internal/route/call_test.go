package route

import (
	"context"
	"net/http"
	"strings"
	"testing"
	"testing/synctest"
	"time"

	"github.com/tidwall/gjson"

	"github.com/edge-agent/edge-agent/internal/provider"
)

// oneProvider is a router with a single provider named "openai".
func oneProvider(t testing.TB, f *fake, cfg Config) (*Router, Target) {
	t.Helper()
	cfg.Providers = map[string]provider.Provider{"openai": f}
	r := mustRouter(t, cfg)
	return r, mustResolve(t, r, "gpt-4o")
}

func TestRetryAfterServerErrorThenSucceeds(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		f := newFake("openai", failFirst(2, 500))
		var retries []string
		r, tg := oneProvider(t, f, Config{OnRetry: func(m, d string) { retries = append(retries, m+"@"+d) }})
		resp, err := r.ChatCompletion(t.Context(), tg, chatReq("gpt-4o", false), nil)
		if err != nil {
			t.Fatalf("ChatCompletion: %v", err)
		}
		if strings.Join(retries, " ") != "openai/gpt-4o@openai openai/gpt-4o@openai" {
			t.Fatalf("OnRetry saw %v, want two retries of openai/gpt-4o on openai", retries)
		}
		if resp.Attempts != 3 || f.calls.Load() != 3 {
			t.Fatalf("attempts %d, calls %d; want 3 and 3", resp.Attempts, f.calls.Load())
		}
		if resp.Provider != "openai" {
			t.Fatalf("Provider = %q, want the deployment name openai", resp.Provider)
		}
	})
}

func TestRetriesGiveUpWithTheLastUpstreamError(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		f := newFake("openai", failWith(503))
		r, tg := oneProvider(t, f, Config{Retry: RetryConfig{MaxRetries: 1}})
		_, err := r.ChatCompletion(t.Context(), tg, chatReq("gpt-4o", false), nil)
		e := apiErr(t, err)
		if e.Status != http.StatusBadGateway || e.UpstreamStatus != 503 || f.calls.Load() != 2 {
			t.Fatalf("error %d (upstream %d) after %d calls; want 502 from upstream 503 after 2", e.Status, e.UpstreamStatus, f.calls.Load())
		}
	})
}

func TestRetryAfterHeaderIsHonoured(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var at []time.Time
		f := newFake("openai", func(_ context.Context, req *provider.Request, n int64) (*provider.Response, error) {
			at = append(at, time.Now())
			if n == 1 {
				return nil, upstreamErr(429, http.Header{"Retry-After": {"3"}})
			}
			return answerOK(req), nil
		})
		r, tg := oneProvider(t, f, Config{})
		resp, err := r.ChatCompletion(t.Context(), tg, chatReq("gpt-4o", false), nil)
		if err != nil {
			t.Fatalf("ChatCompletion: %v", err)
		}
		if got := at[1].Sub(at[0]); got != 3*time.Second || resp.Attempts != 2 {
			t.Fatalf("retry came after %v (attempts %d), want 3s as Retry-After asked", got, resp.Attempts)
		}
	})
}

func TestRetryAfterLongerThanTheCapIsNotWaitedFor(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		f := newFake("openai", func(context.Context, *provider.Request, int64) (*provider.Response, error) {
			return nil, upstreamErr(429, http.Header{"Retry-After": {"120"}})
		})
		r, tg := oneProvider(t, f, Config{})
		start := time.Now()
		_, err := r.ChatCompletion(t.Context(), tg, chatReq("gpt-4o", false), nil)
		e := apiErr(t, err)
		if e.Status != 429 || e.RetryAfter != 120*time.Second || f.calls.Load() != 1 || time.Since(start) != 0 {
			t.Fatalf("got %d retry-after %v after %d calls and %v; want the 429 with its Retry-After at once",
				e.Status, e.RetryAfter, f.calls.Load(), time.Since(start))
		}
	})
}

func TestOnlyTransientErrorsAreRetried(t *testing.T) {
	cases := []struct {
		status int
		calls  int64
	}{
		{400, 1}, {401, 1}, {403, 1}, {404, 1}, {422, 1},
		{408, 3}, {429, 3}, {500, 3}, {502, 3}, {503, 3}, {504, 3},
	}
	for _, c := range cases {
		t.Run(http.StatusText(c.status), func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				f := newFake("openai", failWith(c.status))
				r, tg := oneProvider(t, f, Config{})
				_, err := r.ChatCompletion(t.Context(), tg, chatReq("gpt-4o", false), nil)
				if e := apiErr(t, err); e.UpstreamStatus != c.status {
					t.Fatalf("error %v, want the upstream %d", e, c.status)
				}
				if f.calls.Load() != c.calls {
					t.Fatalf("status %d: %d calls, want %d", c.status, f.calls.Load(), c.calls)
				}
			})
		})
	}
}

func TestRequestIsRewrittenPerDeploymentWithoutTouchingTheOriginal(t *testing.T) {
	a := newFake("azure", failWith(500))
	b := newFake("mirror", nil)
	r := mustRouter(t, Config{
		Providers: map[string]provider.Provider{"azure": a, "mirror": b},
		Groups: []ModelGroup{{Name: "gpt-4o", Strategy: StrategyPriority, Deployments: []Deployment{
			{Name: "azure-east", Provider: a, Model: "gpt-4o-2024-08-06", Priority: 1},
			{Name: "mirror", Provider: b, Model: "gpt-4o", Priority: 2},
		}}},
		Retry: RetryConfig{BaseBackoff: time.Microsecond},
	})
	req := chatReq("gpt-4o", false)
	req.Body = []byte(`{"model":"gpt-4o","fallbacks":["claude-3"],"messages":[{"role":"user","content":"hi"}],"x_unknown":{"keep":1}}`)
	orig := string(req.Body)
	resp, err := r.ChatCompletion(t.Context(), mustResolve(t, r, "gpt-4o"), req, nil)
	if err != nil {
		t.Fatalf("ChatCompletion: %v", err)
	}
	if string(req.Body) != orig {
		t.Fatalf("request body changed to %s", req.Body)
	}
	if resp.Provider != "mirror" || resp.Attempts != 2 {
		t.Fatalf("answered by %q after %d attempts, want mirror after 2", resp.Provider, resp.Attempts)
	}
	for name, f := range map[string]*fake{"gpt-4o-2024-08-06": a, "gpt-4o": b} {
		body := f.lastBody()
		if gjson.Get(body, "model").String() != name || gjson.Get(body, "fallbacks").Exists() ||
			gjson.Get(body, "x_unknown.keep").Int() != 1 {
			t.Errorf("%s got body %s; want model %q, no fallbacks, unknown fields kept", f.name, body, name)
		}
	}
}

func TestFallbackModelOnAnotherProviderAnswers(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		oa := newFake("openai", failWith(500))
		an := newFake("anthropic", nil)
		an.typ = "anthropic"
		var fellBack []string
		r := mustRouter(t, Config{
			Providers: map[string]provider.Provider{"openai": oa, "anthropic": an},
			Groups: []ModelGroup{{Name: "gpt-4o", Fallbacks: []string{"claude-3-5-sonnet-20241022"},
				Deployments: []Deployment{{Name: "oa", Provider: oa, Model: "gpt-4o"}}}},
			OnFallback: func(from, to string) { fellBack = append(fellBack, from+"->"+to) },
		})
		resp, err := r.ChatCompletion(t.Context(), mustResolve(t, r, "gpt-4o"), chatReq("gpt-4o", false), nil)
		if err != nil {
			t.Fatalf("ChatCompletion: %v", err)
		}
		if resp.Provider != "anthropic" || resp.Attempts != 4 {
			t.Fatalf("answered by %q after %d attempts, want anthropic after 3+1", resp.Provider, resp.Attempts)
		}
		if m := gjson.Get(an.lastBody(), "model").String(); m != "claude-3-5-sonnet-20241022" {
			t.Fatalf("anthropic got model %q", m)
		}
		if len(fellBack) != 1 || fellBack[0] != "gpt-4o->anthropic/claude-3-5-sonnet-20241022" {
			t.Fatalf("OnFallback saw %v", fellBack)
		}
	})
}

func TestRequestFallbacksAreTriedAfterConfiguredOnes(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		oa := newFake("openai", failWith(500))
		local := newFake("local", nil)
		r := mustRouter(t, Config{Providers: map[string]provider.Provider{"openai": oa, "local": local},
			Retry: RetryConfig{MaxRetries: -1}})
		resp, err := r.ChatCompletion(t.Context(), mustResolve(t, r, "gpt-4o"), chatReq("gpt-4o", false),
			[]string{"no-such-model", "gpt-4o", "local/llama3"})
		if err != nil {
			t.Fatalf("ChatCompletion: %v", err)
		}
		if resp.Provider != "local" || oa.calls.Load() != 1 || resp.Attempts != 2 {
			t.Fatalf("answered by %q, openai called %d times, %d attempts; want local, 1, 2", resp.Provider, oa.calls.Load(), resp.Attempts)
		}
	})
}

func TestClientErrorDoesNotFallBack(t *testing.T) {
	oa := newFake("openai", failWith(400))
	local := newFake("local", nil)
	r := mustRouter(t, Config{Providers: map[string]provider.Provider{"openai": oa, "local": local}})
	_, err := r.ChatCompletion(t.Context(), mustResolve(t, r, "gpt-4o"), chatReq("gpt-4o", false), []string{"local/llama3"})
	if e := apiErr(t, err); e.Status != 400 || local.calls.Load() != 0 {
		t.Fatalf("got %d with %d fallback calls, want the 400 and none", e.Status, local.calls.Load())
	}
}

func TestTimeoutOfAnAttemptIsRetried(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		f := newFake("openai", func(ctx context.Context, req *provider.Request, n int64) (*provider.Response, error) {
			if n == 1 {
				<-ctx.Done()
				return nil, provider.TransportError(ctx, "openai", ctx.Err())
			}
			return answerOK(req), nil
		})
		r, tg := oneProvider(t, f, Config{Timeouts: TimeoutConfig{FirstByte: 5 * time.Second}})
		start := time.Now()
		resp, err := r.ChatCompletion(t.Context(), tg, chatReq("gpt-4o", false), nil)
		if err != nil {
			t.Fatalf("ChatCompletion: %v", err)
		}
		if el := time.Since(start); el < 5*time.Second || el > 5*time.Second+DefaultBaseBackoff || resp.Attempts != 2 {
			t.Fatalf("answered after %v and %d attempts, want just over the 5s first-byte timeout and 2", el, resp.Attempts)
		}
	})
}

func TestTotalTimeoutBoundsRetries(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		f := newFake("openai", func(ctx context.Context, req *provider.Request, n int64) (*provider.Response, error) {
			<-ctx.Done()
			return nil, provider.TransportError(ctx, "openai", ctx.Err())
		})
		r, tg := oneProvider(t, f, Config{Retry: RetryConfig{MaxRetries: 10},
			Timeouts: TimeoutConfig{FirstByte: 4 * time.Second, Total: 10 * time.Second}})
		start := time.Now()
		_, err := r.ChatCompletion(t.Context(), tg, chatReq("gpt-4o", false), nil)
		if e := apiErr(t, err); e.Status != http.StatusGatewayTimeout {
			t.Fatalf("error %v, want 504", e)
		}
		if el := time.Since(start); el > 10*time.Second {
			t.Fatalf("gave up after %v, want at most the 10s total", el)
		}
	})
}

func TestClientCancellationStopsBackoff(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		f := newFake("openai", func(context.Context, *provider.Request, int64) (*provider.Response, error) {
			return nil, upstreamErr(429, http.Header{"Retry-After": {"8"}})
		})
		r, tg := oneProvider(t, f, Config{})
		ctx, cancel := context.WithCancel(t.Context())
		time.AfterFunc(time.Second, cancel)
		start := time.Now()
		_, err := r.ChatCompletion(ctx, tg, chatReq("gpt-4o", false), nil)
		if e := apiErr(t, err); e.Status != 499 || time.Since(start) != time.Second {
			t.Fatalf("got %d after %v, want 499 when the client left after 1s", e.Status, time.Since(start))
		}
	})
}

func TestSaturatedDeploymentAnswers503AfterQueueWait(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		release := make(chan struct{})
		f := newFake("openai", func(_ context.Context, req *provider.Request, n int64) (*provider.Response, error) {
			if n == 1 {
				<-release
			}
			return answerOK(req), nil
		})
		cfg := Config{QueueWait: 250 * time.Millisecond,
			Providers: map[string]provider.Provider{"openai": f},
			Groups:    []ModelGroup{{Name: "m", Deployments: []Deployment{{Name: "d", Provider: f, Model: "gpt-4o", MaxInflight: 1}}}}}
		r := mustRouter(t, cfg)
		tg := mustResolve(t, r, "m")
		defer close(release)
		done := make(chan error, 1)
		go func() {
			_, err := r.ChatCompletion(context.Background(), tg, chatReq("m", false), nil)
			done <- err
		}()
		synctest.Wait()
		start := time.Now()
		_, err := r.ChatCompletion(t.Context(), tg, chatReq("m", false), nil)
		e := apiErr(t, err)
		if e.Status != 503 || e.RetryAfter <= 0 || time.Since(start) != 250*time.Millisecond {
			t.Fatalf("got %d retry-after %v after %v; want 503 with Retry-After after the 250ms queue wait",
				e.Status, e.RetryAfter, time.Since(start))
		}
		if h := r.Health()[0]; h.Inflight != 1 {
			t.Fatalf("Health inflight = %d, want 1", h.Inflight)
		}
		if g, d := r.Rejected(); g != 0 || d != 1 {
			t.Fatalf("Rejected() = %d, %d; want 0 at the router's cap, 1 at the deployment's", g, d)
		}
		release <- struct{}{}
		if err := <-done; err != nil {
			t.Fatalf("first request: %v", err)
		}
		if _, err := r.ChatCompletion(t.Context(), tg, chatReq("m", false), nil); err != nil {
			t.Fatalf("after the slot was freed: %v", err)
		}
	})
}

func TestQueuedRequestTakesASlotFreedWithinQueueWait(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		f := newFake("openai", func(_ context.Context, req *provider.Request, n int64) (*provider.Response, error) {
			if n == 1 {
				time.Sleep(50 * time.Millisecond)
			}
			return answerOK(req), nil
		})
		r, tg := oneProvider(t, f, Config{MaxInflight: 1})
		done := make(chan error)
		go func() {
			_, err := r.ChatCompletion(context.Background(), tg, chatReq("gpt-4o", false), nil)
			done <- err
		}()
		synctest.Wait()
		if _, err := r.ChatCompletion(t.Context(), tg, chatReq("gpt-4o", false), nil); err != nil {
			t.Fatalf("queued request: %v", err)
		}
		if err := <-done; err != nil {
			t.Fatalf("first request: %v", err)
		}
	})
}

func TestGlobalLimitAnswers503WhenFull(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		release := make(chan struct{})
		f := newFake("openai", func(_ context.Context, req *provider.Request, n int64) (*provider.Response, error) {
			<-release
			return answerOK(req), nil
		})
		r, tg := oneProvider(t, f, Config{MaxInflight: 2})
		done := make(chan error, 2)
		for range 2 {
			go func() {
				_, err := r.ChatCompletion(context.Background(), tg, chatReq("gpt-4o", false), nil)
				done <- err
			}()
		}
		synctest.Wait()
		_, err := r.ChatCompletion(t.Context(), tg, chatReq("gpt-4o", false), nil)
		if e := apiErr(t, err); e.Status != 503 || e.Code != "server_overloaded" || e.RetryAfter <= 0 {
			t.Fatalf("got %v, want 503 server_overloaded with Retry-After", e)
		} else if !strings.Contains(e.Message, "limit of 2 concurrent requests") || !strings.Contains(e.Message, "MAX_INFLIGHT") {
			t.Fatalf("message %q does not name the limit and its setting", e.Message)
		}
		if g, d := r.Rejected(); g != 1 || d != 0 {
			t.Fatalf("Rejected() = %d, %d; want 1 at the router's cap, 0 at a deployment's", g, d)
		}
		close(release)
		for range 2 {
			if err := <-done; err != nil {
				t.Fatal(err)
			}
		}
	})
}

func TestRPMCapSkipsADeploymentLikeAnOpenBreaker(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		a, b := newFake("a", nil), newFake("b", nil)
		r := mustRouter(t, Config{Providers: map[string]provider.Provider{"a": a, "b": b},
			Groups: []ModelGroup{{Name: "m", Strategy: StrategyPriority, Deployments: []Deployment{
				{Name: "capped", Provider: a, Model: "x", RPM: 2, Priority: 1},
				{Name: "spare", Provider: b, Model: "x", Priority: 2}}}}})
		tg := mustResolve(t, r, "m")
		var by []string
		for range 4 {
			resp, err := r.ChatCompletion(t.Context(), tg, chatReq("m", false), nil)
			if err != nil {
				t.Fatal(err)
			}
			by = append(by, resp.Provider)
		}
		if strings.Join(by, ",") != "capped,capped,spare,spare" {
			t.Fatalf("answered by %v, want the capped deployment twice then the spare", by)
		}
		time.Sleep(30 * time.Second) // one token back
		if resp, _ := r.ChatCompletion(t.Context(), tg, chatReq("m", false), nil); resp == nil || resp.Provider != "capped" {
			t.Fatalf("after the cap refilled: %+v, want capped", resp)
		}
	})
}

func TestClosedRouterRefusesCalls(t *testing.T) {
	r, tg := oneProvider(t, newFake("openai", nil), Config{})
	r.Close()
	r.Close()
	_, err := r.ChatCompletion(t.Context(), tg, chatReq("gpt-4o", false), nil)
	if e := apiErr(t, err); e.Status != 503 {
		t.Fatalf("got %v, want 503", e)
	}
}

func TestRefusedCredentialMovesOnButNeverBackToThatDeployment(t *testing.T) {
	for _, status := range []int{http.StatusUnauthorized, http.StatusForbidden} {
		t.Run(http.StatusText(status), func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				bad := newFake("bad", failWith(status))
				good := newFake("good", failWith(500))
				r := mustRouter(t, Config{
					Providers: map[string]provider.Provider{"bad": bad, "good": good},
					Groups: []ModelGroup{{Name: "gpt-4o", Strategy: StrategyPriority, Deployments: []Deployment{
						{Name: "bad", Provider: bad, Model: "gpt-4o", Priority: 1},
						{Name: "good", Provider: good, Model: "gpt-4o", Priority: 2},
					}}},
					Retry: RetryConfig{MaxRetries: 3, BaseBackoff: time.Millisecond},
				})
				_, err := r.ChatCompletion(t.Context(), mustResolve(t, r, "gpt-4o"), chatReq("gpt-4o", false), nil)
				apiErr(t, err)
				// The refusing deployment is asked once; the retries go to
				// the other one, whose 5xx is worth retrying.
				if bad.calls.Load() != 1 || good.calls.Load() != 3 {
					t.Fatalf("bad called %d times, good %d; want 1 and 3", bad.calls.Load(), good.calls.Load())
				}
			})
		})
	}
}

// nativeFake speaks the Messages API natively, as the Anthropic adapter does.
type nativeFake struct{ *fake }

func (nativeFake) Speaks(s provider.Surface) bool { return s == provider.SurfaceMessages }

func TestPassedThroughRequestNeverFallsBackToADeploymentThatCannotReadIt(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		native := nativeFake{newFake("native", failWith(500))}
		chatOnly := newFake("chat-only", nil)
		r := mustRouter(t, Config{
			Providers: map[string]provider.Provider{"native": native, "chat-only": chatOnly},
			Groups: []ModelGroup{{Name: "claude-x", Strategy: StrategyPriority, Deployments: []Deployment{
				{Name: "native", Provider: native, Model: "claude-x", Priority: 1},
				{Name: "chat-only", Provider: chatOnly, Model: "gpt-4o", Priority: 2},
			}}},
			Retry: RetryConfig{MaxRetries: 2, BaseBackoff: time.Millisecond},
		})
		req := chatReq("claude-x", false)
		req.Surface = provider.SurfaceMessages
		_, err := r.ChatCompletion(t.Context(), mustResolve(t, r, "claude-x"), req, nil)
		apiErr(t, err)
		// The Messages body would reach an OpenAI-compatible server as is.
		if n := chatOnly.calls.Load(); n != 0 {
			t.Fatalf("the chat-only deployment got %d passed-through Messages requests", n)
		}
		if native.calls.Load() == 0 {
			t.Fatal("the native deployment was never tried")
		}
	})
}
