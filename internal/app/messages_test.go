package app_test

import (
	"bytes"
	"errors"
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/anthropics/anthropic-sdk-go"
	"github.com/anthropics/anthropic-sdk-go/option"
	"github.com/tidwall/gjson"
	"github.com/tidwall/sjson"

	"github.com/edge-agent/edge-agent/internal/config"
	"github.com/edge-agent/edge-agent/internal/provider/simulated"
	"github.com/edge-agent/edge-agent/internal/surface/messages"
)

// The official Anthropic Go SDK, pointed at the gateway: claude-* models
// are passed through to Anthropic (here the simulated one), others are
// translated to an OpenAI-compatible upstream.

func anthropicClient(g *gw) anthropic.Client {
	return anthropic.NewClient(option.WithBaseURL(g.URL), option.WithAPIKey("sk-unused"), option.WithMaxRetries(0))
}

var messagesUpstreams = []struct{ name, model, provider string }{
	{"native", "claude-sonnet-4-5", "anthropic"},
	{"translated", "gpt-4", "openai"},
}

var anthropicWeather = anthropic.ToolUnionParamOfTool(anthropic.ToolInputSchemaParam{
	Properties: map[string]any{"query": map[string]any{"type": "string"}}, Required: []string{"query"},
}, "get_weather")

func TestAnthropicSDKCreatesStreamsAndCallsToolsThroughTheGateway(t *testing.T) {
	s := startSim(t, simulated.Options{})
	g := startGateway(t, simConfig(s))
	client := anthropicClient(g)
	for _, up := range messagesUpstreams {
		t.Run(up.name+"/create", func(t *testing.T) {
			var raw *http.Response
			msg, err := client.Messages.New(t.Context(), anthropic.MessageNewParams{Model: anthropic.Model(up.model), MaxTokens: 256,
				System:   []anthropic.TextBlockParam{{Text: "be brief"}},
				Messages: []anthropic.MessageParam{anthropic.NewUserMessage(anthropic.NewTextBlock("sdk messages create"))}},
				option.WithResponseInto(&raw))
			if err != nil {
				t.Fatal(err)
			}
			if msg.StopReason != anthropic.StopReasonEndTurn || len(msg.Content) != 1 ||
				!strings.Contains(msg.Content[0].Text, "sdk messages create") || msg.Usage.OutputTokens == 0 {
				t.Fatalf("%s", msg.RawJSON())
			}
			if raw.Header.Get("X-Edge-Provider") != up.provider || raw.Header.Get("X-Cache-Status") != "MISS" {
				t.Fatalf("headers %v", raw.Header)
			}
			if gjson.Get(msg.RawJSON(), "metadata").Exists() {
				t.Fatalf("the answer is decorated: %s", msg.RawJSON())
			}
		})
		t.Run(up.name+"/stream", func(t *testing.T) {
			stream := client.Messages.NewStreaming(t.Context(), anthropic.MessageNewParams{Model: anthropic.Model(up.model), MaxTokens: 256,
				Messages: []anthropic.MessageParam{anthropic.NewUserMessage(anthropic.NewTextBlock("sdk messages stream"))}})
			var msg anthropic.Message
			deltas := 0
			for stream.Next() {
				if stream.Current().Type == "content_block_delta" {
					deltas++
				}
				if err := msg.Accumulate(stream.Current()); err != nil {
					t.Fatal(err)
				}
			}
			if err := stream.Err(); err != nil {
				t.Fatal(err)
			}
			if deltas < 2 || len(msg.Content) != 1 || !strings.Contains(msg.Content[0].Text, "sdk messages stream") ||
				msg.StopReason != anthropic.StopReasonEndTurn || msg.Usage.OutputTokens == 0 {
				t.Fatalf("%d deltas: %+v", deltas, msg)
			}
		})
		t.Run(up.name+"/tool round trip", func(t *testing.T) {
			p := anthropic.MessageNewParams{Model: anthropic.Model(up.model), MaxTokens: 256,
				Tools:      []anthropic.ToolUnionParam{anthropicWeather},
				ToolChoice: anthropic.ToolChoiceUnionParam{OfAny: &anthropic.ToolChoiceAnyParam{}},
				Messages:   []anthropic.MessageParam{anthropic.NewUserMessage(anthropic.NewTextBlock("weather in Paris?"))}}
			msg, err := client.Messages.New(t.Context(), p)
			if err != nil {
				t.Fatal(err)
			}
			var use anthropic.ToolUseBlock
			for _, b := range msg.Content {
				if b.Type == "tool_use" {
					use = b.AsToolUse()
				}
			}
			if msg.StopReason != anthropic.StopReasonToolUse || use.Name != "get_weather" || use.ID == "" {
				t.Fatalf("%s", msg.RawJSON())
			}
			p.ToolChoice = anthropic.ToolChoiceUnionParam{}
			p.Messages = append(p.Messages, msg.ToParam(),
				anthropic.NewUserMessage(anthropic.NewToolResultBlock(use.ID, "sunny, 21C", false)))
			final, err := client.Messages.New(t.Context(), p)
			if err != nil {
				t.Fatal(err)
			}
			if final.StopReason != anthropic.StopReasonEndTurn || len(final.Content) == 0 || final.Content[0].Type != "text" {
				t.Fatalf("%s", final.RawJSON())
			}
		})
		t.Run(up.name+"/count tokens", func(t *testing.T) {
			var raw *http.Response
			n, err := client.Messages.CountTokens(t.Context(), anthropic.MessageCountTokensParams{Model: anthropic.Model(up.model),
				Messages: []anthropic.MessageParam{anthropic.NewUserMessage(anthropic.NewTextBlock("count me"))}},
				option.WithResponseInto(&raw))
			if err != nil {
				t.Fatal(err)
			}
			estimated := raw.Header.Get("X-Edge-Token-Estimate") == "true"
			if n.InputTokens < 1 || estimated != (up.name == "translated") {
				t.Fatalf("%d tokens, estimate header %q", n.InputTokens, raw.Header.Get("X-Edge-Token-Estimate"))
			}
		})
		t.Run(up.name+"/typed error on a bad request", func(t *testing.T) {
			_, err := client.Messages.New(t.Context(), anthropic.MessageNewParams{Model: anthropic.Model(up.model), MaxTokens: 256})
			var ae *anthropic.Error
			if !errors.As(err, &ae) || ae.StatusCode != http.StatusBadRequest ||
				gjson.Get(ae.RawJSON(), "error.type").Str != "invalid_request_error" || gjson.Get(ae.RawJSON(), "type").Str != "error" {
				t.Fatalf("%v", err)
			}
		})
	}
}

