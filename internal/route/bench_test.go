package route

import (
	"context"
	"testing"

	"github.com/edge-agent/edge-agent/internal/provider"
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
