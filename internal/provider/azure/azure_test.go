package azure

import (
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"

	"github.com/tidwall/gjson"
	"go.uber.org/goleak"

	"github.com/edge-agent/edge-agent/internal/api"
	"github.com/edge-agent/edge-agent/internal/provider"
	"github.com/edge-agent/edge-agent/internal/provider/simulated"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

const testKey = "azure-test-key-0123456789"

// resource is the simulated Azure OpenAI resource over real HTTP, recording
// the query string of the last request (the simulated server records path,
// headers and body).
type resource struct {
	*simulated.Server
	url   string
	mu    sync.Mutex
	query string
}

func newResource(t *testing.T, key string) *resource {
	t.Helper()
	r := &resource{Server: simulated.New(simulated.Options{APIKey: key, Words: 12, Models: []string{"my-gpt4o", "my-embed"}})}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		r.mu.Lock()
		r.query = req.URL.RawQuery
		r.mu.Unlock()
		r.ServeHTTP(w, req)
	}))
	t.Cleanup(srv.Close)
	t.Cleanup(srv.Client().CloseIdleConnections)
	r.url = srv.URL
	return r
}

func (r *resource) lastQuery() string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.query
}

func newTestProvider(t *testing.T, r *resource, cfg Config) provider.Provider {
	t.Helper()
	cfg.Name = "azure"
	if cfg.BaseURL == "" {
		cfg.BaseURL = r.url
	}
	tr := provider.NewTransport(provider.TransportOptions{})
	t.Cleanup(tr.CloseIdleConnections)
	cfg.Client = &http.Client{Transport: tr}
	return New(cfg)
}

func chatBody(model, prompt string, stream bool) []byte {
	b := `{"model":"` + model + `","messages":[{"role":"user","content":"` + prompt + `"}]`
	if stream {
		b += `,"stream":true`
	}
	return []byte(b + "}")
}

func TestEndpointsForBothURLStyles(t *testing.T) {
	tests := []struct {
		base, version string
		surface       provider.Surface
		model, want   string
	}{
		{"https://res.openai.azure.com", "2024-10-21", provider.SurfaceChat, "my-gpt4o",
			"https://res.openai.azure.com/openai/deployments/my-gpt4o/chat/completions?api-version=2024-10-21"},
		{"https://res.openai.azure.com/", "2024-10-21", provider.SurfaceEmbeddings, "my-embed",
			"https://res.openai.azure.com/openai/deployments/my-embed/embeddings?api-version=2024-10-21"},
		{"https://res.openai.azure.com/openai/", "2025-04-01-preview", provider.SurfaceChat, "dep",
			"https://res.openai.azure.com/openai/deployments/dep/chat/completions?api-version=2025-04-01-preview"},
		{"https://res.openai.azure.com", "2024-10-21", provider.SurfaceResponses, "dep",
			"https://res.openai.azure.com/openai/v1/responses"},
		{"https://res.openai.azure.com/openai/v1", "v1", provider.SurfaceChat, "dep",
			"https://res.openai.azure.com/openai/v1/chat/completions"},
		{"https://res.openai.azure.com", "v1", provider.SurfaceEmbeddings, "dep",
			"https://res.openai.azure.com/openai/v1/embeddings"},
		{"https://res.openai.azure.com", "preview", provider.SurfaceResponses, "dep",
			"https://res.openai.azure.com/openai/v1/responses?api-version=preview"},
		{"https://res.openai.azure.com", "2024-10-21", provider.SurfaceChat, "a b/c",
			"https://res.openai.azure.com/openai/deployments/a%20b%2Fc/chat/completions?api-version=2024-10-21"},
	}
	for _, tt := range tests {
		u := &urls{root: root(tt.base), version: tt.version}
		got, err := u.endpoint(tt.surface, tt.model)
		if err != nil {
			t.Fatalf("%s %s %s: %v", tt.base, tt.version, tt.surface, err)
		}
		if got.String() != tt.want {
			t.Errorf("%s %s %s %q:\n got %s\nwant %s", tt.base, tt.version, tt.surface, tt.model, got, tt.want)
		}
		again, _ := u.endpoint(tt.surface, tt.model)
		if again != got {
			t.Errorf("%s: the endpoint is built again on every call", tt.want)
		}
	}
	if _, err := (&urls{root: "https://r", version: "v1"}).endpoint(provider.SurfaceCompletions, "d"); err == nil {
		t.Fatal("the legacy completions surface got an endpoint")
	}
}

func TestSpeaksChatResponsesAndEmbeddings(t *testing.T) {
	p := New(Config{Name: "azure", BaseURL: "https://r", APIKey: "k"})
	for s, want := range map[provider.Surface]bool{provider.SurfaceChat: true, provider.SurfaceResponses: true,
		provider.SurfaceEmbeddings: true, provider.SurfaceCompletions: false, provider.SurfaceMessages: false} {
		if got := provider.Speaks(p, s); got != want {
			t.Errorf("speaks %s: %v, want %v", s, got, want)
		}
	}
	if p.Type() != "azure" {
		t.Fatalf("type %q", p.Type())
	}
}