// Passthrough fidelity: what Claude Code sends (unknown fields, thinking
// blocks, cache_control markers, beta headers) reaches Anthropic byte for
// byte except the model, and the answer reaches the client byte for byte.
func TestMessagesPassthroughIsByteExactExceptTheModel(t *testing.T) {
	s := startSim(t, simulated.Options{})
	g := startGateway(t, simConfig(s))
	golden := []struct{ name, body string }{
		{"unknown fields", `{"model":"claude-sonnet-4-5","max_tokens":64,"future_field":{"a":[1,2]},"metadata":{"user_id":"u1"},"messages":[{"role":"user","content":"hi"}]}`},
		{"thinking blocks", `{"model":"claude-sonnet-4-5","max_tokens":2048,"thinking":{"type":"enabled","budget_tokens":1024},"messages":[{"role":"user","content":"q"},{"role":"assistant","content":[{"type":"thinking","thinking":"hm","signature":"c2ln"},{"type":"text","text":"a"}]},{"role":"user","content":"more"}]}`},
		{"cache_control markers", `{"model":"claude-sonnet-4-5","max_tokens":64,"system":[{"type":"text","text":"long system","cache_control":{"type":"ephemeral","ttl":"1h"}}],"messages":[{"role":"user","content":[{"type":"text","text":"x","cache_control":{"type":"ephemeral"}}]}]}`},
		{"stream", `{"model":"claude-sonnet-4-5","max_tokens":64,"stream":true,"messages":[{"role":"user","content":"stream me"}],"x_unknown":true}`},
	}
	for _, tc := range golden {
		t.Run(tc.name, func(t *testing.T) {
			direct := directMessages(t, s.URL, tc.body)
			resp, got := postMessages(t, g.URL, tc.body, "Anthropic-Version: 2023-06-01",
				"Anthropic-Beta: interleaved-thinking-2025-05-14,prompt-caching-2024-07-31", "X-Api-Key: client-key", "Cache-Control: no-cache")
			if resp.StatusCode != http.StatusOK {
				t.Fatalf("%d %s", resp.StatusCode, got)
			}
			_, hdr, upBody := s.LastRequest()
			want, _ := sjson.SetBytes([]byte(tc.body), "model", "claude-sonnet-4-5-20250929")
			if gjson.GetBytes(upBody, "model").Str == "claude-sonnet-4-5" {
				want = []byte(tc.body) // the alias is the upstream model itself
			}
			if !bytes.Equal(upBody, want) {
				t.Fatalf("upstream got\n%s\nwant\n%s", upBody, want)
			}
			if hdr.Get("Anthropic-Beta") != "interleaved-thinking-2025-05-14,prompt-caching-2024-07-31" ||
				hdr.Get("Anthropic-Version") != "2023-06-01" || hdr.Get("X-Api-Key") == "client-key" {
				t.Fatalf("upstream headers %v", hdr)
			}
			if !bytes.Equal(stripIDs(got), stripIDs(direct)) {
				t.Fatalf("client got\n%s\nthe upstream answers\n%s", got, direct)
			}
		})
	}
}

