package messages

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/anthropics/anthropic-sdk-go"
	"github.com/anthropics/anthropic-sdk-go/option"

	"github.com/edge-agent/edge-agent/internal/api"
	"github.com/edge-agent/edge-agent/internal/provider/simulated"
	"github.com/edge-agent/edge-agent/internal/sse"
)

// translatingServer is the smallest Messages surface over a chat upstream
// built from this package's parts, the way the pipeline will wire them:
// Parse, ToChat, then FromChat or the StreamTranslator, and WriteError or
// an error event for every failure.
func translatingServer(t *testing.T, upstream string) *httptest.Server {
	t.Helper()
	ts := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, err := io.ReadAll(r.Body)
		if err != nil {
			WriteError(w, err)
			return
		}
		req, err := Parse(body, api.DefaultLimits)
		if err != nil {
			WriteError(w, err)
			return
		}
		chat, err := ToChat(body)
		if err != nil {
			WriteError(w, err)
			return
		}
		up, err := http.NewRequestWithContext(r.Context(), http.MethodPost, upstream+"/v1/chat/completions", bytes.NewReader(chat))
		if err != nil {
			WriteError(w, err)
			return
		}
		up.Header.Set("Content-Type", "application/json")
		resp, err := http.DefaultClient.Do(up)
		if err != nil {
			WriteError(w, err)
			return
		}
		defer resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			WriteError(w, &api.Error{Status: http.StatusBadGateway, Message: "upstream failed"})
			return
		}
		if !req.Stream {
			b, err := io.ReadAll(resp.Body)
			if err != nil {
				WriteError(w, err)
				return
			}
			out, err := FromChat(b, req.Model)
			if err != nil {
				WriteError(w, err)
				return
			}
			w.Header().Set("Content-Type", "application/json")
			_, _ = w.Write(out)
			return
		}
		sse.SetHeaders(w.Header())
		tr := NewStreamTranslator(req.Model)
		rd := sse.NewReader(resp.Body)
		var buf []byte
		for {
			ev, err := rd.Next()
			if err != nil || string(ev.Data) == "[DONE]" {
				break
			}
			if buf, err = tr.Add(buf[:0], ev.Data); err != nil {
				_, _ = w.Write(AppendErrorEvent(buf, api.FromError(err)))
				return
			}
			_, _ = w.Write(buf)
		}
		buf, err = tr.Finish(buf[:0])
		if err != nil {
			buf = AppendErrorEvent(buf, api.FromError(err))
		}
		_, _ = w.Write(buf)
	}))
	t.Cleanup(ts.Close)
	return ts
}

func sdkClient(t *testing.T) anthropic.Client {
	t.Helper()
	up := httptest.NewServer(simulated.New(simulated.Options{Words: 12}))
	t.Cleanup(up.Close)
	gw := translatingServer(t, up.URL)
	return anthropic.NewClient(option.WithBaseURL(gw.URL), option.WithAPIKey("client-key"), option.WithMaxRetries(0))
}

func sdkContext(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	t.Cleanup(cancel)
	return ctx
}

var weatherTool = anthropic.ToolUnionParamOfTool(anthropic.ToolInputSchemaParam{
	Properties: map[string]any{"query": map[string]any{"type": "string"}},
}, "get_weather")

func TestAnthropicSDKCreatesAMessageThroughAChatUpstream(t *testing.T) {
	client := sdkClient(t)
	msg, err := client.Messages.New(sdkContext(t), anthropic.MessageNewParams{
		Model:     "gpt-4o",
		MaxTokens: 256,
		System:    []anthropic.TextBlockParam{{Text: "be brief"}},
		Messages:  []anthropic.MessageParam{anthropic.NewUserMessage(anthropic.NewTextBlock("hello from the SDK"))},
	})
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(msg.ID, "msg_") || msg.Model != "gpt-4o" || msg.StopReason != anthropic.StopReasonEndTurn {
		t.Fatalf("message %+v", msg)
	}
	if len(msg.Content) != 1 || msg.Content[0].Type != "text" || !strings.Contains(msg.Content[0].Text, "hello from the SDK") {
		t.Fatalf("content %+v", msg.Content)
	}
	if msg.Usage.InputTokens < 1 || msg.Usage.OutputTokens != 12 {
		t.Fatalf("usage %+v", msg.Usage)
	}
}