func TestChatGoesToTheDeploymentWithAPIVersionAndAPIKey(t *testing.T) {
	r := newResource(t, testKey)
	p := newTestProvider(t, r, Config{APIKey: testKey})
	resp, err := p.ChatCompletion(context.Background(), &provider.Request{Body: chatBody("my-gpt4o", "hello", false), Model: "my-gpt4o"})
	if err != nil {
		t.Fatal(err)
	}
	path, h, _ := r.LastRequest()
	if path != "/openai/deployments/my-gpt4o/chat/completions" || r.lastQuery() != "api-version=2024-10-21" {
		t.Fatalf("request went to %s?%s", path, r.lastQuery())
	}
	if h.Get("Api-Key") != testKey || h.Get("Authorization") != "" {
		t.Fatalf("api-key %q, Authorization %q", h.Get("Api-Key"), h.Get("Authorization"))
	}
	if !gjson.GetBytes(resp.Body, "prompt_filter_results").IsArray() || gjson.GetBytes(resp.Body, "choices.0.finish_reason").String() != "stop" {
		t.Fatalf("answer %s", resp.Body)
	}
}

func TestV1EndpointNamesTheDeploymentInTheBody(t *testing.T) {
	r := newResource(t, testKey)
	p := newTestProvider(t, r, Config{APIKey: testKey, APIVersion: "v1"})
	if _, err := p.ChatCompletion(context.Background(), &provider.Request{Body: chatBody("my-gpt4o", "hello", false), Model: "my-gpt4o"}); err != nil {
		t.Fatal(err)
	}
	path, _, body := r.LastRequest()
	if path != "/openai/v1/chat/completions" || r.lastQuery() != "" || gjson.GetBytes(body, "model").String() != "my-gpt4o" {
		t.Fatalf("request went to %s?%s with %s", path, r.lastQuery(), body)
	}
}

// drain reads a stream to its end and returns its chunks.
func drain(t *testing.T, s provider.Stream) []string {
	t.Helper()
	defer s.Close()
	var out []string
	for {
		b, err := s.Next()
		if err == io.EOF {
			return out
		}
		if err != nil {
			t.Fatalf("stream: %v", err)
		}
		out = append(out, string(b))
	}
}

func TestStreamStartsWithThePromptFilterChunkAndEndsWithUsage(t *testing.T) {
	r := newResource(t, testKey)
	p := newTestProvider(t, r, Config{APIKey: testKey})
	resp, err := p.ChatCompletion(context.Background(), &provider.Request{Body: chatBody("my-gpt4o", "hello", true), Model: "my-gpt4o", Stream: true})
	if err != nil {
		t.Fatal(err)
	}
	chunks := drain(t, resp.Stream)
	if len(chunks) < 3 {
		t.Fatalf("chunks %q", chunks)
	}
	if first := chunks[0]; !gjson.Get(first, "prompt_filter_results").IsArray() || len(gjson.Get(first, "choices").Array()) != 0 {
		t.Fatalf("first chunk %s", first)
	}
	if last := chunks[len(chunks)-1]; gjson.Get(last, "usage.completion_tokens").Int() != 12 {
		t.Fatalf("last chunk %s, want the usage", last)
	}
}

func TestAPIVersionsBeforeStreamOptionsStreamWithoutThem(t *testing.T) {
	r := newResource(t, testKey)
	p := newTestProvider(t, r, Config{APIKey: testKey, APIVersion: "2024-06-01"})
	resp, err := p.ChatCompletion(context.Background(), &provider.Request{Body: chatBody("my-gpt4o", "hello", true), Model: "my-gpt4o", Stream: true})
	if err != nil {
		t.Fatal(err)
	}
	if chunks := drain(t, resp.Stream); len(chunks) < 2 {
		t.Fatalf("chunks %q", chunks)
	}
	if _, _, body := r.LastRequest(); gjson.GetBytes(body, "stream_options").Exists() {
		t.Fatalf("sent %s", body)
	}
}

func TestEmbeddingsPassThroughToTheDeployment(t *testing.T) {
	r := newResource(t, testKey)
	p := newTestProvider(t, r, Config{APIKey: testKey})
	body := `{"model":"my-embed","input":["first text","second text"],"dimensions":8}`
	resp, err := p.ChatCompletion(context.Background(), &provider.Request{Surface: provider.SurfaceEmbeddings, Body: []byte(body), Model: "my-embed"})
	if err != nil {
		t.Fatal(err)
	}
	if path, _, got := r.LastRequest(); path != "/openai/deployments/my-embed/embeddings" || string(got) != body {
		t.Fatalf("request went to %s with %s", path, got)
	}
	data := gjson.GetBytes(resp.Body, "data").Array()
	if len(data) != 2 || len(data[1].Get("embedding").Array()) != 8 || gjson.GetBytes(resp.Body, "usage.prompt_tokens").Int() == 0 {
		t.Fatalf("answer %s", resp.Body)
	}
}

