package gateway

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/edge-agent/edge-agent/internal/cache"
	"github.com/edge-agent/edge-agent/internal/cache/memory"
	"github.com/edge-agent/edge-agent/internal/provider"
	"github.com/edge-agent/edge-agent/internal/route"
	"github.com/edge-agent/edge-agent/internal/surface/messages"
	"github.com/edge-agent/edge-agent/internal/telemetry"
	"github.com/edge-agent/edge-agent/internal/testutil/benchcpu"
)

const benchAnswer = `{"id":"chatcmpl-1","object":"chat.completion","created":1,"model":"gpt-4o-mini","choices":[{"index":0,"message":{"role":"assistant","content":"Paris is the capital of France."},"logprobs":null,"finish_reason":"stop"}],"usage":{"prompt_tokens":20,"completion_tokens":8,"total_tokens":28}}`

var benchChunks = []string{
	`{"id":"c","object":"chat.completion.chunk","created":1,"model":"gpt-4o-mini","choices":[{"index":0,"delta":{"role":"assistant","content":""},"finish_reason":null}]}`,
	`{"id":"c","object":"chat.completion.chunk","created":1,"model":"gpt-4o-mini","choices":[{"index":0,"delta":{"content":"Paris is "},"finish_reason":null}]}`,
	`{"id":"c","object":"chat.completion.chunk","created":1,"model":"gpt-4o-mini","choices":[{"index":0,"delta":{"content":"the capital."},"finish_reason":null}]}`,
	`{"id":"c","object":"chat.completion.chunk","created":1,"model":"gpt-4o-mini","choices":[{"index":0,"delta":{},"finish_reason":"stop"}]}`,
	`{"id":"c","object":"chat.completion.chunk","created":1,"model":"gpt-4o-mini","choices":[],"usage":{"prompt_tokens":20,"completion_tokens":8,"total_tokens":28}}`,
}

// memRouter answers every call in memory: the provider costs nothing, so a
// benchmark measures the gateway alone.
type memRouter struct {
	calls  int
	chunks [][]byte // a stream's chunks; nil: benchChunkBytes
}

func (m *memRouter) Resolve(model string) (route.Target, error) {
	return route.Target{Provider: "openai", Model: model}, nil
}

func (m *memRouter) ChatCompletion(_ context.Context, _ route.Target, req *provider.Request, _ []string) (*provider.Response, error) {
	m.calls++
	if req.Stream {
		return &provider.Response{Stream: &memStream{chunks: m.chunks}}, nil
	}
	return &provider.Response{Body: []byte(benchAnswer)}, nil
}

// benchChunkBytes are benchChunks converted once: a real provider hands
// out slices of its read buffer, so conversions here would count against
// the gateway.
var benchChunkBytes = func() [][]byte {
	out := make([][]byte, len(benchChunks))
	for i, c := range benchChunks {
		out[i] = []byte(c)
	}
	return out
}()

type memStream struct {
	i      int
	chunks [][]byte
}

func (s *memStream) Next() ([]byte, error) {
	if s.chunks == nil {
		s.chunks = benchChunkBytes
	}
	if s.i >= len(s.chunks) {
		return nil, io.EOF
	}
	s.i++
	return s.chunks[s.i-1], nil
}

// longStreamChunks is a 52-chunk answer shaped like OpenAI's with
// stream_options.include_usage (the gateway asks for it to price every
// stream): the role chunk, 50 content chunks, the finish chunk, each with
// "usage":null, then the usage chunk; the shape the streams benchmark's
// simulated provider sends (scripts/streams_compare.sh).
var longStreamChunks = func() [][]byte {
	const head = `{"id":"chatcmpl-sim-c866e10ac1b34f4f","object":"chat.completion.chunk","created":1796192998,"model":"gpt-4o-mini","system_fingerprint":"fp_sim","choices":[{"index":0,`
	out := [][]byte{[]byte(head + `"delta":{"role":"assistant","content":"","refusal":null},"logprobs":null,"finish_reason":null}],"usage":null}`)}
	for i := range 50 {
		out = append(out, fmt.Appendf(nil, head+`"delta":{"content":" word%d"},"logprobs":null,"finish_reason":null}],"usage":null}`, i))
	}
	out = append(out, []byte(head+`"delta":{},"logprobs":null,"finish_reason":"stop"}],"usage":null}`),
		[]byte(`{"id":"chatcmpl-sim-c866e10ac1b34f4f","object":"chat.completion.chunk","created":1796192998,"model":"gpt-4o-mini","system_fingerprint":"fp_sim","choices":[],"usage":{"prompt_tokens":20,"completion_tokens":50,"total_tokens":70}}`))
	return out
}()

func (s *memStream) Close() error { return nil }

// discardWriter is a minimal ResponseWriter that keeps nothing, so the
// benchmark counts the gateway's allocations, not a recorder's.
type discardWriter struct {
	h    http.Header
	code int
	n    int
}

func (d *discardWriter) Header() http.Header         { return d.h }
func (d *discardWriter) WriteHeader(code int)        { d.code = code }
func (d *discardWriter) Write(p []byte) (int, error) { d.n += len(p); return len(p), nil }
func (d *discardWriter) Flush()                      {}

