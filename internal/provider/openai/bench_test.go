package openai

import (
	"context"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/edge-agent/edge-agent/internal/provider"
	"github.com/edge-agent/edge-agent/internal/provider/simulated"
	"github.com/edge-agent/edge-agent/internal/testutil/benchcpu"
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
		defer benchcpu.Report(b)()
		for b.Loop() {
			if _, err := p.ChatCompletion(ctx, req); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("parallel", func(b *testing.B) {
		b.ReportAllocs()
		defer benchcpu.Report(b)()
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