func TestResponsesGoToTheV1EndpointAndStreamTheirEvents(t *testing.T) {
	r := newResource(t, testKey)
	p := newTestProvider(t, r, Config{APIKey: testKey})
	resp, err := p.ChatCompletion(context.Background(), &provider.Request{Surface: provider.SurfaceResponses,
		Body: []byte(`{"model":"my-gpt4o","input":"hello there"}`), Model: "my-gpt4o"})
	if err != nil {
		t.Fatal(err)
	}
	if path, _, _ := r.LastRequest(); path != "/openai/v1/responses" || r.lastQuery() != "" {
		t.Fatalf("request went to %s?%s", path, r.lastQuery())
	}
	if gjson.GetBytes(resp.Body, "status").String() != "completed" ||
		!strings.HasPrefix(gjson.GetBytes(resp.Body, "output.0.content.0.text").String(), "Simulated answer to: hello there") {
		t.Fatalf("answer %s", resp.Body)
	}

	resp, err = p.ChatCompletion(context.Background(), &provider.Request{Surface: provider.SurfaceResponses, Stream: true,
		Body: []byte(`{"model":"my-gpt4o","input":"hello there","stream":true}`), Model: "my-gpt4o"})
	if err != nil {
		t.Fatal(err)
	}
	events := drain(t, resp.Stream)
	if len(events) < 4 || gjson.Get(events[0], "type").String() != "response.created" ||
		gjson.Get(events[len(events)-1], "type").String() != "response.completed" {
		t.Fatalf("events %q", events)
	}
}

func TestContentFilteredPromptIs400ContentFilter(t *testing.T) {
	r := newResource(t, testKey)
	p := newTestProvider(t, r, Config{APIKey: testKey})
	_, err := p.ChatCompletion(context.Background(), &provider.Request{Body: chatBody("my-gpt4o", "SIM_AZURE_FILTER_PROMPT", false), Model: "my-gpt4o"})
	e := api.FromError(err)
	if e.Status != 400 || e.Code != "content_filter" || e.Param != "prompt" || !strings.Contains(e.Message, "violence medium") {
		t.Fatalf("error %+v", e)
	}
}

func TestContentFilteredAnswerEndsWithFinishReasonContentFilter(t *testing.T) {
	r := newResource(t, testKey)
	p := newTestProvider(t, r, Config{APIKey: testKey})
	resp, err := p.ChatCompletion(context.Background(), &provider.Request{Body: chatBody("my-gpt4o", "SIM_AZURE_FILTER_ANSWER", false), Model: "my-gpt4o"})
	if err != nil {
		t.Fatal(err)
	}
	if gjson.GetBytes(resp.Body, "choices.0.finish_reason").String() != "content_filter" ||
		!gjson.GetBytes(resp.Body, "choices.0.content_filter_results.violence.filtered").Bool() {
		t.Fatalf("answer %s", resp.Body)
	}
}

func TestConfigurationErrorsAreTheGateways(t *testing.T) {
	r := newResource(t, testKey)
	tests := []struct {
		name     string
		cfg      Config
		model    string
		status   int
		code     string
		inMsg    string
		upstream int
	}{
		{"unknown api-version", Config{APIKey: testKey, APIVersion: "2099-01-01"}, "my-gpt4o", 502, "unsupported_api_version", "api_version", 400},
		{"base_url not the resource root", Config{APIKey: testKey, BaseURL: r.url + "/somewhere"}, "my-gpt4o", 502, "upstream_not_found", "base_url", 404},
		{"no such deployment", Config{APIKey: testKey}, "not-deployed", 404, "model_not_found", "no such deployment", 404},
		{"wrong key", Config{APIKey: "wrong-key"}, "my-gpt4o", 502, provider.CodeAuthFailed, "Access denied", 401},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := newTestProvider(t, r, tt.cfg)
			_, err := p.ChatCompletion(context.Background(), &provider.Request{Body: chatBody(tt.model, "hi", false), Model: tt.model})
			var e *api.Error
			if !errors.As(err, &e) {
				t.Fatalf("err %v", err)
			}
			if e.Status != tt.status || e.Code != tt.code || e.UpstreamStatus != tt.upstream || !strings.Contains(e.Message, tt.inMsg) {
				t.Fatalf("error %+v", e)
			}
			if strings.Contains(e.Message, "wrong-key") {
				t.Fatalf("message %q carries the key", e.Message)
			}
		})
	}
}
