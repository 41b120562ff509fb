package azure

import (
	"context"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/edge-agent/edge-agent/internal/provider"
	"github.com/edge-agent/edge-agent/internal/provider/simulated"
)

// BenchmarkAzureChatOverHTTP is openai's BenchmarkChatCompletionOverHTTP
// through the Azure adapter: the per-deployment URL (cached) and the
// api-key header on top of the OpenAI adapter's work.
func BenchmarkAzureChatOverHTTP(b *testing.B) {
	srv := httptest.NewServer(simulated.New(simulated.Options{APIKey: "azure-bench", Models: []string{"my-gpt4o"}}))
	defer srv.Close()
	tr := provider.NewTransport(provider.TransportOptions{})
	defer tr.CloseIdleConnections()
	p := New(Config{Name: "azure", BaseURL: srv.URL, APIKey: "azure-bench", Client: &http.Client{Transport: tr}})
	req := &provider.Request{
		Body:  []byte(`{"model":"my-gpt4o","messages":[{"role":"system","content":"be brief"},{"role":"user","content":"Explain what an LLM edge gateway does, in two sentences."}]}`),
		Model: "my-gpt4o",
	}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := p.ChatCompletion(context.Background(), req); err != nil {
			b.Fatal(err)
		}
	}
}
