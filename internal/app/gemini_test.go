package app_test

import (
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"errors"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/openai/openai-go/v3"
	"github.com/openai/openai-go/v3/option"
	"github.com/tidwall/gjson"

	"github.com/edge-agent/edge-agent/internal/config"
	"github.com/edge-agent/edge-agent/internal/provider/simulated"
)

// Google's Gemini API behind the gateway: an OpenAI client sees OpenAI's
// API whether the model runs on AI Studio or Vertex AI.

const geminiTestKey = "AIzaSyGATEWAYTEST00000000000000000000000"

// geminiConfig is the simulated configuration with the gemini provider's
// key set to geminiTestKey, and extra providers.
func geminiConfig(t *testing.T, s *sim, extra ...config.Provider) config.Config {
	t.Helper()
	cfg := simConfig(s) // its gemini provider is AI Studio at s
	found := false
	for i := range cfg.Providers {
		if p := &cfg.Providers[i]; p.Name == "gemini" && p.Type == "gemini" && p.BaseURL == s.URL {
			p.APIKey, found = geminiTestKey, true
		}
	}
	if !found {
		t.Fatalf("the demo configuration has no gemini provider: %+v", cfg.Providers)
	}
	cfg.Providers = append(cfg.Providers, extra...)
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	return cfg
}

