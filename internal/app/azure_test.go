package app_test

import (
	"errors"
	"net/http"
	"strings"
	"testing"

	"github.com/openai/openai-go/v3"
	"github.com/openai/openai-go/v3/option"
	"github.com/tidwall/gjson"

	"github.com/edge-agent/edge-agent/internal/config"
	"github.com/edge-agent/edge-agent/internal/provider/simulated"
)

// Azure OpenAI behind the gateway, as an OpenAI SDK client sees it: the
// simulated Azure resource checks the deployment path, the api-version and
// the api-key, and its content filter answers for Azure's trigger words.

const azureTestKey = "azure-resource-key-0123456789"

// azureGateway is a gateway whose model azure-gpt-4o is the Azure
// deployment my-gpt4o of a simulated resource.
func azureGateway(t *testing.T, apiVersion string) (*sim, *gw) {
	t.Helper()
	s := startSim(t, simulated.Options{APIKey: azureTestKey, Words: 12, Models: []string{"my-gpt4o"}})
	cfg := config.Default()
	cfg.MetricsPort = 0
	cfg.Providers = []config.Provider{{Name: "azure", Type: "azure", BaseURL: s.URL, APIKey: azureTestKey, APIVersion: apiVersion}}
	cfg.Models = []config.Model{{Name: "azure-gpt-4o", Deployments: []config.Deployment{{Provider: "azure", Model: "my-gpt4o"}}}}
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	return s, startGateway(t, cfg)
}

func TestAzureChatAndStreamThroughTheGatewayWithTheOpenAISDK(t *testing.T) {
	s, g := azureGateway(t, "")
	client := sdkClient(g)

	var raw *http.Response
	cc, err := client.Chat.Completions.New(t.Context(), openai.ChatCompletionNewParams{Model: "azure-gpt-4o",
		Messages: []openai.ChatCompletionMessageParamUnion{openai.UserMessage("azure chat")}}, option.WithResponseInto(&raw))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(cc.Choices[0].Message.Content, "Simulated answer to: azure chat") || cc.Choices[0].FinishReason != "stop" ||
		cc.Usage.CompletionTokens != 12 {
		t.Fatalf("%s", cc.RawJSON())
	}
	if raw.Header.Get("X-Edge-Provider") != "azure/my-gpt4o" {
		t.Fatalf("provider header %q", raw.Header.Get("X-Edge-Provider"))
	}
	path, h, body := s.LastRequest()
	if path != "/openai/deployments/my-gpt4o/chat/completions" || h.Get("Api-Key") != azureTestKey || h.Get("Authorization") != "" ||
		gjson.GetBytes(body, "model").String() != "my-gpt4o" {
		t.Fatalf("upstream request %s %v %s", path, h, body)
	}
	// Azure's prompt filter results reach the client as Azure sent them.
	if !gjson.Get(cc.RawJSON(), "prompt_filter_results.0.content_filter_results").IsObject() {
		t.Fatalf("no prompt_filter_results in %s", cc.RawJSON())
	}

	stream := client.Chat.Completions.NewStreaming(t.Context(), openai.ChatCompletionNewParams{Model: "azure-gpt-4o",
		Messages:      []openai.ChatCompletionMessageParamUnion{openai.UserMessage("azure stream")},
		StreamOptions: openai.ChatCompletionStreamOptionsParam{IncludeUsage: openai.Bool(true)}})
	var acc openai.ChatCompletionAccumulator
	for stream.Next() {
		if !acc.AddChunk(stream.Current()) {
			t.Fatalf("accumulator rejected %s", stream.Current().RawJSON())
		}
	}
	if err := stream.Err(); err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(acc.Choices[0].Message.Content, "Simulated answer to: azure stream") || acc.Choices[0].FinishReason != "stop" ||
		acc.Usage.CompletionTokens != 12 {
		t.Fatalf("%+v", acc.ChatCompletion)
	}
}

func TestAzureV1EndpointThroughTheGateway(t *testing.T) {
	s, g := azureGateway(t, "v1")
	client := sdkClient(g)
	cc, err := client.Chat.Completions.New(t.Context(), openai.ChatCompletionNewParams{Model: "azure-gpt-4o",
		Messages: []openai.ChatCompletionMessageParamUnion{openai.UserMessage("azure v1")}})
	if err != nil {
		t.Fatal(err)
	}
	if path, _, _ := s.LastRequest(); path != "/openai/v1/chat/completions" || cc.Choices[0].FinishReason != "stop" {
		t.Fatalf("path %s, answer %s", path, cc.RawJSON())
	}
}