func TestAnthropicSDKStreamsAndAccumulatesThroughAChatUpstream(t *testing.T) {
	client := sdkClient(t)
	stream := client.Messages.NewStreaming(sdkContext(t), anthropic.MessageNewParams{
		Model:     "gpt-4o",
		MaxTokens: 256,
		Messages:  []anthropic.MessageParam{anthropic.NewUserMessage(anthropic.NewTextBlock("stream it"))},
	})
	var msg anthropic.Message
	var deltas int
	for stream.Next() {
		ev := stream.Current()
		if ev.Type == "content_block_delta" {
			deltas++
		}
		if err := msg.Accumulate(ev); err != nil {
			t.Fatal(err)
		}
	}
	if err := stream.Err(); err != nil {
		t.Fatal(err)
	}
	if deltas < 2 || len(msg.Content) != 1 || !strings.Contains(msg.Content[0].Text, "stream it") ||
		msg.StopReason != anthropic.StopReasonEndTurn || msg.Usage.OutputTokens != 12 || msg.Usage.InputTokens < 1 {
		t.Fatalf("%d deltas, message %+v", deltas, msg)
	}
}

func TestAnthropicSDKToolRoundTripThroughAChatUpstream(t *testing.T) {
	for _, streamed := range []bool{false, true} {
		name := map[bool]string{false: "json", true: "stream"}[streamed]
		t.Run(name, func(t *testing.T) {
			client := sdkClient(t)
			ctx := sdkContext(t)
			params := anthropic.MessageNewParams{
				Model:      "gpt-4o",
				MaxTokens:  256,
				Tools:      []anthropic.ToolUnionParam{weatherTool},
				ToolChoice: anthropic.ToolChoiceUnionParam{OfAny: &anthropic.ToolChoiceAnyParam{}},
				Messages:   []anthropic.MessageParam{anthropic.NewUserMessage(anthropic.NewTextBlock("weather in Paris?"))},
			}
			call := func() *anthropic.Message {
				if !streamed {
					m, err := client.Messages.New(ctx, params)
					if err != nil {
						t.Fatal(err)
					}
					return m
				}
				s := client.Messages.NewStreaming(ctx, params)
				var m anthropic.Message
				for s.Next() {
					if err := m.Accumulate(s.Current()); err != nil {
						t.Fatal(err)
					}
				}
				if err := s.Err(); err != nil {
					t.Fatal(err)
				}
				return &m
			}
			first := call()
			if first.StopReason != anthropic.StopReasonToolUse || len(first.Content) != 1 || first.Content[0].Type != "tool_use" {
				t.Fatalf("first turn %+v", first)
			}
			use := first.Content[0]
			var input map[string]any
			if err := json.Unmarshal(use.Input, &input); err != nil || use.Name != "get_weather" || use.ID == "" {
				t.Fatalf("tool_use %+v (input %s: %v)", use, use.Input, err)
			}

			params.ToolChoice = anthropic.ToolChoiceUnionParam{OfAuto: &anthropic.ToolChoiceAutoParam{}}
			params.Messages = append(params.Messages, first.ToParam(),
				anthropic.NewUserMessage(anthropic.NewToolResultBlock(use.ID, "18C and sunny", false)))
			second := call()
			if second.StopReason != anthropic.StopReasonEndTurn || len(second.Content) != 1 || second.Content[0].Type != "text" {
				t.Fatalf("second turn %+v", second)
			}
		})
	}
}