// SetReadDeadline makes discardWriter a connection's writer, as the
// server's is: the gateway sets the body read deadline through it
// (http.ResponseController), and an unsupported writer costs an error
// allocation a real server never pays.
func (d *discardWriter) SetReadDeadline(time.Time) error { return nil }

func newBenchGateway(b *testing.B, withCache bool, obs *telemetry.Observer) (*Gateway, *memRouter) {
	b.Helper()
	r := &memRouter{}
	o := Options{Router: r, Observer: obs}
	if withCache {
		l1, err := memory.New(memory.Options{MaxBytes: 64 << 20})
		if err != nil {
			b.Fatal(err)
		}
		t := cache.NewTiered(cache.Options{L1: l1})
		b.Cleanup(func() { t.Close(); l1.Close() })
		o.Cache = t
	}
	return New(o), r
}

const benchBody = `{"model":"gpt-4o-mini","temperature":0.2,"max_tokens":256,"messages":[{"role":"system","content":"You are a helpful assistant."},{"role":"user","content":"What is the capital of France? Answer in one sentence."}]}`

func serveBench(b *testing.B, g *Gateway, body []byte, want string) {
	b.Helper()
	req := httptest.NewRequest(http.MethodPost, "/v1/chat/completions", nil)
	rd := &rewindBody{Reader: bytes.NewReader(body)}
	req.Body = rd
	w := &discardWriter{h: make(http.Header, 16)}
	serve := func() {
		rd.Reset(body)
		req.ContentLength = int64(len(body))
		clear(w.h)
		w.code, w.n = 0, 0
		g.ServeHTTP(w, req)
	}
	serve() // warm up: fills the cache when there is one
	b.ReportAllocs()
	defer benchcpu.Report(b)()
	for b.Loop() {
		serve()
		if w.code != 200 || w.h.Get("X-Cache-Status") != want {
			b.Fatalf("status %d cache %q", w.code, w.h.Get("X-Cache-Status"))
		}
	}
}

// rewindBody is a request body the benchmark reuses.
type rewindBody struct{ *bytes.Reader }

func (rewindBody) Close() error { return nil }

// BenchmarkProxyL1Hit is the cache-hit path without network: request bytes
// in, response bytes out.
func BenchmarkProxyL1Hit(b *testing.B) {
	g, r := newBenchGateway(b, true, nil)
	serveBench(b, g, []byte(benchBody), "HIT")
	if r.calls != 1 {
		b.Fatalf("provider called %d times, want 1", r.calls)
	}
}

// BenchmarkProxyL1HitObserved is the same with metrics, stats and the
// request log (to io.Discard) switched on.
func BenchmarkProxyL1HitObserved(b *testing.B) {
	g, _ := newBenchGateway(b, true, benchObserver(b))
	serveBench(b, g, []byte(benchBody), "HIT")
}

func BenchmarkProxyMissNonStreamingObserved(b *testing.B) {
	g, _ := newBenchGateway(b, false, benchObserver(b))
	serveBench(b, g, []byte(benchBody), "BYPASS")
}

// benchObserver is the default instrumentation: metrics, stats and the
// request log batched every 100 ms (its lines are formatted by the flush,
// off the request's path).
func benchObserver(b *testing.B) *telemetry.Observer {
	return benchObserverLog(b, 100*time.Millisecond)
}

// benchObserverLog is benchObserver with the log flushed every flushEvery
// (0: each line formatted and written by the request).
func benchObserverLog(b *testing.B, flushEvery time.Duration) *telemetry.Observer {
	logger, err := telemetry.NewBufferedLogger(io.Discard, "json", "info", flushEvery)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = logger.Close() })
	m := telemetry.NewMetrics(telemetry.MetricsOptions{Providers: []string{"openai"}, Models: []string{"gpt-4o-mini"}, DisableRuntimeMetrics: true})
	return &telemetry.Observer{Metrics: m, Stats: telemetry.NewStats(), Logger: logger}
}

func BenchmarkProxyMissNonStreaming(b *testing.B) {
	g, _ := newBenchGateway(b, false, nil)
	serveBench(b, g, []byte(benchBody), "BYPASS")
}

func BenchmarkProxyMissStreaming(b *testing.B) {
	g, _ := newBenchGateway(b, false, nil)
	body := []byte(`{"model":"gpt-4o-mini","stream":true,"messages":[{"role":"user","content":"What is the capital of France?"}]}`)
	serveBench(b, g, body, "BYPASS")
}

// BenchmarkProxyMissStreamingLong is a stream miss of 52 chunks: what the
// gateway spends per chunk of a long answer (the streams benchmark's
// per-stream CPU and garbage come from here).
func BenchmarkProxyMissStreamingLong(b *testing.B) {
	g, r := newBenchGateway(b, false, nil)
	r.chunks = longStreamChunks
	body := []byte(`{"model":"gpt-4o-mini","stream":true,"messages":[{"role":"user","content":"What is the capital of France?"}]}`)
	serveBench(b, g, body, "BYPASS")
}

