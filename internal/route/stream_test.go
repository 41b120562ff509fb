package route

import (
	"context"
	"errors"
	"io"
	"net/http"
	"testing"
	"testing/synctest"
	"time"

	"github.com/edge-agent/edge-agent/internal/provider"
)

func TestStreamFailureBeforeFirstChunkIsRetried(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		f := newFake("openai", func(ctx context.Context, req *provider.Request, n int64) (*provider.Response, error) {
			s := newFakeStream(ctx, chunks(req.Model, 3)...)
			if n == 1 {
				s.failAt, s.failErr = 0, upstreamErr(500, nil)
			}
			return &provider.Response{Stream: s}, nil
		})
		r, tg := oneProvider(t, f, Config{})
		resp, err := r.ChatCompletion(t.Context(), tg, chatReq("gpt-4o", true), nil)
		if err != nil {
			t.Fatalf("ChatCompletion: %v", err)
		}
		defer resp.Stream.Close()
		got, err := readAll(resp.Stream)
		if err != nil || len(got) != 3 || resp.Attempts != 2 {
			t.Fatalf("read %d chunks, err %v, attempts %d; want 3 chunks after 2 attempts", len(got), err, resp.Attempts)
		}
	})
}

func TestStreamFailureAfterFirstChunkIsNotRetried(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var up *fakeStream
		f := newFake("openai", func(ctx context.Context, req *provider.Request, n int64) (*provider.Response, error) {
			up = newFakeStream(ctx, chunks(req.Model, 3)...)
			up.failAt, up.failErr = 1, upstreamErr(500, nil)
			return &provider.Response{Stream: up}, nil
		})
		r, tg := oneProvider(t, f, Config{})
		resp, err := r.ChatCompletion(t.Context(), tg, chatReq("gpt-4o", true), nil)
		if err != nil {
			t.Fatalf("ChatCompletion: %v", err)
		}
		got, err := readAll(resp.Stream)
		if e := apiErr(t, err); len(got) != 1 || e.UpstreamStatus != 500 {
			t.Fatalf("read %d chunks then %v; want 1 chunk then the upstream 500", len(got), err)
		}
		if f.calls.Load() != 1 {
			t.Fatalf("%d upstream calls, want 1: a started stream is never retried", f.calls.Load())
		}
		if up.closed.Load() != 1 || r.Health()[0].Inflight != 0 {
			t.Fatalf("upstream closed %d times, inflight %d; want closed once and the slot free", up.closed.Load(), r.Health()[0].Inflight)
		}
		resp.Stream.Close()
		resp.Stream.Close()
		if up.closed.Load() != 1 {
			t.Fatalf("upstream closed %d times after two Close calls, want once", up.closed.Load())
		}
	})
}

func TestStalledStreamEndsWithIdleTimeout(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var up *fakeStream
		f := newFake("openai", func(ctx context.Context, req *provider.Request, n int64) (*provider.Response, error) {
			up = newFakeStream(ctx, chunks(req.Model, 3)...)
			up.stallAt = 2
			return &provider.Response{Stream: up}, nil
		})
		r, tg := oneProvider(t, f, Config{Timeouts: TimeoutConfig{StreamIdle: 7 * time.Second}})
		resp, err := r.ChatCompletion(t.Context(), tg, chatReq("gpt-4o", true), nil)
		if err != nil {
			t.Fatalf("ChatCompletion: %v", err)
		}
		defer resp.Stream.Close()
		for range 2 {
			if _, err := resp.Stream.Next(); err != nil {
				t.Fatalf("Next: %v", err)
			}
			time.Sleep(20 * time.Second) // the client's own pace does not count as idle
		}
		start := time.Now()
		_, err = resp.Stream.Next()
		e := apiErr(t, err)
		if e.Status != http.StatusGatewayTimeout || e.Code != "stream_idle_timeout" || time.Since(start) != 7*time.Second {
			t.Fatalf("got %v after %v, want 504 stream_idle_timeout after 7s", err, time.Since(start))
		}
		if _, again := resp.Stream.Next(); again != err {
			t.Fatalf("Next after the timeout = %v, want the same error", again)
		}
		if up.closed.Load() != 1 || r.Health()[0].Inflight != 0 {
			t.Fatalf("upstream closed %d times, inflight %d; want closed and released", up.closed.Load(), r.Health()[0].Inflight)
		}
	})
}