func TestAnthropicSDKGetsTypedErrorsForBadRequests(t *testing.T) {
	client := sdkClient(t)
	ctx := sdkContext(t)
	tests := []struct {
		name   string
		params anthropic.MessageNewParams
	}{
		{"max_tokens zero", anthropic.MessageNewParams{Model: "gpt-4o", MaxTokens: 0,
			Messages: []anthropic.MessageParam{anthropic.NewUserMessage(anthropic.NewTextBlock("x"))}}},
		{"no messages", anthropic.MessageNewParams{Model: "gpt-4o", MaxTokens: 10, Messages: []anthropic.MessageParam{}}},
		{"document to a chat model", anthropic.MessageNewParams{Model: "gpt-4o", MaxTokens: 10,
			Messages: []anthropic.MessageParam{anthropic.NewUserMessage(anthropic.NewDocumentBlock(anthropic.PlainTextSourceParam{Data: "doc"}))}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := client.Messages.New(ctx, tt.params)
			var apiErr *anthropic.Error
			if !errors.As(err, &apiErr) {
				t.Fatalf("error %T %v; want *anthropic.Error", err, err)
			}
			if apiErr.StatusCode != http.StatusBadRequest || apiErr.Type() != "invalid_request_error" {
				t.Fatalf("status %d type %q: %s", apiErr.StatusCode, apiErr.Type(), apiErr.RawJSON())
			}
		})
	}
}

// TestAnthropicSDKDecodesTheAccumulatedAnswer checks the SDK's own Message
// type reads what the Accumulator builds: thinking with its signature,
// citations, tool input and cache usage.
func TestAnthropicSDKDecodesTheAccumulatedAnswer(t *testing.T) {
	in, err := os.ReadFile("testdata/events/thinking_tool_cache.sse")
	if err != nil {
		t.Fatal(err)
	}
	answer := answerOf(t, accumulateSSE(t, in))
	var msg anthropic.Message
	if err := json.Unmarshal(answer, &msg); err != nil {
		t.Fatal(err)
	}
	if len(msg.Content) != 4 {
		t.Fatalf("content %+v", msg.Content)
	}
	th, tx, tu, rd := msg.Content[0].AsThinking(), msg.Content[1].AsText(), msg.Content[2].AsToolUse(), msg.Content[3].AsRedactedThinking()
	if th.Thinking != "The user wants the weather." || !strings.HasPrefix(th.Signature, "EqQB") {
		t.Errorf("thinking %+v", th)
	}
	if len(tx.Citations) != 1 || tx.Citations[0].CitedText != "sunny" {
		t.Errorf("text %+v", tx)
	}
	if tu.Name != "get_weather" || string(tu.Input) != `{"city":"Paris","days":[1,2]}` {
		t.Errorf("tool_use %+v input %s", tu, tu.Input)
	}
	if rd.Data == "" {
		t.Errorf("redacted_thinking %+v", rd)
	}
	u := msg.Usage
	if msg.StopReason != anthropic.StopReasonToolUse || u.InputTokens != 12 || u.OutputTokens != 89 || u.CacheReadInputTokens != 20000 ||
		u.CacheCreationInputTokens != 3000 || u.CacheCreation.Ephemeral5mInputTokens != 1000 || u.CacheCreation.Ephemeral1hInputTokens != 2000 {
		t.Errorf("stop %q usage %+v", msg.StopReason, u)
	}
}

func TestAnthropicSDKListsModelsInAnthropicsFormat(t *testing.T) {
	models := []api.Model{{ID: "claude-sonnet-4-5", Created: 1_759_104_000}, {ID: "gpt-4o"}}
	ts := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/v1/models" || r.Header.Get("anthropic-version") == "" {
			WriteError(w, api.NotFound("", "unexpected %s without anthropic-version", r.URL.Path))
			return
		}
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write(AppendModelList(nil, models))
	}))
	t.Cleanup(ts.Close)
	client := anthropic.NewClient(option.WithBaseURL(ts.URL), option.WithAPIKey("k"), option.WithMaxRetries(0))
	page, err := client.Models.List(sdkContext(t), anthropic.ModelListParams{})
	if err != nil {
		t.Fatal(err)
	}
	if len(page.Data) != 2 || page.Data[0].ID != "claude-sonnet-4-5" || page.Data[1].ID != "gpt-4o" ||
		!page.Data[0].CreatedAt.Equal(time.Unix(1_759_104_000, 0)) || page.Data[0].DisplayName == "" || page.HasMore || page.LastID != "gpt-4o" {
		t.Fatalf("models page %+v", page)
	}
	if got := string(AppendModelList(nil, nil)); got != `{"data":[],"has_more":false,"first_id":null,"last_id":null}` {
		t.Fatalf("empty list %s", got)
	}
}