// BenchmarkProxyL1HitMetricsOnly separates the cost of metrics and stats
// from the cost of the request log line.
func BenchmarkProxyL1HitMetricsOnly(b *testing.B) {
	o := benchObserver(b)
	o.Logger = nil
	g, _ := newBenchGateway(b, true, o)
	serveBench(b, g, []byte(benchBody), "HIT")
}

const benchMessagesAnswer = `{"id":"msg_1","type":"message","role":"assistant","model":"claude-sonnet-4-5","content":[{"type":"text","text":"Paris is the capital of France."}],"stop_reason":"end_turn","stop_sequence":null,"usage":{"input_tokens":20,"output_tokens":8}}`

var benchMessagesEvents = func() [][]byte {
	var out [][]byte
	for _, e := range []string{
		`{"type":"message_start","message":{"id":"msg_1","type":"message","role":"assistant","model":"claude-sonnet-4-5","content":[],"stop_reason":null,"stop_sequence":null,"usage":{"input_tokens":20,"output_tokens":1}}}`,
		`{"type":"content_block_start","index":0,"content_block":{"type":"text","text":""}}`,
		`{"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":"Paris is "}}`,
		`{"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":"the capital."}}`,
		`{"type":"content_block_stop","index":0}`,
		`{"type":"message_delta","delta":{"stop_reason":"end_turn","stop_sequence":null},"usage":{"output_tokens":8}}`,
		`{"type":"message_stop"}`,
	} {
		out = append(out, []byte(e))
	}
	return out
}()

// memMessagesRouter is memRouter for a provider that speaks Messages: the
// gateway passes requests through to it.
type memMessagesRouter struct{ memRouter }

func (m *memMessagesRouter) Speaks(route.Target, provider.Surface) bool { return true }

func (m *memMessagesRouter) ChatCompletion(_ context.Context, _ route.Target, req *provider.Request, _ []string) (*provider.Response, error) {
	m.calls++
	if req.Surface != provider.SurfaceMessages {
		return nil, io.ErrUnexpectedEOF
	}
	if req.Stream {
		return &provider.Response{Stream: &eventStream{events: benchMessagesEvents}}, nil
	}
	return &provider.Response{Body: []byte(benchMessagesAnswer)}, nil
}

type eventStream struct {
	events [][]byte
	i      int
}

func (s *eventStream) Next() ([]byte, error) {
	if s.i >= len(s.events) {
		return nil, io.EOF
	}
	s.i++
	return s.events[s.i-1], nil
}

func (s *eventStream) Close() error { return nil }

const benchMessagesBody = `{"model":"claude-sonnet-4-5","temperature":0.2,"max_tokens":256,"system":"You are a helpful assistant.","messages":[{"role":"user","content":"What is the capital of France? Answer in one sentence."}]}`

func serveMessagesBench(b *testing.B, withCache bool, body []byte, want string) {
	b.Helper()
	r := &memMessagesRouter{}
	o := Options{Router: r}
	if withCache {
		l1, err := memory.New(memory.Options{MaxBytes: 64 << 20})
		if err != nil {
			b.Fatal(err)
		}
		t := cache.NewTiered(cache.Options{L1: l1})
		b.Cleanup(func() { t.Close(); l1.Close() })
		o.Cache = t
	}
	g := New(o)
	h := g.Handler(messages.Surface{})
	req := httptest.NewRequest(http.MethodPost, "/v1/messages", nil)
	rd := &rewindBody{Reader: bytes.NewReader(body)}
	req.Body = rd
	w := &discardWriter{h: make(http.Header, 16)}
	serve := func() {
		rd.Reset(body)
		req.ContentLength = int64(len(body))
		clear(w.h)
		w.code, w.n = 0, 0
		h.ServeHTTP(w, req)
	}
	serve()
	b.ReportAllocs()
	defer benchcpu.Report(b)()
	for b.Loop() {
		serve()
		if w.code != 200 || w.h.Get("X-Cache-Status") != want {
			b.Fatalf("status %d cache %q", w.code, w.h.Get("X-Cache-Status"))
		}
	}
}

// BenchmarkProxyMessagesMissNonStreaming is the Messages passthrough of a
// JSON answer, beside BenchmarkProxyMissNonStreaming.
func BenchmarkProxyMessagesMissNonStreaming(b *testing.B) {
	serveMessagesBench(b, false, []byte(benchMessagesBody), "BYPASS")
}

// BenchmarkProxyMessagesMissStreaming is the Messages passthrough of a
// stream, beside BenchmarkProxyMissStreaming.
func BenchmarkProxyMessagesMissStreaming(b *testing.B) {
	body := []byte(`{"model":"claude-sonnet-4-5","max_tokens":256,"stream":true,"messages":[{"role":"user","content":"What is the capital of France?"}]}`)
	serveMessagesBench(b, false, body, "BYPASS")
}

// BenchmarkProxyMessagesL1Hit is a Messages cache hit, beside
// BenchmarkProxyL1Hit.
func BenchmarkProxyMessagesL1Hit(b *testing.B) {
	serveMessagesBench(b, true, []byte(benchMessagesBody), "HIT")
}
