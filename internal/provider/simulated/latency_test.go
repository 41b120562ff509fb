package simulated

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"
)

// serveAsync runs one request against s in the background and returns a
// flag set when the handler returns, and the recorder it wrote to.
func serveAsync(ctx context.Context, s *Server, path, body string) (*atomic.Bool, *httptest.ResponseRecorder) {
	rec := httptest.NewRecorder()
	req := httptest.NewRequestWithContext(ctx, http.MethodPost, path, strings.NewReader(body))
	req.Header.Set("Anthropic-Version", "2023-06-01")
	var done atomic.Bool
	go func() {
		s.ServeHTTP(rec, req)
		done.Store(true)
	}()
	return &done, rec
}

// elapsed serves one request and returns how long it took on the bubble's
// clock.
func elapsed(s *Server, path, body string) (time.Duration, *httptest.ResponseRecorder) {
	t0 := time.Now()
	rec := httptest.NewRecorder()
	req := httptest.NewRequest(http.MethodPost, path, strings.NewReader(body))
	req.Header.Set("Anthropic-Version", "2023-06-01")
	s.ServeHTTP(rec, req)
	return time.Since(t0), rec
}

func TestTTFTDelaysTheFirstByte(t *testing.T) {
	for _, d := range dialects {
		t.Run(d.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				s := New(Options{TTFT: 800 * time.Millisecond})
				done, rec := serveAsync(t.Context(), s, d.path, d.req("hello", ""))
				time.Sleep(800*time.Millisecond - time.Nanosecond)
				synctest.Wait()
				if done.Load() {
					t.Fatal("answered before TTFT")
				}
				time.Sleep(time.Nanosecond)
				synctest.Wait()
				if !done.Load() || rec.Code != 200 {
					t.Fatalf("not answered at TTFT: done=%v code=%d", done.Load(), rec.Code)
				}
			})
		})
	}
}

func TestJitterSpreadsTTFTWithinItsBounds(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		const ttft, jitter = 500 * time.Millisecond, 100 * time.Millisecond
		s := New(Options{TTFT: ttft, Jitter: jitter})
		seen := map[time.Duration]bool{}
		lo, hi := time.Hour, time.Duration(0)
		for range 200 {
			d, _ := elapsed(s, "/v1/chat/completions", openAIReq("hi", ""))
			seen[d] = true
			lo, hi = min(lo, d), max(hi, d)
		}
		if lo < ttft-jitter || hi > ttft+jitter {
			t.Errorf("TTFT range [%v, %v] outside %v±%v", lo, hi, ttft, jitter)
		}
		if len(seen) < 100 || lo > ttft-jitter/2 || hi < ttft+jitter/2 {
			t.Errorf("jitter does not spread: %d distinct values in [%v, %v]", len(seen), lo, hi)
		}
	})
}

func TestChunkDelaySpacesStreamedContent(t *testing.T) {
	for _, d := range dialects {
		t.Run(d.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				// 24 words make 8 content events: 7 gaps after the first.
				s := New(Options{TTFT: 200 * time.Millisecond, ChunkDelay: 30 * time.Millisecond})
				got, rec := elapsed(s, d.path, d.req("hello", `,"stream":true`))
				if want := 200*time.Millisecond + 7*30*time.Millisecond; got != want {
					t.Errorf("stream took %v, want %v", got, want)
				}
				if !strings.HasSuffix(rec.Body.String(), d.done+"\n\n") {
					t.Errorf("incomplete stream: %s", rec.Body.String())
				}
			})
		})
	}
}

func TestSlowMagicWordOverridesTTFT(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		s := New(Options{TTFT: 5 * time.Second, Jitter: time.Second})
		if got, _ := elapsed(s, "/v1/messages", anthropicReq("take it slow SIM_SLOW_300", "")); got != 300*time.Millisecond {
			t.Errorf("SIM_SLOW_300 took %v", got)
		}
	})
}

func TestSetOptionsChangesLatencyAtRuntime(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		s := New(Options{TTFT: time.Second})
		if got, _ := elapsed(s, "/v1/chat/completions", openAIReq("a", "")); got != time.Second {
			t.Errorf("before: %v", got)
		}
		s.SetOptions(Options{TTFT: 10 * time.Millisecond})
		if got, _ := elapsed(s, "/v1/chat/completions", openAIReq("a", "")); got != 10*time.Millisecond {
			t.Errorf("after: %v", got)
		}
	})
}

func TestCancellationEndsEveryWaitImmediately(t *testing.T) {
	cases := []struct {
		name string
		opts Options
		body string
		path string
	}{
		{"ttft", Options{TTFT: time.Hour}, openAIReq("a", ""), "/v1/chat/completions"},
		{"chunk delay", Options{ChunkDelay: time.Hour}, openAIReq("a", `,"stream":true`), "/v1/chat/completions"},
		{"anthropic chunk delay", Options{ChunkDelay: time.Hour}, anthropicReq("a", `,"stream":true`), "/v1/messages"},
		{"stall", Options{}, anthropicReq("SIM_STALL", `,"stream":true`), "/v1/messages"},
		{"stalled json", Options{}, openAIReq("SIM_STALL", ""), "/v1/chat/completions"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				ctx, cancel := context.WithCancel(t.Context())
				t0 := time.Now()
				done, _ := serveAsync(ctx, New(tc.opts), tc.path, tc.body)
				synctest.Wait()
				if done.Load() {
					t.Fatal("returned before cancellation")
				}
				cancel()
				synctest.Wait()
				if !done.Load() {
					t.Fatal("still waiting after cancellation")
				}
				if d := time.Since(t0); d != 0 {
					t.Errorf("took %v of fake time", d)
				}
			})
		})
	}
}
