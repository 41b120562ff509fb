package gateway

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/edge-agent/edge-agent/internal/cache"
	"github.com/edge-agent/edge-agent/internal/cache/memory"
	"github.com/edge-agent/edge-agent/internal/provider"
	"github.com/edge-agent/edge-agent/internal/route"
	"github.com/edge-agent/edge-agent/internal/surface/responses"
	"github.com/edge-agent/edge-agent/internal/testutil/benchcpu"
)

// The Responses passthrough beside chat's and Messages' benchmarks: the
// same question and answer, in the Responses API's format.

const benchResponsesAnswer = `{"id":"resp_1","object":"response","created_at":1,"status":"completed","error":null,"incomplete_details":null,"instructions":"You are a helpful assistant.","model":"gpt-4o-mini","output":[{"id":"msg_1","type":"message","status":"completed","role":"assistant","content":[{"type":"output_text","annotations":[],"logprobs":[],"text":"Paris is the capital of France."}]}],"parallel_tool_calls":true,"previous_response_id":null,"store":true,"temperature":0.2,"text":{"format":{"type":"text"}},"tool_choice":"auto","tools":[],"top_p":1,"usage":{"input_tokens":20,"input_tokens_details":{"cached_tokens":0},"output_tokens":8,"output_tokens_details":{"reasoning_tokens":0},"total_tokens":28},"metadata":{}}`

var benchResponsesEvents = func() [][]byte {
	var out [][]byte
	for _, e := range []string{
		`{"type":"response.created","sequence_number":0,"response":{"id":"resp_1","object":"response","created_at":1,"status":"in_progress","model":"gpt-4o-mini","output":[],"usage":null}}`,
		`{"type":"response.output_item.added","sequence_number":1,"output_index":0,"item":{"id":"msg_1","type":"message","status":"in_progress","role":"assistant","content":[]}}`,
		`{"type":"response.output_text.delta","sequence_number":2,"item_id":"msg_1","output_index":0,"content_index":0,"delta":"Paris is ","logprobs":[]}`,
		`{"type":"response.output_text.delta","sequence_number":3,"item_id":"msg_1","output_index":0,"content_index":0,"delta":"the capital.","logprobs":[]}`,
		`{"type":"response.completed","sequence_number":4,"response":` + benchResponsesAnswer + `}`,
	} {
		out = append(out, []byte(e))
	}
	return out
}()

// memResponsesRouter is memRouter for a provider that speaks Responses.
type memResponsesRouter struct{ memRouter }

func (m *memResponsesRouter) Speaks(route.Target, provider.Surface) bool { return true }

func (m *memResponsesRouter) ChatCompletion(_ context.Context, _ route.Target, req *provider.Request, _ []string) (*provider.Response, error) {
	m.calls++
	if req.Surface != provider.SurfaceResponses {
		return nil, io.ErrUnexpectedEOF
	}
	if req.Stream {
		return &provider.Response{Stream: &eventStream{events: benchResponsesEvents}}, nil
	}
	return &provider.Response{Body: []byte(benchResponsesAnswer)}, nil
}

const benchResponsesBody = `{"model":"gpt-4o-mini","temperature":0.2,"max_output_tokens":256,"instructions":"You are a helpful assistant.","input":"What is the capital of France? Answer in one sentence."}`

// serveResponsesBench serves body through the Responses surface; store
// keeps every answer (the default configuration) when set.
func serveResponsesBench(b *testing.B, withCache, store bool, body []byte, want string) {
	b.Helper()
	r := &memResponsesRouter{}
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
	s := &responses.Surface{}
	if store {
		s.Store = responses.NewMemoryStore(time.Hour, 64<<20, 1<<20)
	}
	h := New(o).Handler(s)
	req := httptest.NewRequest(http.MethodPost, "/v1/responses", nil)
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

// BenchmarkResponsesPassthroughBesideChat runs the chat and Responses
// passthrough of the same question one after the other, in CPU time per
// call (cpu-ns/op), so that a loaded machine weighs on both alike: run it
// with -count to interleave them.
func BenchmarkResponsesPassthroughBesideChat(b *testing.B) {
	b.Run("chat/json", func(b *testing.B) {
		g, _ := newBenchGateway(b, false, nil)
		defer benchcpu.Report(b)()
		serveBench(b, g, []byte(benchBody), "BYPASS")
	})
	b.Run("responses/json", func(b *testing.B) {
		serveResponsesBench(b, false, false, []byte(benchResponsesBody), "BYPASS")
	})
	b.Run("chat/stream", func(b *testing.B) {
		g, _ := newBenchGateway(b, false, nil)
		defer benchcpu.Report(b)()
		serveBench(b, g, []byte(`{"model":"gpt-4o-mini","max_tokens":256,"stream":true,"messages":[{"role":"user","content":"What is the capital of France?"}]}`), "BYPASS")
	})
	b.Run("responses/stream", func(b *testing.B) {
		serveResponsesBench(b, false, false, []byte(`{"model":"gpt-4o-mini","max_output_tokens":256,"stream":true,"input":"What is the capital of France?"}`), "BYPASS")
	})
	b.Run("chat/hit", func(b *testing.B) {
		g, _ := newBenchGateway(b, true, nil)
		defer benchcpu.Report(b)()
		serveBench(b, g, []byte(benchBody), "HIT")
	})
	b.Run("responses/hit", func(b *testing.B) {
		serveResponsesBench(b, true, false, []byte(benchResponsesBody), "HIT")
	})
}

// BenchmarkProxyResponsesMissNonStreaming is the Responses passthrough of
// a JSON answer with the store off, beside BenchmarkProxyMissNonStreaming.
func BenchmarkProxyResponsesMissNonStreaming(b *testing.B) {
	serveResponsesBench(b, false, false, []byte(benchResponsesBody), "BYPASS")
}

// BenchmarkProxyResponsesMissNonStreamingStored is the same with every
// answer kept in the memory store, as configured by default.
func BenchmarkProxyResponsesMissNonStreamingStored(b *testing.B) {
	serveResponsesBench(b, false, true, []byte(benchResponsesBody), "BYPASS")
}

// BenchmarkProxyResponsesMissStreaming is the Responses passthrough of an
// event stream, beside BenchmarkProxyMissStreaming.
func BenchmarkProxyResponsesMissStreaming(b *testing.B) {
	body := []byte(`{"model":"gpt-4o-mini","max_output_tokens":256,"stream":true,"input":"What is the capital of France?"}`)
	serveResponsesBench(b, false, false, body, "BYPASS")
}

// BenchmarkProxyResponsesL1Hit is a Responses cache hit (a fresh id
// written into the stored answer), beside BenchmarkProxyL1Hit.
func BenchmarkProxyResponsesL1Hit(b *testing.B) {
	serveResponsesBench(b, true, false, []byte(benchResponsesBody), "HIT")
}
