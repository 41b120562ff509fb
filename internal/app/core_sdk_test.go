package app_test

import (
	"encoding/json"
	"errors"
	"net/http"
	"strings"
	"testing"

	"github.com/openai/openai-go/v3"
	"github.com/openai/openai-go/v3/option"
	"github.com/openai/openai-go/v3/shared"
	"github.com/tidwall/gjson"

	"github.com/edge-agent/edge-agent/internal/provider/simulated"
)

// The official OpenAI Go SDK, pointed at the gateway, must not notice it
// is not talking to OpenAI, whichever provider answers.

func sdkClient(g *gw) openai.Client {
	return openai.NewClient(option.WithBaseURL(g.URL+"/v1/"), option.WithAPIKey("sk-unused"), option.WithMaxRetries(0))
}

var sdkWeather = []openai.ChatCompletionToolUnionParam{openai.ChatCompletionFunctionTool(shared.FunctionDefinitionParam{
	Name: "get_weather", Parameters: shared.FunctionParameters{"type": "object",
		"properties": map[string]any{"query": map[string]any{"type": "string"}}, "required": []string{"query"}}})}

func TestCoreSDKChatStreamAndToolCalls(t *testing.T) {
	s := startSim(t, simulated.Options{})
	g := startGateway(t, simConfig(s))
	client := sdkClient(g)
	for _, tc := range []struct{ model, provider string }{
		{"gpt-4", "openai"},
		{"anthropic/claude-3-5-sonnet-20241022", "anthropic"},
	} {
		t.Run(tc.model+"/chat", func(t *testing.T) {
			var raw *http.Response
			cc, err := client.Chat.Completions.New(t.Context(), openai.ChatCompletionNewParams{Model: tc.model,
				Messages: []openai.ChatCompletionMessageParamUnion{openai.SystemMessage("be brief"), openai.UserMessage("sdk core chat")}},
				option.WithHeader("X-Request-Id", "sdk-req-1"), option.WithResponseInto(&raw))
			if err != nil {
				t.Fatal(err)
			}
			if !strings.HasPrefix(cc.Choices[0].Message.Content, "Simulated answer to: sdk core chat") || cc.Choices[0].FinishReason != "stop" ||
				cc.Usage.TotalTokens != cc.Usage.PromptTokens+cc.Usage.CompletionTokens || cc.Usage.CompletionTokens == 0 {
				t.Fatalf("%s", cc.RawJSON())
			}
			// The gateway's metadata survives the SDK as an extra field.
			md := gjson.Get(cc.RawJSON(), "metadata")
			if md.Get("provider").Str != tc.provider || md.Get("request_id").Str != "sdk-req-1" {
				t.Fatalf("metadata %s", md.Raw)
			}
			if raw.Header.Get("X-Request-Id") != "sdk-req-1" || raw.Header.Get("X-Edge-Provider") != tc.provider {
				t.Fatalf("headers %v", raw.Header)
			}
		})
		t.Run(tc.model+"/stream", func(t *testing.T) {
			stream := client.Chat.Completions.NewStreaming(t.Context(), openai.ChatCompletionNewParams{Model: tc.model,
				Messages:      []openai.ChatCompletionMessageParamUnion{openai.UserMessage("sdk core stream")},
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
			if chunks < 3 || !strings.HasPrefix(acc.Choices[0].Message.Content, "Simulated answer to: sdk core stream") ||
				acc.Choices[0].FinishReason != "stop" || acc.Usage.TotalTokens == 0 {
				t.Fatalf("%d chunks: %+v", chunks, acc.ChatCompletion)
			}
		})
		t.Run(tc.model+"/streamed tool call", func(t *testing.T) {
			p := openai.ChatCompletionNewParams{Model: tc.model, Tools: sdkWeather,
				Messages: []openai.ChatCompletionMessageParamUnion{openai.UserMessage("Paris SIM_TOOL_CALL")}}
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
			if len(finished) != 1 || finished[0].Name != "get_weather" || gjson.Get(finished[0].Arguments, "query").Str != "Paris SIM_TOOL_CALL" ||
				acc.Choices[0].FinishReason != "tool_calls" || len(acc.Choices[0].Message.ToolCalls) != 1 {
				t.Fatalf("finished %+v, accumulated %+v", finished, acc.Choices[0])
			}
			// The accumulated message goes back with the tool result.
			p.Messages = append(p.Messages, acc.Choices[0].Message.ToParam(), openai.ToolMessage("18 C", finished[0].ID))
			cc, err := client.Chat.Completions.New(t.Context(), p)
			if err != nil {
				t.Fatal(err)
			}
			if cc.Choices[0].FinishReason != "stop" || cc.Choices[0].Message.Content == "" || len(cc.Choices[0].Message.ToolCalls) != 0 {
				t.Fatalf("after the tool result: %s", cc.RawJSON())
			}
		})
	}
}

func TestCoreSDKSeesTypedErrors(t *testing.T) {
	s := startSim(t, simulated.Options{})
	cfg := simConfig(s)
	cfg.Routing.MaxRetries = 0
	g := startGateway(t, cfg)
	client := sdkClient(g)
	user := func(s string) []openai.ChatCompletionMessageParamUnion {
		return []openai.ChatCompletionMessageParamUnion{openai.UserMessage(s)}
	}
	tests := []struct {
		name          string
		params        openai.ChatCompletionNewParams
		stream        bool
		status        int
		typ, code     string
		param, inMsg  string
		opts          []option.RequestOption
		upstreamCalls int64
	}{
		{name: "out of range temperature", params: openai.ChatCompletionNewParams{Model: "gpt-4o-mini", Messages: user("x"), Temperature: openai.Float(3)},
			status: 400, typ: "invalid_request_error", param: "temperature", inMsg: "temperature"},
		{name: "empty messages", params: openai.ChatCompletionNewParams{Model: "gpt-4o-mini"}, opts: []option.RequestOption{option.WithJSONSet("messages", []any{})},
			status: 400, typ: "invalid_request_error", param: "messages", inMsg: "messages"},
		{name: "unknown model", params: openai.ChatCompletionNewParams{Model: "no-such-model", Messages: user("x")},
			status: 404, typ: "not_found_error", code: "model_not_found", inMsg: "no-such-model"},
		{name: "unknown model streaming", params: openai.ChatCompletionNewParams{Model: "no-such-model", Messages: user("x")}, stream: true,
			status: 404, typ: "not_found_error", code: "model_not_found", inMsg: "no-such-model"},
		{name: "upstream 400", params: openai.ChatCompletionNewParams{Model: "claude-3-5-sonnet-20241022", Messages: user("SIM_ERROR_400")},
			status: 400, typ: "invalid_request_error", inMsg: "SIM_ERROR_400", upstreamCalls: 1},
		{name: "upstream 500 streaming", params: openai.ChatCompletionNewParams{Model: "gpt-4o-mini", Messages: user("SIM_ERROR_500")}, stream: true,
			status: 502, typ: "upstream_error", code: "upstream_error", upstreamCalls: 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			before := s.Calls()
			var err error
			if tt.stream {
				st := client.Chat.Completions.NewStreaming(t.Context(), tt.params, tt.opts...)
				for st.Next() {
					t.Fatalf("chunk on an error: %s", st.Current().RawJSON())
				}
				err = st.Err()
			} else {
				_, err = client.Chat.Completions.New(t.Context(), tt.params, tt.opts...)
			}
			var apiErr *openai.Error
			if !errors.As(err, &apiErr) {
				t.Fatalf("error %T %v is not *openai.Error", err, err)
			}
			if apiErr.StatusCode != tt.status || apiErr.Type != tt.typ || apiErr.Code != tt.code || apiErr.Param != tt.param ||
				!strings.Contains(apiErr.Message, tt.inMsg) {
				t.Fatalf("got %d type %q code %q param %q message %q", apiErr.StatusCode, apiErr.Type, apiErr.Code, apiErr.Param, apiErr.Message)
			}
			if n := s.Calls() - before; n != tt.upstreamCalls {
				t.Fatalf("provider called %d times, want %d", n, tt.upstreamCalls)
			}
		})
	}
}

// TestSDKStructuredOutputInTheDemo is what the OpenAI SDK's structured
// outputs (response_format json_schema, strict) get from the demo: an answer
// the schema accepts, which unmarshals into the caller's type.
func TestSDKStructuredOutputInTheDemo(t *testing.T) {
	s := startSim(t, simulated.Options{})
	g := startGateway(t, simConfig(s))
	client := sdkClient(g)
	schema := map[string]any{
		"type": "object", "additionalProperties": false, "required": []string{"city", "temperature_c", "conditions"},
		"properties": map[string]any{
			"city":          map[string]any{"type": "string"},
			"temperature_c": map[string]any{"type": "number", "minimum": -50, "maximum": 60},
			"conditions":    map[string]any{"type": "array", "items": map[string]any{"enum": []string{"sunny", "cloudy", "rain"}}, "minItems": 1},
		},
	}
	cc, err := client.Chat.Completions.New(t.Context(), openai.ChatCompletionNewParams{Model: "gpt-4o-mini",
		Messages: []openai.ChatCompletionMessageParamUnion{openai.UserMessage("weather in Paris")},
		ResponseFormat: openai.ChatCompletionNewParamsResponseFormatUnion{OfJSONSchema: &shared.ResponseFormatJSONSchemaParam{
			JSONSchema: shared.ResponseFormatJSONSchemaJSONSchemaParam{Name: "weather", Strict: openai.Bool(true), Schema: schema}}}})
	if err != nil {
		t.Fatal(err)
	}
	var w struct {
		City         string   `json:"city"`
		TemperatureC float64  `json:"temperature_c"`
		Conditions   []string `json:"conditions"`
	}
	dec := json.NewDecoder(strings.NewReader(cc.Choices[0].Message.Content))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&w); err != nil || w.City == "" || len(w.Conditions) == 0 || w.TemperatureC < -50 || w.TemperatureC > 60 {
		t.Fatalf("structured answer %q: %v %+v", cc.Choices[0].Message.Content, err, w)
	}
}
