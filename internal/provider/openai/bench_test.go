package openai

import (
	"context"
	"net/http"
	"net/http/httptest"
	"syscall"
	"testing"
	"time"

	"github.com/edge-agent/edge-agent/internal/provider"
	"github.com/edge-agent/edge-agent/internal/provider/simulated"
)

// BenchmarkChatCompletionOverHTTP measures one non-streaming upstream call
// against the simulated provider over loopback HTTP/1.1 (0 ms latency): the
// request building, the transport round trip and the answer reading. The
// simulated server runs in the same process, so its cost is included.
func BenchmarkChatCompletionOverHTTP(b *testing.B) {
	srv := httptest.NewServer(simulated.New(simulated.Options{APIKey: "sk-bench"}))
	defer srv.Close()
	tr := provider.NewTransport(provider.TransportOptions{})
	defer tr.CloseIdleConnections()
	p := New(Config{Name: "openai", BaseURL: srv.URL + "/v1", APIKey: "sk-bench", Client: &http.Client{Transport: tr}})
	req := &provider.Request{
		Body:   []byte(`{"model":"gpt-4o-mini","messages":[{"role":"system","content":"be brief"},{"role":"user","content":"Explain what an LLM edge gateway does, in two sentences."}]}`),
		Model:  "gpt-4o-mini",
		Header: http.Header{"Traceparent": {"00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"}},
	}
	ctx := context.Background()
	b.Run("serial", func(b *testing.B) {
		b.ReportAllocs()
		defer reportCPU(b)()
		for b.Loop() {
			if _, err := p.ChatCompletion(ctx, req); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("parallel", func(b *testing.B) {
		b.ReportAllocs()
		defer reportCPU(b)()
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				if _, err := p.ChatCompletion(ctx, req); err != nil {
					b.Error(err)
					return
				}
			}
		})
	})
}

// reportCPU reports the process's CPU time (user+system) per operation, a
// steadier measure than wall time when other work shares the machine. Use
// as defer reportCPU(b)().
func reportCPU(b *testing.B) func() {
	start := cpuTime()
	return func() {
		if b.N > 0 {
			b.ReportMetric(float64(cpuTime()-start)/float64(b.N), "cpu-ns/op")
		}
	}
}

func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
