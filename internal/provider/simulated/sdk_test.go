package simulated

import (
	"errors"
	"net/http"
	"strings"
	"testing"

	"github.com/openai/openai-go/v3"
	"github.com/openai/openai-go/v3/option"
	"github.com/openai/openai-go/v3/shared"
	"github.com/tidwall/gjson"
)

// The official SDK is the reference client: if it parses our answers, so
// will the clients the gateway serves.
func TestOfficialOpenAISDKUnderstandsTheServer(t *testing.T) {
	_, ts := start(t, Options{APIKey: "x"})
	client := openai.NewClient(
		option.WithBaseURL(ts.URL+"/v1/"),
		option.WithAPIKey("x"),
		option.WithHTTPClient(ts.Client()),
		option.WithMaxRetries(0),
	)
	params := openai.ChatCompletionNewParams{
		Model:    "gpt-4o-mini",
		Messages: []openai.ChatCompletionMessageParamUnion{openai.UserMessage("what does the gateway do?")},
	}

	t.Run("chat", func(t *testing.T) {
		cc, err := client.Chat.Completions.New(t.Context(), params)
		if err != nil {
			t.Fatal(err)
		}
		if len(cc.Choices) != 1 || !strings.HasPrefix(cc.Choices[0].Message.Content, "Simulated answer to: what does the gateway do?") ||
			cc.Choices[0].FinishReason != "stop" || cc.Usage.CompletionTokens != DefaultWords || cc.Model != "gpt-4o-mini" {
			t.Errorf("completion %+v", cc)
		}
	})

	t.Run("stream", func(t *testing.T) {
		want, err := client.Chat.Completions.New(t.Context(), params)
		if err != nil {
			t.Fatal(err)
		}
		p := params
		p.StreamOptions = openai.ChatCompletionStreamOptionsParam{IncludeUsage: openai.Bool(true)}
		stream := client.Chat.Completions.NewStreaming(t.Context(), p)
		var acc openai.ChatCompletionAccumulator
		for stream.Next() {
			if !acc.AddChunk(stream.Current()) {
				t.Fatalf("accumulator rejected chunk %s", stream.Current().RawJSON())
			}
		}
		if err := stream.Err(); err != nil {
			t.Fatal(err)
		}
		if got := acc.Choices[0].Message.Content; got != want.Choices[0].Message.Content {
			t.Errorf("streamed %q, want %q", got, want.Choices[0].Message.Content)
		}
		if acc.Choices[0].FinishReason != "stop" || acc.Usage.TotalTokens != want.Usage.TotalTokens {
			t.Errorf("finish %q usage %+v", acc.Choices[0].FinishReason, acc.Usage)
		}
	})

	t.Run("streamed tool call", func(t *testing.T) {
		p := params
		p.Messages = []openai.ChatCompletionMessageParamUnion{openai.UserMessage("look it up SIM_TOOL_CALL")}
		p.Tools = []openai.ChatCompletionToolUnionParam{openai.ChatCompletionFunctionTool(shared.FunctionDefinitionParam{Name: "search"})}
		stream := client.Chat.Completions.NewStreaming(t.Context(), p)
		var acc openai.ChatCompletionAccumulator
		var finished []openai.FinishedChatCompletionToolCall
		for stream.Next() {
			acc.AddChunk(stream.Current())
			if tc, ok := acc.JustFinishedToolCall(); ok {
				finished = append(finished, tc)
			}
		}
		if err := stream.Err(); err != nil {
			t.Fatal(err)
		}
		if len(finished) != 1 || finished[0].Name != "search" || gjson.Get(finished[0].Arguments, "query").Str != "look it up SIM_TOOL_CALL" {
			t.Errorf("tool calls %+v", finished)
		}
		if acc.Choices[0].FinishReason != "tool_calls" {
			t.Errorf("finish %q", acc.Choices[0].FinishReason)
		}
	})

	t.Run("rate limit error", func(t *testing.T) {
		p := params
		p.Messages = []openai.ChatCompletionMessageParamUnion{openai.UserMessage("SIM_ERROR_429")}
		_, err := client.Chat.Completions.New(t.Context(), p)
		var apiErr *openai.Error
		if !errors.As(err, &apiErr) || apiErr.StatusCode != http.StatusTooManyRequests || apiErr.Code != "rate_limit_exceeded" {
			t.Errorf("error %v", err)
		}
	})

	t.Run("wrong key", func(t *testing.T) {
		bad := openai.NewClient(option.WithBaseURL(ts.URL+"/v1/"), option.WithAPIKey("y"),
			option.WithHTTPClient(ts.Client()), option.WithMaxRetries(0))
		_, err := bad.Chat.Completions.New(t.Context(), params)
		var apiErr *openai.Error
		if !errors.As(err, &apiErr) || apiErr.StatusCode != http.StatusUnauthorized || apiErr.Code != "invalid_api_key" {
			t.Errorf("error %v", err)
		}
	})
}