func TestGeminiServesOpenAIClientsThroughTheGateway(t *testing.T) {
	s := startSim(t, simulated.Options{APIKey: geminiTestKey, Words: 9})
	g := startGateway(t, geminiConfig(t, s))
	client := sdkClient(g)

	t.Run("chat", func(t *testing.T) {
		var raw *http.Response
		cc, err := client.Chat.Completions.New(t.Context(), openai.ChatCompletionNewParams{Model: "gemini-2.5-flash",
			Messages: []openai.ChatCompletionMessageParamUnion{openai.SystemMessage("be brief"), openai.UserMessage("gemini chat SIM_CACHE_READ_2")}},
			option.WithResponseInto(&raw))
		if err != nil {
			t.Fatal(err)
		}
		if !strings.HasPrefix(cc.Choices[0].Message.Content, "Simulated answer to: gemini chat") || cc.Choices[0].FinishReason != "stop" ||
			cc.Usage.CompletionTokens != 9 || cc.Usage.PromptTokensDetails.CachedTokens != 2 {
			t.Fatalf("%s", cc.RawJSON())
		}
		if raw.Header.Get("X-Edge-Provider") != "gemini" {
			t.Fatalf("headers %v", raw.Header)
		}
		path, h, body := s.LastRequest()
		if path != "/v1beta/models/gemini-2.5-flash:generateContent" || h.Get("X-Goog-Api-Key") != geminiTestKey ||
			gjson.GetBytes(body, "systemInstruction.parts.0.text").Str != "be brief" {
			t.Fatalf("upstream call %s %v %s", path, h, body)
		}
	})

	t.Run("stream", func(t *testing.T) {
		stream := client.Chat.Completions.NewStreaming(t.Context(), openai.ChatCompletionNewParams{Model: "gemini/gemini-2.5-flash",
			Messages:      []openai.ChatCompletionMessageParamUnion{openai.UserMessage("gemini stream")},
			StreamOptions: openai.ChatCompletionStreamOptionsParam{IncludeUsage: openai.Bool(true)}})
		var acc openai.ChatCompletionAccumulator
		chunks := 0
		for stream.Next() {
			chunks++
			if !acc.AddChunk(stream.Current()) {
				t.Fatalf("accumulator rejected %s", stream.Current().RawJSON())
			}
		}
		if err := stream.Err(); err != nil {
			t.Fatal(err)
		}
		if chunks < 4 || !strings.HasPrefix(acc.Choices[0].Message.Content, "Simulated answer to: gemini stream") ||
			acc.Choices[0].FinishReason != "stop" || acc.Usage.CompletionTokens != 9 {
			t.Fatalf("%d chunks: %+v", chunks, acc.ChatCompletion)
		}
		if path, _, _ := s.LastRequest(); path != "/v1beta/models/gemini-2.5-flash:streamGenerateContent" {
			t.Fatalf("path %s", path)
		}
	})

	t.Run("tools", func(t *testing.T) {
		cc, err := client.Chat.Completions.New(t.Context(), openai.ChatCompletionNewParams{Model: "gemini-2.5-flash", Tools: sdkWeather,
			Messages: []openai.ChatCompletionMessageParamUnion{openai.UserMessage("weather in Paris")}})
		if err != nil {
			t.Fatal(err)
		}
		tc := cc.Choices[0].Message.ToolCalls
		if cc.Choices[0].FinishReason != "tool_calls" || len(tc) != 1 || tc[0].Function.Name != "get_weather" ||
			!gjson.Get(tc[0].Function.Arguments, "query").Exists() || tc[0].ID == "" {
			t.Fatalf("%s", cc.RawJSON())
		}
		_, _, body := s.LastRequest()
		if gjson.GetBytes(body, "tools.0.functionDeclarations.0.name").Str != "get_weather" {
			t.Fatalf("upstream body %s", body)
		}
		// The tool's result goes back and the model answers in text.
		cc2, err := client.Chat.Completions.New(t.Context(), openai.ChatCompletionNewParams{Model: "gemini-2.5-flash", Tools: sdkWeather,
			Messages: []openai.ChatCompletionMessageParamUnion{openai.UserMessage("weather in Paris"), cc.Choices[0].Message.ToParam(),
				openai.ToolMessage(`{"sky":"clear"}`, tc[0].ID)}})
		if err != nil {
			t.Fatal(err)
		}
		_, _, body = s.LastRequest()
		if cc2.Choices[0].FinishReason != "stop" || gjson.GetBytes(body, "contents.2.parts.0.functionResponse.response.sky").Str != "clear" {
			t.Fatalf("answer %s\nupstream body %s", cc2.RawJSON(), body)
		}
	})

	t.Run("streamed tool call", func(t *testing.T) {
		stream := client.Chat.Completions.NewStreaming(t.Context(), openai.ChatCompletionNewParams{Model: "gemini-2.5-flash", Tools: sdkWeather,
			Messages: []openai.ChatCompletionMessageParamUnion{openai.UserMessage("weather in Rome")}})
		var acc openai.ChatCompletionAccumulator
		for stream.Next() {
			acc.AddChunk(stream.Current())
		}
		if err := stream.Err(); err != nil {
			t.Fatal(err)
		}
		tc := acc.Choices[0].Message.ToolCalls
		if acc.Choices[0].FinishReason != "tool_calls" || len(tc) != 1 || tc[0].Function.Name != "get_weather" || !json.Valid([]byte(tc[0].Function.Arguments)) {
			t.Fatalf("%+v", acc.ChatCompletion)
		}
	})

	t.Run("error", func(t *testing.T) {
		_, err := client.Chat.Completions.New(t.Context(), openai.ChatCompletionNewParams{Model: "gemini-2.5-flash",
			Messages: []openai.ChatCompletionMessageParamUnion{openai.UserMessage("SIM_ERROR_400 please")}})
		var apiErr *openai.Error
		if !errors.As(err, &apiErr) || apiErr.StatusCode != http.StatusBadRequest || apiErr.Code != "invalid_argument" ||
			!strings.Contains(apiErr.Message, "SIM_ERROR_400") {
			t.Fatalf("got %v", err)
		}
	})

	t.Run("safety", func(t *testing.T) {
		cc, err := client.Chat.Completions.New(t.Context(), openai.ChatCompletionNewParams{Model: "gemini-2.5-flash",
			Messages: []openai.ChatCompletionMessageParamUnion{openai.UserMessage("SIM_SAFETY")}})
		if err != nil {
			t.Fatal(err)
		}
		if cc.Choices[0].FinishReason != "content_filter" || cc.Choices[0].Message.Content != "" {
			t.Fatalf("%s", cc.RawJSON())
		}
	})

	t.Run("a cut stream is an error and is not cached", func(t *testing.T) {
		params := openai.ChatCompletionNewParams{Model: "gemini-2.5-flash",
			Messages: []openai.ChatCompletionMessageParamUnion{openai.UserMessage("gemini SIM_CUT_STREAM")}}
		for range 2 {
			calls := s.Calls()
			stream := client.Chat.Completions.NewStreaming(t.Context(), params)
			for stream.Next() {
			}
			if stream.Err() == nil {
				t.Fatal("a cut stream ended without an error")
			}
			if s.Calls() != calls+1 {
				t.Fatalf("upstream calls %d -> %d: the half answer was served from the cache", calls, s.Calls())
			}
		}
	})

	t.Run("caching", func(t *testing.T) {
		params := openai.ChatCompletionNewParams{Model: "gemini-2.5-flash",
			Messages: []openai.ChatCompletionMessageParamUnion{openai.UserMessage("gemini cache me")}}
		var first, second *http.Response
		a, err := client.Chat.Completions.New(t.Context(), params, option.WithResponseInto(&first))
		if err != nil {
			t.Fatal(err)
		}
		calls := s.Calls()
		b, err := client.Chat.Completions.New(t.Context(), params, option.WithResponseInto(&second))
		if err != nil {
			t.Fatal(err)
		}
		if first.Header.Get("X-Cache-Status") != "MISS" || second.Header.Get("X-Cache-Status") != "HIT" || s.Calls() != calls ||
			a.Choices[0].Message.Content != b.Choices[0].Message.Content {
			t.Fatalf("first %s, second %s, upstream calls %d -> %d", first.Header.Get("X-Cache-Status"),
				second.Header.Get("X-Cache-Status"), calls, s.Calls())
		}
	})
}