// The idle timer is not reset per chunk: it re-arms itself for what is
// left of the current wait. Waits just under the bound, with the client's
// own pauses between them putting the timer's fires anywhere in a wait,
// never time out; the wait that reaches the bound times out exactly then.
func TestIdleBoundCountsEachWaitFromItsStart(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		gaps := []time.Duration{0, 6900 * time.Millisecond, 3 * time.Second, 6999 * time.Millisecond, 1, 5 * time.Second, 6 * time.Second}
		pauses := []time.Duration{0, 2 * time.Second, 6500 * time.Millisecond, 11 * time.Second, 300 * time.Millisecond, 4 * time.Second, 0}
		var up *fakeStream
		f := newFake("openai", func(ctx context.Context, req *provider.Request, n int64) (*provider.Response, error) {
			up = newFakeStream(ctx, chunks(req.Model, len(gaps))...)
			up.gaps, up.stallAt = gaps, len(gaps)
			return &provider.Response{Stream: up}, nil
		})
		r, tg := oneProvider(t, f, Config{Timeouts: TimeoutConfig{StreamIdle: 7 * time.Second, FirstByte: 30 * time.Second}})
		resp, err := r.ChatCompletion(t.Context(), tg, chatReq("gpt-4o", true), nil)
		if err != nil {
			t.Fatalf("ChatCompletion: %v", err)
		}
		defer resp.Stream.Close()
		if _, err := resp.Stream.Next(); err != nil { // the pre-read first chunk
			t.Fatalf("Next: %v", err)
		}
		for i, p := range pauses[1:] {
			time.Sleep(p)
			start := time.Now()
			if _, err := resp.Stream.Next(); err != nil {
				t.Fatalf("chunk %d after a wait of %v: %v", i+1, time.Since(start), err)
			}
		}
		start := time.Now()
		_, err = resp.Stream.Next()
		if e := apiErr(t, err); e.Code != "stream_idle_timeout" || time.Since(start) != 7*time.Second {
			t.Fatalf("got %v after %v, want stream_idle_timeout after 7s", err, time.Since(start))
		}
	})
}

func TestStreamThatNeverStartsIsRetriedAfterFirstByteTimeout(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		f := newFake("openai", func(ctx context.Context, req *provider.Request, n int64) (*provider.Response, error) {
			s := newFakeStream(ctx, chunks(req.Model, 2)...)
			if n == 1 {
				s.stallAt = 0
			}
			return &provider.Response{Stream: s}, nil
		})
		r, tg := oneProvider(t, f, Config{Timeouts: TimeoutConfig{FirstByte: 3 * time.Second}})
		start := time.Now()
		resp, err := r.ChatCompletion(t.Context(), tg, chatReq("gpt-4o", true), nil)
		if err != nil {
			t.Fatalf("ChatCompletion: %v", err)
		}
		defer resp.Stream.Close()
		if el := time.Since(start); el < 3*time.Second || el > 3*time.Second+DefaultBaseBackoff || resp.Attempts != 2 {
			t.Fatalf("stream started after %v and %d attempts, want just over 3s and 2", el, resp.Attempts)
		}
		if got, err := readAll(resp.Stream); err != nil || len(got) != 2 {
			t.Fatalf("read %d chunks, err %v", len(got), err)
		}
	})
}

func TestStreamEndReleasesCapacityWithoutClose(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		f := newFake("openai", nil)
		r, tg := oneProvider(t, f, Config{MaxInflight: 1})
		for range 3 {
			resp, err := r.ChatCompletion(t.Context(), tg, chatReq("gpt-4o", true), nil)
			if err != nil {
				t.Fatalf("ChatCompletion: %v", err)
			}
			if _, err := readAll(resp.Stream); err != nil {
				t.Fatal(err)
			}
		}
		if h := r.Health()[0]; h.Inflight != 0 {
			t.Fatalf("inflight %d after streams ended, want 0", h.Inflight)
		}
	})
}

func TestClosedStreamRefusesNext(t *testing.T) {
	r, tg := oneProvider(t, newFake("openai", nil), Config{})
	resp, err := r.ChatCompletion(t.Context(), tg, chatReq("gpt-4o", true), nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := resp.Stream.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := resp.Stream.Next(); err == nil || errors.Is(err, io.EOF) {
		t.Fatalf("Next after Close = %v, want an error", err)
	}
}

func TestClientGoneMidStreamIsNotABreakerFailure(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		f := newFake("openai", func(ctx context.Context, req *provider.Request, n int64) (*provider.Response, error) {
			s := newFakeStream(ctx, chunks(req.Model, 3)...)
			s.stallAt = 1
			return &provider.Response{Stream: s}, nil
		})
		var changes int
		r, tg := oneProvider(t, f, Config{Breaker: BreakerConfig{ConsecutiveFailures: 1},
			OnBreakerChange: func(string, State) { changes++ }})
		ctx, cancel := context.WithCancel(t.Context())
		resp, err := r.ChatCompletion(ctx, tg, chatReq("gpt-4o", true), nil)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Stream.Close()
		time.AfterFunc(time.Second, cancel)
		_, _ = resp.Stream.Next()
		_, err = resp.Stream.Next()
		if e := apiErr(t, err); e.Status != 499 || changes != 0 {
			t.Fatalf("got %v with %d breaker changes, want 499 and none", err, changes)
		}
	})
}
