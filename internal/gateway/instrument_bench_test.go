package gateway

import (
	"bytes"
	"net/http"
	"net/http/httptest"
	"strconv"
	"testing"

	"github.com/edge-agent/edge-agent/internal/telemetry"
)

// BenchmarkInstrumentationCost runs the request path with the in-memory
// provider of bench_test.go bare (nil Observer), with metrics and stats,
// and fully instrumented (metrics, stats and the JSON request log to
// io.Discard, batched as by default, or formatted by each request). The difference
// of the two ns/op is what observability costs a request (issue 4 "Speed":
// at most a few hundred nanoseconds).
//
//	go test -run '^$' -bench BenchmarkInstrumentationCost -count 6 ./internal/gateway/
func BenchmarkInstrumentationCost(b *testing.B) {
	paths := []struct {
		name  string
		cache bool
		body  string
		want  string
	}{
		{"l1-hit", true, benchBody, "HIT"},
		{"miss", true, "", "MISS"}, // a new prompt each time: lookup, provider, store
		{"no-cache", false, benchBody, "BYPASS"},
		{"miss-stream", false, `{"model":"gpt-4o-mini","stream":true,"messages":[{"role":"user","content":"What is the capital of France?"}]}`, "BYPASS"},
	}
	for _, p := range paths {
		for _, inst := range []struct {
			name string
			obs  func(*testing.B) *telemetry.Observer
		}{
			{"bare", func(*testing.B) *telemetry.Observer { return nil }},
			{"metrics-stats", func(b *testing.B) *telemetry.Observer {
				o := benchObserver(b)
				o.Logger = nil
				return o
			}},
			{"observed", benchObserver},
			{"observed-log-unbatched", func(b *testing.B) *telemetry.Observer { return benchObserverLog(b, 0) }},
		} {
			b.Run(p.name+"/"+inst.name, func(b *testing.B) {
				g, _ := newBenchGateway(b, p.cache, inst.obs(b))
				if p.body == "" {
					serveMisses(b, g)
					return
				}
				serveBench(b, g, []byte(p.body), p.want)
			})
		}
	}
}

// serveMisses is serveBench with a different prompt each iteration, so
// every request misses L1, calls the provider and stores the answer.
func serveMisses(b *testing.B, g *Gateway) {
	b.Helper()
	req := httptest.NewRequest(http.MethodPost, "/v1/chat/completions", nil)
	rd := &rewindBody{Reader: bytes.NewReader(nil)}
	req.Body = rd
	w := &discardWriter{h: make(http.Header, 16)}
	prefix := []byte(`{"model":"gpt-4o-mini","temperature":0.2,"max_tokens":256,"messages":[{"role":"system","content":"You are a helpful assistant."},{"role":"user","content":"What is the capital of France? Question `)
	body := make([]byte, 0, len(prefix)+64)
	b.ReportAllocs()
	n := 0
	for b.Loop() {
		n++
		body = append(strconv.AppendInt(append(body[:0], prefix...), int64(n), 10), `"}]}`...)
		rd.Reset(body)
		req.ContentLength = int64(len(body))
		clear(w.h)
		w.code, w.n = 0, 0
		g.ServeHTTP(w, req)
		if w.code != 200 || w.h.Get("X-Cache-Status") != "MISS" {
			b.Fatalf("status %d cache %q", w.code, w.h.Get("X-Cache-Status"))
		}
	}
}