// Every finish reason Azure documents for chat, as the chat client and as
// the Messages (Anthropic) client see it.
func TestAzureFinishReasonsOnEverySurface(t *testing.T) {
	_, g := azureGateway(t, "")
	client := sdkClient(g)
	weather := `"tools":[{"type":"function","function":{"name":"get_weather","parameters":{"type":"object","properties":{"query":{"type":"string"}}}}}]`
	tests := []struct {
		name, prompt, extra string
		chatFinish, stopWhy string
	}{
		{"stop", "say hello", "", "stop", "end_turn"},
		{"length", "a long answer", `"max_tokens":3`, "length", "max_tokens"},
		{"tool_calls", "weather in Paris", weather, "tool_calls", "tool_use"},
		{"content_filter", "SIM_AZURE_FILTER_ANSWER", "", "content_filter", "refusal"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var extra []string
			if tt.extra != "" {
				extra = append(extra, tt.extra)
			}
			var cc openai.ChatCompletion
			err := client.Post(t.Context(), "chat/completions", []byte(chat("azure-gpt-4o", tt.prompt, extra...)), &cc)
			if err != nil {
				t.Fatal(err)
			}
			if string(cc.Choices[0].FinishReason) != tt.chatFinish {
				t.Fatalf("chat finish_reason %q, want %q: %s", cc.Choices[0].FinishReason, tt.chatFinish, cc.RawJSON())
			}

			msg := `{"model":"azure-gpt-4o","max_tokens":100,"messages":[{"role":"user","content":` + quote(tt.prompt) + `}]`
			switch tt.name {
			case "length":
				msg = `{"model":"azure-gpt-4o","max_tokens":3,"messages":[{"role":"user","content":` + quote(tt.prompt) + `}]`
			case "tool_calls":
				msg += `,"tools":[{"name":"get_weather","input_schema":{"type":"object","properties":{"query":{"type":"string"}}}}]`
			}
			resp, body := postMessages(t, g.URL, msg+"}", "anthropic-version: 2023-06-01")
			if resp.StatusCode != http.StatusOK {
				t.Fatalf("messages: %d %s", resp.StatusCode, body)
			}
			if got := gjson.GetBytes(body, "stop_reason").String(); got != tt.stopWhy {
				t.Fatalf("messages stop_reason %q, want %q: %s", got, tt.stopWhy, body)
			}
		})
	}
}

func TestAzureContentFilterThroughTheGateway(t *testing.T) {
	s, g := azureGateway(t, "")
	client := sdkClient(g)

	t.Run("a refused prompt is a 400 content_filter", func(t *testing.T) {
		_, err := client.Chat.Completions.New(t.Context(), openai.ChatCompletionNewParams{Model: "azure-gpt-4o",
			Messages: []openai.ChatCompletionMessageParamUnion{openai.UserMessage("SIM_AZURE_FILTER_PROMPT")}})
		var apiErr *openai.Error
		if !errors.As(err, &apiErr) {
			t.Fatalf("err %v", err)
		}
		if apiErr.StatusCode != http.StatusBadRequest || apiErr.Code != "content_filter" || apiErr.Param != "prompt" ||
			apiErr.Type != "invalid_request_error" || !strings.Contains(apiErr.Message, "violence medium") {
			t.Fatalf("error %d %s", apiErr.StatusCode, apiErr.RawJSON())
		}
		resp, body := postMessages(t, g.URL, `{"model":"azure-gpt-4o","max_tokens":10,"messages":[{"role":"user","content":"SIM_AZURE_FILTER_PROMPT"}]}`,
			"anthropic-version: 2023-06-01")
		if resp.StatusCode != http.StatusBadRequest || gjson.GetBytes(body, "type").String() != "error" ||
			gjson.GetBytes(body, "error.type").String() != "invalid_request_error" {
			t.Fatalf("messages: %d %s", resp.StatusCode, body)
		}
	})

	t.Run("a filtered answer is never cached", func(t *testing.T) {
		body := chat("azure-gpt-4o", "SIM_AZURE_FILTER_ANSWER again")
		before := s.Calls()
		for range 2 {
			resp, b := post(t, g.URL, body)
			if resp.StatusCode != http.StatusOK || gjson.GetBytes(b, "choices.0.finish_reason").String() != "content_filter" {
				t.Fatalf("%d %s", resp.StatusCode, b)
			}
			if resp.Header.Get("X-Cache-Status") == "HIT" {
				t.Fatal("a content-filtered answer was served from the cache")
			}
		}
		if s.Calls()-before != 2 {
			t.Fatalf("%d upstream calls for two filtered requests, want 2", s.Calls()-before)
		}
	})

	t.Run("a filtered stream ends with content_filter", func(t *testing.T) {
		stream := client.Chat.Completions.NewStreaming(t.Context(), openai.ChatCompletionNewParams{Model: "azure-gpt-4o",
			Messages: []openai.ChatCompletionMessageParamUnion{openai.UserMessage("SIM_AZURE_FILTER_ANSWER stream")}})
		var acc openai.ChatCompletionAccumulator
		for stream.Next() {
			acc.AddChunk(stream.Current())
		}
		if err := stream.Err(); err != nil {
			t.Fatal(err)
		}
		if acc.Choices[0].FinishReason != "content_filter" || acc.Choices[0].Message.Content == "" {
			t.Fatalf("%+v", acc.ChatCompletion)
		}
	})
}

func TestAzureWrongAPIVersionIsTheGatewaysError(t *testing.T) {
	_, g := azureGateway(t, "2023-01-01")
	client := sdkClient(g)
	_, err := client.Chat.Completions.New(t.Context(), openai.ChatCompletionNewParams{Model: "azure-gpt-4o",
		Messages: []openai.ChatCompletionMessageParamUnion{openai.UserMessage("hi")}})
	var apiErr *openai.Error
	if !errors.As(err, &apiErr) {
		t.Fatalf("err %v", err)
	}
	if apiErr.StatusCode != http.StatusBadGateway || apiErr.Code != "unsupported_api_version" || !strings.Contains(apiErr.Message, "api_version") {
		t.Fatalf("error %d %s", apiErr.StatusCode, apiErr.RawJSON())
	}
	if strings.Contains(apiErr.RawJSON(), azureTestKey) || strings.Contains(g.Logs.String(), azureTestKey) {
		t.Fatal("the Azure key leaked into the error or the logs")
	}
}
