package route

import (
	"context"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/edge-agent/edge-agent/internal/provider"
	"github.com/edge-agent/edge-agent/internal/provider/openai"
	"github.com/edge-agent/edge-agent/internal/provider/simulated"
	"github.com/edge-agent/edge-agent/internal/testutil/benchcpu"
)

// noop answers at once with a fixed body: what is left is the router.
type noop struct{ resp provider.Response }

func (n *noop) Name() string { return "openai" }
func (n *noop) Type() string { return "openai" }
func (n *noop) ChatCompletion(context.Context, *provider.Request) (*provider.Response, error) {
	r := n.resp
	return &r, nil
}

func BenchmarkChatCompletionHappyPath(b *testing.B) {
	p := &noop{resp: provider.Response{Body: []byte(`{"choices":[]}`)}}
	bench := func(b *testing.B, cfg Config, model string) {
		cfg.Providers = map[string]provider.Provider{"openai": p}
		r := mustRouter(b, cfg)
		req := chatReq("gpt-4o", false)
		ctx := context.Background()
		b.ReportAllocs()
		for b.Loop() {
			tg, err := r.Resolve(model)
			if err != nil {
				b.Fatal(err)
			}
			if _, err := r.ChatCompletion(ctx, tg, req, nil); err != nil {
				b.Fatal(err)
			}
		}
	}
	b.Run("direct", func(b *testing.B) { bench(b, Config{}, "gpt-4o") })
	b.Run("group-of-3-weighted", func(b *testing.B) {
		bench(b, Config{Groups: []ModelGroup{{Name: "m", Deployments: []Deployment{
			{Name: "a", Provider: p, Model: "gpt-4o"}, {Name: "b", Provider: p, Model: "gpt-4o"}, {Name: "c", Provider: p, Model: "gpt-4o"}}}}}, "m")
	})
	b.Run("rewrite-model", func(b *testing.B) {
		bench(b, Config{Groups: []ModelGroup{{Name: "m", Deployments: []Deployment{{Name: "a", Provider: p, Model: "gpt-4o-2024-08-06"}}}}}, "m")
	})
}

func BenchmarkChatCompletionStream(b *testing.B) {
	p := newFake("openai", nil)
	r := mustRouter(b, Config{Providers: map[string]provider.Provider{"openai": p}})
	tg := mustResolve(b, r, "gpt-4o")
	req := chatReq("gpt-4o", true)
	ctx := context.Background()
	b.ReportAllocs()
	for b.Loop() {
		resp, err := r.ChatCompletion(ctx, tg, req, nil)
		if err != nil {
			b.Fatal(err)
		}
		if _, err := readAll(resp.Stream); err != nil {
			b.Fatal(err)
		}
		resp.Stream.Close()
	}
}

// BenchmarkChatCompletionOverHTTP measures the proxied (cache-miss) path
// below the gateway: Router.ChatCompletion through the OpenAI adapter to the
// simulated provider over loopback HTTP (0 ms latency, same process).
func BenchmarkChatCompletionOverHTTP(b *testing.B) {
	srv := httptest.NewServer(simulated.New(simulated.Options{APIKey: "sk-bench"}))
	tr := provider.NewTransport(provider.TransportOptions{})
	b.Cleanup(func() {
		tr.CloseIdleConnections()
		srv.Close()
	})
	p := openai.New(openai.Config{Name: "openai", BaseURL: srv.URL + "/v1", APIKey: "sk-bench", Client: &http.Client{Transport: tr}})
	r := mustRouter(b, Config{Providers: map[string]provider.Provider{"openai": p}})
	tg := mustResolve(b, r, "gpt-4o-mini")
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
			if _, err := r.ChatCompletion(ctx, tg, req, nil); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("parallel", func(b *testing.B) {
		b.ReportAllocs()
		defer benchcpu.Report(b)()
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				if _, err := r.ChatCompletion(ctx, tg, req, nil); err != nil {
					b.Error(err)
					return
				}
			}
		})
	})
}
