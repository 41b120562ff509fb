package app_test

import (
	"errors"
	"net/http"
	"strconv"
	"strings"
	"testing"

	"github.com/openai/openai-go/v3"
	"github.com/openai/openai-go/v3/option"
	"github.com/tidwall/gjson"

	"github.com/edge-agent/edge-agent/internal/config"
	"github.com/edge-agent/edge-agent/internal/provider/simulated"
)

// The OpenAI Go SDK talks to the gateway; the gateway talks Converse and
// ConverseStream to the simulated Bedrock endpoint, which checks every
// request's SigV4 signature.

const bedrockClaude = "anthropic.claude-3-5-sonnet-20241022-v2:0"

// bedrockGateway is a gateway with a bedrock provider "aws" serving the
// model "claude-bedrock", signing with secret.
func bedrockGateway(t *testing.T, secret string) (*gw, *sim) {
	t.Helper()
	s := startSim(t, simulated.Options{})
	cfg := simConfig(s)
	cfg.Providers = append(cfg.Providers, config.Provider{Name: "aws", Type: "bedrock", Region: "us-west-2", BaseURL: s.URL,
		AWSAccessKeyID: simulated.BedrockAccessKeyID, AWSSecretAccessKey: secret})
	cfg.Models = append(cfg.Models, config.Model{Name: "claude-bedrock",
		Deployments: []config.Deployment{{Provider: "aws", Model: bedrockClaude}}})
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	return startGateway(t, cfg), s
}

func TestBedrockChatThroughTheGatewayWithTheOpenAISDK(t *testing.T) {
	g, s := bedrockGateway(t, simulated.BedrockSecretAccessKey)
	var raw *http.Response
	client := sdkClient(g)
	cc, err := client.Chat.Completions.New(t.Context(), openai.ChatCompletionNewParams{Model: "claude-bedrock",
		Messages:  []openai.ChatCompletionMessageParamUnion{openai.SystemMessage("be brief"), openai.UserMessage("bedrock sdk chat")},
		MaxTokens: openai.Int(200)}, option.WithResponseInto(&raw))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(cc.Choices[0].Message.Content, "Simulated answer to: bedrock sdk chat") || cc.Choices[0].FinishReason != "stop" ||
		cc.Usage.CompletionTokens == 0 || cc.Usage.TotalTokens != cc.Usage.PromptTokens+cc.Usage.CompletionTokens {
		t.Fatalf("%s", cc.RawJSON())
	}
	if raw.Header.Get("X-Edge-Provider") != "aws/"+bedrockClaude {
		t.Errorf("X-Edge-Provider %q", raw.Header.Get("X-Edge-Provider"))
	}
	path, h, _ := s.LastRequest()
	if path != "/model/"+bedrockClaude+"/converse" || !strings.Contains(h.Get("Authorization"), "/us-west-2/bedrock/aws4_request") {
		t.Errorf("upstream %s, Authorization %q", path, h.Get("Authorization"))
	}
	if h.Get("Authorization") == "Bearer sk-unused" || strings.Contains(h.Get("Authorization"), "sk-unused") {
		t.Error("the client's key went upstream")
	}
}

