package app_test

import (
	"context"
	"io"
	"net/http"
	"strings"
	"sync"
	"testing"

	"github.com/edge-agent/edge-agent/internal/config"
	"github.com/edge-agent/edge-agent/internal/provider"
	"github.com/edge-agent/edge-agent/internal/provider/openai"
	"github.com/edge-agent/edge-agent/internal/provider/simulated"
)

// recorder is a RoundTripper that keeps the requests it is given and
// answers each with an empty chat completion, so a provider's real URLs
// can be checked without reaching them.
type recorder struct {
	mu   sync.Mutex
	reqs []*http.Request
}

func (r *recorder) RoundTrip(req *http.Request) (*http.Response, error) {
	r.mu.Lock()
	r.reqs = append(r.reqs, req)
	r.mu.Unlock()
	if req.Body != nil {
		_, _ = io.Copy(io.Discard, req.Body)
		req.Body.Close()
	}
	return &http.Response{StatusCode: 200, Header: http.Header{"Content-Type": {"application/json"}}, Request: req,
		Body: io.NopCloser(strings.NewReader(`{"object":"chat.completion","choices":[],"data":[]}`))}, nil
}

// Each preset, enabled by its key's variable alone (a local server by one
// line of config), sends chat and every surface it serves natively to its
// documented URL with the key as a Bearer token.
func TestPresetsSendToTheirURLsWithTheirKeys(t *testing.T) {
	for _, ps := range config.Presets() {
		t.Run(ps.Name, func(t *testing.T) {
			cfg := config.Default()
			if ps.Local {
				cfg.Providers = []config.Provider{{Name: ps.Name}}
			}
			if err := config.ApplyEnv(&cfg, func(k string) string {
				if k == ps.KeyEnv {
					return "key-for-" + ps.Name
				}
				return ""
			}); err != nil {
				t.Fatal(err)
			}
			if err := cfg.Validate(); err != nil {
				t.Fatal(err)
			}
			if len(cfg.Providers) != 1 {
				t.Fatalf("providers %+v", cfg.Providers)
			}
			p := cfg.Providers[0]
			rec := &recorder{}
			var surfaces []provider.Surface
			for _, name := range p.Surfaces {
				s, _ := provider.ParseSurface(name)
				surfaces = append(surfaces, s)
			}
			prov := openai.New(openai.Config{Name: p.Name, BaseURL: p.BaseURL, APIKey: p.APIKey, Surfaces: surfaces, Client: &http.Client{Transport: rec}})
			want := []string{ps.BaseURL + "/chat/completions"}
			_, _ = prov.ChatCompletion(context.Background(), &provider.Request{Body: []byte(`{"model":"m"}`), Model: "m"})
			for _, s := range surfaces {
				if !prov.Speaks(s) {
					t.Fatalf("does not speak %s", s)
				}
				_, _ = prov.ChatCompletion(context.Background(), &provider.Request{Surface: s, Body: []byte(`{"model":"m"}`), Model: "m"})
				want = append(want, ps.BaseURL+"/"+s.String())
			}
			if len(rec.reqs) != len(want) {
				t.Fatalf("%d requests, want %d", len(rec.reqs), len(want))
			}
			for i, req := range rec.reqs {
				if req.URL.String() != want[i] {
					t.Errorf("request %d went to %s, want %s", i, req.URL, want[i])
				}
				if got := req.Header.Get("Authorization"); got != "Bearer key-for-"+ps.Name {
					t.Errorf("request %d Authorization %q", i, got)
				}
			}
		})
	}
}

// A preset provider is wired as the OpenAI-compatible adapter: over real
// HTTP, with its base URL pointed at the simulated provider and its key
// from the preset's variable.
func TestPresetProviderServesThroughTheGateway(t *testing.T) {
	s := startSim(t, simulated.Options{APIKey: "gsk-test-key-0123456789"})
	cfg := config.Default()
	cfg.MetricsPort = 0
	cfg.Providers = []config.Provider{{Name: "groq", BaseURL: s.URL + "/v1"}}
	if err := config.ApplyEnv(&cfg, func(k string) string {
		if k == "GROQ_API_KEY" {
			return "gsk-test-key-0123456789"
		}
		return ""
	}); err != nil {
		t.Fatal(err)
	}
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	g := startGateway(t, cfg)
	resp, body := post(t, g.URL, chat("groq/llama-3.3-70b-versatile", "hello groq"))
	if resp.StatusCode != http.StatusOK || !strings.Contains(string(body), "Simulated answer to: hello groq") {
		t.Fatalf("%d %s", resp.StatusCode, body)
	}
	if path, h, _ := s.LastRequest(); path != "/v1/chat/completions" || h.Get("Authorization") != "Bearer gsk-test-key-0123456789" {
		t.Fatalf("upstream %s %v", path, h)
	}
}