func TestGeminiWithABadKeyIsTheGatewaysFailureAndTheKeyStaysSecret(t *testing.T) {
	s := startSim(t, simulated.Options{APIKey: "AIzaSyTHEREALKEY000000000000000000000000"})
	cfg := geminiConfig(t, s)
	g := startGateway(t, cfg)
	resp, body := post(t, g.URL, chat("gemini-2.5-flash", "hi"))
	if resp.StatusCode != http.StatusBadGateway || gjson.GetBytes(body, "error.code").Str != "upstream_auth_failed" {
		t.Fatalf("%d %s", resp.StatusCode, body)
	}
	if strings.Contains(string(body), geminiTestKey) || strings.Contains(g.Logs.String(), geminiTestKey) {
		t.Fatalf("the key leaks: %s\n%s", body, g.Logs.String())
	}
}

// Not parallel: it sets GOOGLE_APPLICATION_CREDENTIALS.
func TestVertexThroughTheGatewayFetchesItsTokenWithApplicationDefaultCredentials(t *testing.T) {
	s := startSim(t, simulated.Options{APIKey: "only-issued-tokens"})
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	der, _ := x509.MarshalPKCS8PrivateKey(key)
	sa, _ := json.Marshal(map[string]string{"type": "service_account", "project_id": "proj", "private_key_id": "k1",
		"private_key":  string(pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der})),
		"client_email": "edge@proj.iam.gserviceaccount.com", "token_uri": s.URL + "/oauth2/token"})
	path := filepath.Join(t.TempDir(), "sa.json")
	if err := os.WriteFile(path, sa, 0o600); err != nil {
		t.Fatal(err)
	}
	s.SetOptions(simulated.Options{APIKey: "only-issued-tokens", GoogleTokenKey: &key.PublicKey})
	t.Setenv("GOOGLE_APPLICATION_CREDENTIALS", path)

	cfg := geminiConfig(t, s, config.Provider{Name: "vertex", Type: "vertex", BaseURL: s.URL, Project: "proj", Location: "us-east5"})
	g := startGateway(t, cfg)
	for _, prompt := range []string{"vertex one", "vertex two"} {
		resp, body := post(t, g.URL, chat("vertex/gemini-2.5-pro", prompt))
		if resp.StatusCode != http.StatusOK || !strings.Contains(gjson.GetBytes(body, "choices.0.message.content").Str, prompt) {
			t.Fatalf("%d %s", resp.StatusCode, body)
		}
	}
	p, h, _ := s.LastRequest()
	if p != "/v1/projects/proj/locations/us-east5/publishers/google/models/gemini-2.5-pro:generateContent" ||
		!strings.HasPrefix(h.Get("Authorization"), "Bearer ya29.sim-1-") {
		t.Fatalf("upstream call %s %v", p, h)
	}
	if n := s.TokenRequests(); n != 1 {
		t.Fatalf("%d token fetches, want 1 (cached until it expires)", n)
	}
}