func TestBedrockStreamThroughTheGatewayWithTheOpenAISDK(t *testing.T) {
	g, s := bedrockGateway(t, simulated.BedrockSecretAccessKey)
	client := sdkClient(g)
	stream := client.Chat.Completions.NewStreaming(t.Context(), openai.ChatCompletionNewParams{Model: "claude-bedrock",
		Messages:      []openai.ChatCompletionMessageParamUnion{openai.UserMessage("bedrock sdk stream SIM_WORDS_12")},
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
	if chunks < 4 || len(strings.Fields(acc.Choices[0].Message.Content)) != 12 || acc.Choices[0].FinishReason != "stop" ||
		acc.Usage.CompletionTokens != 12 {
		t.Fatalf("%d chunks: %+v", chunks, acc.ChatCompletion)
	}
	if path, _, _ := s.LastRequest(); path != "/model/"+bedrockClaude+"/converse-stream" {
		t.Errorf("upstream %s", path)
	}
}

func TestBedrockToolCallsThroughTheGatewayWithTheOpenAISDK(t *testing.T) {
	g, _ := bedrockGateway(t, simulated.BedrockSecretAccessKey)
	client := sdkClient(g)
	p := openai.ChatCompletionNewParams{Model: "claude-bedrock", Tools: sdkWeather,
		Messages: []openai.ChatCompletionMessageParamUnion{openai.UserMessage("Weather in Lyon?")}}
	cc, err := client.Chat.Completions.New(t.Context(), p)
	if err != nil {
		t.Fatal(err)
	}
	calls := cc.Choices[0].Message.ToolCalls
	if cc.Choices[0].FinishReason != "tool_calls" || len(calls) != 1 || calls[0].Function.Name != "get_weather" ||
		!gjson.Get(calls[0].Function.Arguments, "query").Exists() {
		t.Fatalf("%s", cc.RawJSON())
	}
	p.Messages = append(p.Messages, cc.Choices[0].Message.ToParam(), openai.ToolMessage("Sunny", calls[0].ID))
	cc, err = client.Chat.Completions.New(t.Context(), p)
	if err != nil {
		t.Fatalf("the tool result turn: %v", err)
	}
	if cc.Choices[0].FinishReason != "stop" || cc.Choices[0].Message.Content == "" {
		t.Fatalf("%s", cc.RawJSON())
	}

	// Streamed, the call arrives in pieces the SDK puts back together.
	stream := client.Chat.Completions.NewStreaming(t.Context(), openai.ChatCompletionNewParams{Model: "claude-bedrock", Tools: sdkWeather,
		Messages: []openai.ChatCompletionMessageParamUnion{openai.UserMessage("Weather in Nice?")}})
	var acc openai.ChatCompletionAccumulator
	for stream.Next() {
		acc.AddChunk(stream.Current())
	}
	if err := stream.Err(); err != nil {
		t.Fatal(err)
	}
	if tc := acc.Choices[0].Message.ToolCalls; len(tc) != 1 || tc[0].ID == "" || !gjson.Valid(tc[0].Function.Arguments) ||
		acc.Choices[0].FinishReason != "tool_calls" {
		t.Fatalf("%+v", acc.ChatCompletion)
	}
}

func TestBedrockErrorsReachTheSDKInOpenAIShape(t *testing.T) {
	g, _ := bedrockGateway(t, simulated.BedrockSecretAccessKey)
	client := sdkClient(g)
	_, err := client.Chat.Completions.New(t.Context(), openai.ChatCompletionNewParams{Model: "claude-bedrock",
		Messages: []openai.ChatCompletionMessageParamUnion{openai.UserMessage("SIM_ERROR_400 please")}})
	var apiErr *openai.Error
	if !errors.As(err, &apiErr) || apiErr.StatusCode != 400 || apiErr.Type != "invalid_request_error" ||
		!strings.Contains(apiErr.Message, "SIM_ERROR_400") {
		t.Fatalf("err = %v", err)
	}
	// Bad input is refused by the adapter before anything is signed.
	_, err = client.Chat.Completions.New(t.Context(), openai.ChatCompletionNewParams{Model: "claude-bedrock",
		Messages: []openai.ChatCompletionMessageParamUnion{openai.UserMessage([]openai.ChatCompletionContentPartUnionParam{
			openai.ImageContentPart(openai.ChatCompletionContentPartImageImageURLParam{URL: "https://example.com/cat.png"})})}})
	if !errors.As(err, &apiErr) || apiErr.StatusCode != 400 || apiErr.Param != "messages[0].content[0].image_url.url" {
		t.Fatalf("err = %v", err)
	}
}

func TestBedrockRefusedSignatureIsTheGatewaysFaultAndHidesTheSecret(t *testing.T) {
	const wrong = "not-the-simulated-secret-0123456789abcdef"
	g, _ := bedrockGateway(t, wrong)
	r, b := post(t, g.URL, chat("claude-bedrock", "hi"))
	if r.StatusCode != http.StatusBadGateway || gjson.GetBytes(b, "error.code").Str != "upstream_auth_failed" ||
		!strings.Contains(gjson.GetBytes(b, "error.message").Str, "InvalidSignatureException") {
		t.Fatalf("%d %s", r.StatusCode, b)
	}
	if strings.Contains(string(b), wrong) || strings.Contains(g.Logs.String(), wrong) {
		t.Error("the secret key reached the client or the logs")
	}
}

func TestBedrockAnswersAreCachedAndPromptCacheTokensPriced(t *testing.T) {
	g, s := bedrockGateway(t, simulated.BedrockSecretAccessKey)
	body := chat("claude-bedrock", "cache me SIM_WORDS_1000 SIM_CACHE_READ_200000 SIM_CACHE_WRITE_40000")
	miss, b := post(t, g.URL, body)
	if miss.StatusCode != 200 || miss.Header.Get("X-Cache-Status") != "MISS" {
		t.Fatalf("%d %s %s", miss.StatusCode, miss.Header.Get("X-Cache-Status"), b)
	}
	// anthropic.claude-3-5-sonnet-20241022-v2:0 on Bedrock: input 3.00,
	// cache read 0.30, 5-minute cache write 3.75, output 15.00 per million.
	prompt := gjson.GetBytes(b, "usage.prompt_tokens").Int() - 240_000
	want := (float64(prompt)*3 + 200_000*0.30 + 40_000*3.75 + 1000*15) / 1e6
	got, err := strconv.ParseFloat(gjson.GetBytes(b, "metadata.cost_usd").Str, 64)
	if err != nil || got < want*0.999 || got > want*1.001 {
		t.Errorf("cost_usd %s, want %.6f (input %d)", gjson.GetBytes(b, "metadata.cost_usd").Str, want, prompt)
	}
	calls := s.Calls()
	hit, hb := post(t, g.URL, body)
	if hit.StatusCode != 200 || hit.Header.Get("X-Cache-Status") != "HIT" || s.Calls() != calls {
		t.Fatalf("second call: %d %s, %d upstream calls", hit.StatusCode, hit.Header.Get("X-Cache-Status"), s.Calls()-calls)
	}
	if gjson.GetBytes(hb, "choices.0.message.content").Str != gjson.GetBytes(b, "choices.0.message.content").Str {
		t.Error("the cached answer differs")
	}
}