// directMessages asks the simulated Anthropic for body itself, for the
// bytes the gateway must hand back unchanged.
func directMessages(t *testing.T, url, body string) []byte {
	t.Helper()
	req, _ := http.NewRequestWithContext(t.Context(), http.MethodPost, url+"/v1/messages", strings.NewReader(body))
	req.Header.Set("Anthropic-Version", "2023-06-01")
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return b
}

// stripIDs blanks the per-answer message ids, the one thing two answers of
// the simulated provider to the same request differ in.
func stripIDs(b []byte) []byte {
	out := make([]byte, 0, len(b))
	for {
		i := bytes.Index(b, []byte(`"msg_`))
		if i < 0 {
			return append(out, b...)
		}
		out = append(out, b[:i+5]...)
		b = b[i+5:]
		j := bytes.IndexByte(b, '"')
		b = b[j:]
	}
}

func TestCachedMessagesStreamReplaysTheSameBlocksStopReasonAndUsage(t *testing.T) {
	s := startSim(t, simulated.Options{})
	g := startGateway(t, simConfig(s))
	client := anthropicClient(g)
	for _, up := range messagesUpstreams {
		t.Run(up.name, func(t *testing.T) {
			p := anthropic.MessageNewParams{Model: anthropic.Model(up.model), MaxTokens: 256,
				Messages: []anthropic.MessageParam{anthropic.NewUserMessage(anthropic.NewTextBlock("replay me " + up.name))}}
			get := func() (anthropic.Message, string) {
				var raw *http.Response
				stream := client.Messages.NewStreaming(t.Context(), p, option.WithResponseInto(&raw))
				var m anthropic.Message
				for stream.Next() {
					if err := m.Accumulate(stream.Current()); err != nil {
						t.Fatal(err)
					}
				}
				if err := stream.Err(); err != nil {
					t.Fatal(err)
				}
				return m, raw.Header.Get("X-Cache-Status")
			}
			first, st1 := get()
			second, st2 := get()
			if st1 != "MISS" || st2 != "HIT" {
				t.Fatalf("cache status %s then %s", st1, st2)
			}
			if len(first.Content) != len(second.Content) || first.Content[0].Text != second.Content[0].Text ||
				first.StopReason != second.StopReason || first.Usage.InputTokens != second.Usage.InputTokens ||
				first.Usage.OutputTokens != second.Usage.OutputTokens {
				t.Fatalf("first %+v\nreplayed %+v", first, second)
			}
			// A chat request for the same model never gets the Messages entry.
			resp, body := post(t, g.URL, chat(up.model, "replay me "+up.name))
			if resp.StatusCode != http.StatusOK || resp.Header.Get("X-Cache-Status") != "MISS" || !gjson.GetBytes(body, "choices").Exists() {
				t.Fatalf("%d %s %s", resp.StatusCode, resp.Header.Get("X-Cache-Status"), body)
			}
		})
	}
}

