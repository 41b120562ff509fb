package gateway

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"

	"github.com/tidwall/gjson"

	"github.com/edge-agent/edge-agent/internal/api"
	"github.com/edge-agent/edge-agent/internal/cache"
	"github.com/edge-agent/edge-agent/internal/cache/memory"
	"github.com/edge-agent/edge-agent/internal/provider"
	"github.com/edge-agent/edge-agent/internal/route"
	"github.com/edge-agent/edge-agent/internal/surface/chat"
)

// echoRouter answers with a body that carries the provider's own
// "metadata", as OpenAI does for stored completions.
type echoRouter struct{ calls int }

func (e *echoRouter) Resolve(model string) (route.Target, error) {
	return route.Target{Provider: "openai", Model: model}, nil
}

func (e *echoRouter) ChatCompletion(context.Context, route.Target, *provider.Request, []string) (*provider.Response, error) {
	e.calls++
	return &provider.Response{Body: []byte(`{"id":"c","object":"chat.completion","created":1,"model":"gpt-4o","metadata":{"upstream":"yes"},` +
		`"choices":[{"index":0,"message":{"role":"assistant","content":"hi"},"logprobs":null,"finish_reason":"stop"}],` +
		`"usage":{"prompt_tokens":3,"completion_tokens":1,"total_tokens":4}}`)}, nil
}

func TestUpstreamMetadataIsReplacedByOursOnMissAndHit(t *testing.T) {
	l1, err := memory.New(memory.Options{MaxBytes: 1 << 20})
	if err != nil {
		t.Fatal(err)
	}
	tiered := cache.NewTiered(cache.Options{L1: l1})
	defer func() { tiered.Close(); l1.Close() }()
	r := &echoRouter{}
	g := New(Options{Router: r, Cache: tiered})
	for i, want := range []string{"MISS", "HIT"} {
		rec := httptest.NewRecorder()
		g.ServeHTTP(rec, httptest.NewRequest(http.MethodPost, "/v1/chat/completions",
			strings.NewReader(`{"model":"gpt-4o","messages":[{"role":"user","content":"x"}]}`)))
		body := rec.Body.String()
		if rec.Code != 200 || rec.Header().Get("X-Cache-Status") != want {
			t.Fatalf("request %d: %d %s %s", i, rec.Code, rec.Header().Get("X-Cache-Status"), body)
		}
		if n := strings.Count(body, `"metadata"`); n != 1 || gjson.Get(body, "metadata.upstream").Exists() ||
			gjson.Get(body, "metadata.provider").Str != "openai" || gjson.Get(body, "usage.total_tokens").Int() != 4 {
			t.Fatalf("request %d: metadata members %d in %s", i, n, body)
		}
	}
	if r.calls != 1 {
		t.Fatalf("provider called %d times", r.calls)
	}
}

func TestRequestFallbacks(t *testing.T) {
	const msgs = `"messages":[{"role":"user","content":"x"}]`
	tests := []struct {
		name, body, header string
		want               []string
		wantErr            bool
	}{
		{"none", `{"model":"m",` + msgs + `}`, "", nil, false},
		{"header", `{"model":"m",` + msgs + `}`, " a, b ,,c", []string{"a", "b", "c"}, false},
		{"body", `{"model":"m","fallbacks":["x","y"],` + msgs + `}`, "", []string{"x", "y"}, false},
		{"header then body", `{"model":"m","fallbacks":["y"],` + msgs + `}`, "x", []string{"x", "y"}, false},
		{"null", `{"model":"m","fallbacks":null,` + msgs + `}`, "", nil, false},
		{"not an array", `{"model":"m","fallbacks":"x",` + msgs + `}`, "", nil, true},
		{"empty name", `{"model":"m","fallbacks":["x",""],` + msgs + `}`, "", nil, true},
		{"not a string", `{"model":"m","fallbacks":[1],` + msgs + `}`, "", nil, true},
		{"too many", `{"model":"m","fallbacks":["1","2","3","4","5","6","7","8","9"],` + msgs + `}`, "", nil, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			req, err := chat.Surface{}.Parse([]byte(tt.body), api.DefaultLimits)
			if err != nil {
				t.Fatal(err)
			}
			h := http.Header{}
			if tt.header != "" {
				h.Set("X-Fallback-Models", tt.header)
			}
			got, err := requestFallbacks(req, h)
			if tt.wantErr {
				var e *api.Error
				if !errors.As(err, &e) || e.Status != http.StatusBadRequest || e.Param != "fallbacks" {
					t.Fatalf("got %v, want a 400 on param fallbacks", err)
				}
				return
			}
			if err != nil || !slices.Equal(got, tt.want) {
				t.Fatalf("got %q, %v; want %q", got, err, tt.want)
			}
		})
	}
}

func TestEstimateTokensHoldsTheAnswersBudgetOnlyForRequestsThatHaveOne(t *testing.T) {
	for _, tt := range []struct {
		name string
		e    Estimate
		want int
	}{
		{"max_tokens asked", Estimate{PromptTokens: 100, MaxTokens: 50}, 150},
		{"no max_tokens: 256 held", Estimate{PromptTokens: 100}, 356},
		{"embeddings: the prompt only", Estimate{PromptTokens: 100, NoCompletion: true}, 100},
	} {
		if got := tt.e.Tokens(); got != tt.want {
			t.Errorf("%s: %d, want %d", tt.name, got, tt.want)
		}
	}
}
