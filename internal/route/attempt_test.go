package route

import (
	"context"
	"errors"
	"net"
	"net/http"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/edge-agent/edge-agent/internal/api"
	"github.com/edge-agent/edge-agent/internal/provider"
	"github.com/edge-agent/edge-agent/internal/provider/openai"
)

// attemptLog records OnAttempt calls.
type attemptLog struct {
	mu  sync.Mutex
	got []string
}

func (l *attemptLog) add(deployment, prov string, o AttemptOutcome) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.got = append(l.got, prov+":"+o.String())
}

func (l *attemptLog) list() []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return slices.Clone(l.got)
}

// TestEveryUpstreamAttemptIsCountedByOutcome: retries, connection errors,
// timeouts, open breakers and failures inside a stream each count, and a
// client's own 400 is a 4xx, not a provider failure.
func TestEveryUpstreamAttemptIsCountedByOutcome(t *testing.T) {
	stalled := func(ctx context.Context, _ *provider.Request, _ int64) (*provider.Response, error) {
		<-ctx.Done()
		return nil, ctx.Err()
	}
	midStreamFailure := func(_ context.Context, req *provider.Request, _ int64) (*provider.Response, error) {
		s := newFakeStream(nil, chunks(req.Model, 3)...)
		s.failAt, s.failErr = 2, errors.New("connection reset by peer")
		return &provider.Response{Stream: s}, nil
	}
	tests := []struct {
		name    string
		answer  func(context.Context, *provider.Request, int64) (*provider.Response, error)
		stream  bool
		breaker BreakerConfig
		// requests made; the attempts of all of them are compared
		requests int
		// readChunks: how many chunks of a stream the client reads before
		// closing it (-1: to the end)
		readChunks int
		want       []string
	}{
		{name: "answered", requests: 1, want: []string{"openai:2xx"}},
		{name: "retried 503s, then answered", answer: failFirst(2, 503), requests: 1,
			want: []string{"openai:5xx", "openai:5xx", "openai:2xx"}},
		{name: "client's own 400 is not retried and not a provider failure", answer: failWith(400), requests: 1,
			want: []string{"openai:4xx"}},
		{name: "credential refused", answer: failWith(401), requests: 1, want: []string{"openai:auth"}},
		{name: "rate limited, then answered", answer: failFirst(1, 429), requests: 1, want: []string{"openai:429", "openai:2xx"}},
		{name: "no answer in time", answer: stalled, requests: 1,
			want: []string{"openai:timeout", "openai:timeout", "openai:timeout"}},
		{name: "breaker opens, the next request is refused by it", answer: failWith(500), requests: 2,
			breaker: BreakerConfig{ConsecutiveFailures: 1, OpenFor: time.Minute},
			want:    []string{"openai:5xx", "openai:breaker_open", "openai:breaker_open"}},
		{name: "stream to its end", stream: true, readChunks: -1, requests: 1, want: []string{"openai:2xx"}},
		{name: "stream fails after its first chunk", answer: midStreamFailure, stream: true, readChunks: -1, requests: 1,
			want: []string{"openai:stream_error"}},
		{name: "stream left by the client", stream: true, readChunks: 1, requests: 1, want: []string{"openai:canceled"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var log attemptLog
			f := newFake("openai", tt.answer)
			r := mustRouter(t, Config{
				Providers: map[string]provider.Provider{"openai": f},
				Retry:     RetryConfig{BaseBackoff: time.Millisecond, MaxBackoff: 2 * time.Millisecond},
				Breaker:   tt.breaker,
				Timeouts:  TimeoutConfig{FirstByte: 30 * time.Millisecond},
				OnAttempt: log.add,
			})
			for range tt.requests {
				resp, err := r.ChatCompletion(t.Context(), mustResolve(t, r, "gpt-4o"), chatReq("gpt-4o", tt.stream), nil)
				if err != nil || resp.Stream == nil {
					continue
				}
				for n := 0; tt.readChunks < 0 || n < tt.readChunks; n++ {
					if _, err := resp.Stream.Next(); err != nil {
						break
					}
				}
				_ = resp.Stream.Close()
			}
			if got := log.list(); !slices.Equal(got, tt.want) {
				t.Fatalf("attempts %v, want %v", got, tt.want)
			}
		})
	}
}

// TestRefusedConnectionsAreCountedAsConnectionErrors runs the real OpenAI
// adapter against a port nobody listens on: the outage the provider-error
// alert must see.
func TestRefusedConnectionsAreCountedAsConnectionErrors(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	var log attemptLog
	p := openai.New(openai.Config{Name: "openai", BaseURL: "http://" + addr + "/v1", Client: newClient(t)})
	r := mustRouter(t, Config{Providers: map[string]provider.Provider{"openai": p}, OnAttempt: log.add,
		Retry: RetryConfig{BaseBackoff: time.Millisecond, MaxBackoff: 2 * time.Millisecond}})
	_, err = r.ChatCompletion(t.Context(), mustResolve(t, r, "gpt-4o"), chatReq("gpt-4o", false), nil)
	if e := apiErr(t, err); e.Status != http.StatusBadGateway {
		t.Fatalf("got %v, want a 502", e)
	}
	want := []string{"openai:connection_error", "openai:connection_error", "openai:connection_error"}
	if got := log.list(); !slices.Equal(got, want) {
		t.Fatalf("attempts %v, want %v", got, want)
	}
}

func TestOnlyProviderSideOutcomesAreProviderFailures(t *testing.T) {
	for _, o := range AttemptOutcomes() {
		want := slices.Contains([]string{"5xx", "timeout", "connection_error", "breaker_open", "stream_error"}, o.String())
		if o.ProviderFailure() != want {
			t.Errorf("%s.ProviderFailure() = %v, want %v", o, o.ProviderFailure(), want)
		}
	}
	if got := classify(&api.Error{Status: 400, UpstreamStatus: 400}, false); got != AttemptClientError {
		t.Errorf("upstream 400 classified %s", got)
	}
}