func TestMessagesBadInputGetsAnthropicsEnvelope(t *testing.T) {
	s := startSim(t, simulated.Options{})
	g := startGateway(t, simConfig(s))
	for _, tc := range []struct {
		name, method, path, body string
		status                   int
		errType                  string
	}{
		{"no max_tokens", "POST", "/v1/messages", `{"model":"claude-sonnet-4-5","messages":[{"role":"user","content":"x"}]}`, 400, "invalid_request_error"},
		{"not JSON", "POST", "/v1/messages", `{"model":`, 400, "invalid_request_error"},
		{"unknown model", "POST", "/v1/messages", `{"model":"nope/nothing","max_tokens":5,"messages":[{"role":"user","content":"x"}]}`, 404, "not_found_error"},
		{"wrong method", "GET", "/v1/messages", ``, 405, messages.ErrorType(405)},
		{"unknown route", "POST", "/v1/messages/batches", `{}`, 404, "not_found_error"},
		{"count_tokens without messages", "POST", "/v1/messages/count_tokens", `{"model":"claude-sonnet-4-5"}`, 400, "invalid_request_error"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			req, _ := http.NewRequestWithContext(t.Context(), tc.method, g.URL+tc.path, strings.NewReader(tc.body))
			req.Header.Set("Anthropic-Version", "2023-06-01")
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			b, _ := io.ReadAll(resp.Body)
			if resp.StatusCode != tc.status || gjson.GetBytes(b, "type").Str != "error" ||
				gjson.GetBytes(b, "error.type").Str != tc.errType || gjson.GetBytes(b, "error.message").Str == "" {
				t.Fatalf("%d %s", resp.StatusCode, b)
			}
		})
	}
}

// postMessages sends body to POST /v1/messages; headers are "Name: value".
func postMessages(t *testing.T, base, body string, headers ...string) (*http.Response, []byte) {
	t.Helper()
	req, err := http.NewRequestWithContext(t.Context(), http.MethodPost, base+"/v1/messages", strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	for _, h := range headers {
		k, v, _ := strings.Cut(h, ":")
		req.Header.Add(strings.TrimSpace(k), strings.TrimSpace(v))
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp, b
}

// Claude Code sends its key as x-api-key (ANTHROPIC_API_KEY) or as a
// bearer token (ANTHROPIC_AUTH_TOKEN); a missing or wrong key, and a body
// over the limit, answer in Anthropic's envelope.
func TestMessagesAuthAndLimitsAnswerInAnthropicsEnvelope(t *testing.T) {
	s := startSim(t, simulated.Options{})
	cfg := accessConfig(s, config.APIKey{Name: "team", Key: "team-key-0123456789"})
	cfg.MaxRequestSize = 4 << 10
	cfg.MaxBodyMemoryBytes = 1 << 20
	g := startGateway(t, cfg)
	body := `{"model":"claude-sonnet-4-5","max_tokens":16,"messages":[{"role":"user","content":"auth"}]}`
	for _, tc := range []struct {
		name    string
		body    string
		headers []string
		status  int
		errType string
	}{
		{"x-api-key", body, []string{"X-Api-Key: team-key-0123456789"}, 200, ""},
		{"bearer", body, []string{"Authorization: Bearer team-key-0123456789"}, 200, ""},
		{"no key", body, nil, 401, "authentication_error"},
		{"wrong key", body, []string{"X-Api-Key: nope-0123456789"}, 401, "authentication_error"},
		{"too large", `{"model":"claude-sonnet-4-5","max_tokens":16,"messages":[{"role":"user","content":"` + strings.Repeat("x", 8<<10) + `"}]}`,
			[]string{"X-Api-Key: team-key-0123456789"}, 413, "request_too_large"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			resp, b := postMessages(t, g.URL, tc.body, append(tc.headers, "Anthropic-Version: 2023-06-01")...)
			if resp.StatusCode != tc.status {
				t.Fatalf("%d %s", resp.StatusCode, b)
			}
			if tc.status == 200 {
				if gjson.GetBytes(b, "type").Str != "message" {
					t.Fatalf("%s", b)
				}
				return
			}
			if gjson.GetBytes(b, "type").Str != "error" || gjson.GetBytes(b, "error.type").Str != tc.errType {
				t.Fatalf("%d %s", resp.StatusCode, b)
			}
		})
	}
}
