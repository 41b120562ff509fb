package simulated

import (
	"slices"
	"strings"
	"testing"

	"github.com/tidwall/gjson"

	"github.com/edge-agent/edge-agent/internal/api"
)

func TestAnthropicJSONAnswerIsAMessage(t *testing.T) {
	_, ts := start(t, Options{})
	root := mustJSON(t, post(t, ts, "/v1/messages", anthropicReq("hello claude", "")), 200)

	if !strings.HasPrefix(root.Get("id").Str, "msg_sim_") || root.Get("type").Str != "message" ||
		root.Get("role").Str != "assistant" || root.Get("model").Str != "claude-sonnet-4-5" {
		t.Errorf("header fields: %s", root.Raw)
	}
	if root.Get("stop_reason").Str != "end_turn" || root.Get("stop_sequence").Type != gjson.Null || !root.Get("stop_sequence").Exists() {
		t.Errorf("stop fields: %s", root.Raw)
	}
	content := root.Get("content").Array()
	if len(content) != 1 || content[0].Get("type").Str != "text" {
		t.Fatalf("content %s", root.Get("content").Raw)
	}
	text := content[0].Get("text").Str
	if !strings.HasPrefix(text, "Simulated answer to: hello claude") || words(text) != DefaultWords {
		t.Errorf("text %q", text)
	}
	if root.Get("usage.input_tokens").Int() < 1 || root.Get("usage.output_tokens").Int() != DefaultWords {
		t.Errorf("usage %s", root.Get("usage").Raw)
	}
}

// names returns the event names and checks each data's type matches its name.
func names(t *testing.T, evs []event) []string {
	t.Helper()
	var out []string
	for _, ev := range evs {
		if typ := gjson.Get(ev.data, "type").Str; typ != ev.name {
			t.Errorf("event %q carries type %q", ev.name, typ)
		}
		out = append(out, ev.name)
	}
	return out
}

func TestAnthropicStreamSendsTheExactEventSequence(t *testing.T) {
	_, ts := start(t, Options{Words: 7})
	whole := mustJSON(t, post(t, ts, "/v1/messages", anthropicReq("stream please", "")), 200)
	evs := mustEvents(t, post(t, ts, "/v1/messages", anthropicReq("stream please", `,"stream":true`)))

	want := []string{"message_start", "content_block_start", "ping",
		"content_block_delta", "content_block_delta", "content_block_delta",
		"content_block_stop", "message_delta", "message_stop"}
	if got := names(t, evs); !slices.Equal(got, want) {
		t.Fatalf("events\n got %v\nwant %v", got, want)
	}
	msg := gjson.Get(evs[0].data, "message")
	if msg.Get("content").Raw != "[]" || msg.Get("usage.output_tokens").Int() != 1 ||
		msg.Get("usage.input_tokens").Int() != whole.Get("usage.input_tokens").Int() ||
		msg.Get("stop_reason").Type != gjson.Null || msg.Get("model").Str != "claude-sonnet-4-5" {
		t.Errorf("message_start: %s", evs[0].data)
	}
	if cb := gjson.Get(evs[1].data, "content_block"); cb.Raw != `{"type":"text","text":""}` || gjson.Get(evs[1].data, "index").Int() != 0 {
		t.Errorf("content_block_start: %s", evs[1].data)
	}
	var text strings.Builder
	for _, ev := range evs[3:6] {
		d := gjson.Get(ev.data, "delta")
		if d.Get("type").Str != "text_delta" || gjson.Get(ev.data, "index").Int() != 0 {
			t.Errorf("delta: %s", ev.data)
		}
		text.WriteString(d.Get("text").Str)
	}
	if want := whole.Get("content.0.text").Str; text.String() != want {
		t.Errorf("streamed %q, want %q", text.String(), want)
	}
	md := gjson.Parse(evs[7].data)
	if md.Get("delta.stop_reason").Str != "end_turn" || md.Get("usage.output_tokens").Int() != 7 {
		t.Errorf("message_delta: %s", evs[7].data)
	}
}

func TestAnthropicMaxTokensStopsWithStopReasonMaxTokens(t *testing.T) {
	_, ts := start(t, Options{})
	req := strings.Replace(anthropicReq("tell me a long story", ""), `"max_tokens":1024`, `"max_tokens":4`, 1)
	root := mustJSON(t, post(t, ts, "/v1/messages", req), 200)
	if root.Get("stop_reason").Str != "max_tokens" || words(root.Get("content.0.text").Str) != 4 || root.Get("usage.output_tokens").Int() != 4 {
		t.Errorf("answer %s", root.Raw)
	}
	evs := mustEvents(t, post(t, ts, "/v1/messages", strings.TrimSuffix(req, "}")+`,"stream":true}`))
	md := gjson.Parse(evs[len(evs)-2].data)
	if md.Get("delta.stop_reason").Str != "max_tokens" || md.Get("usage.output_tokens").Int() != 4 {
		t.Errorf("message_delta %s", md.Raw)
	}
}

func TestAnthropicToolUse(t *testing.T) {
	const tools = `,"tools":[{"name":"search","input_schema":{"type":"object"}},{"name":"lookup","input_schema":{"type":"object"}}]`
	cases := []struct {
		name, req, tool string
	}{
		{"magic word", anthropicReq("find SIM_TOOL_CALL docs", tools), "search"},
		{"any", anthropicReq("find docs", tools+`,"tool_choice":{"type":"any"}`), "search"},
		{"named tool", anthropicReq("find docs", tools+`,"tool_choice":{"type":"tool","name":"lookup"}`), "lookup"},
		{"none", anthropicReq("find SIM_TOOL_CALL docs", tools+`,"tool_choice":{"type":"none"}`), ""},
		{"tool result answered with text", `{"model":"claude-sonnet-4-5","max_tokens":100,"messages":[` +
			`{"role":"user","content":"SIM_TOOL_CALL"},` +
			`{"role":"assistant","content":[{"type":"tool_use","id":"t1","name":"search","input":{}}]},` +
			`{"role":"user","content":[{"type":"tool_result","tool_use_id":"t1","content":"42"}]}]` + tools + `}`, ""},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, ts := start(t, Options{})
			root := mustJSON(t, post(t, ts, "/v1/messages", tc.req), 200)
			block := root.Get("content.0")
			if tc.tool == "" {
				if root.Get("stop_reason").Str != "end_turn" || block.Get("type").Str != "text" {
					t.Fatalf("want a text answer: %s", root.Raw)
				}
				return
			}
			if root.Get("stop_reason").Str != "tool_use" || block.Get("type").Str != "tool_use" ||
				block.Get("name").Str != tc.tool || !strings.HasPrefix(block.Get("id").Str, "toolu_") ||
				!block.Get("input.query").Exists() {
				t.Fatalf("tool_use answer: %s", root.Raw)
			}

			evs := mustEvents(t, post(t, ts, "/v1/messages", strings.TrimSuffix(tc.req, "}")+`,"stream":true}`))
			got := names(t, evs)
			if got[0] != "message_start" || got[1] != "content_block_start" || got[2] != "ping" ||
				!slices.Equal(got[len(got)-3:], []string{"content_block_stop", "message_delta", "message_stop"}) {
				t.Fatalf("events %v", got)
			}
			cb := gjson.Get(evs[1].data, "content_block")
			if cb.Get("type").Str != "tool_use" || cb.Get("name").Str != tc.tool || cb.Get("input").Raw != "{}" {
				t.Fatalf("content_block_start %s", evs[1].data)
			}
			var input strings.Builder
			deltas := evs[3 : len(evs)-3]
			for _, ev := range deltas {
				d := gjson.Get(ev.data, "delta")
				if ev.name != "content_block_delta" || d.Get("type").Str != "input_json_delta" {
					t.Fatalf("delta %s", ev.data)
				}
				input.WriteString(d.Get("partial_json").Str)
			}
			if len(deltas) < 3 || input.String() != block.Get("input").Raw {
				t.Errorf("%d deltas giving %q, want %q", len(deltas), input.String(), block.Get("input").Raw)
			}
			if gjson.Get(evs[len(evs)-2].data, "delta.stop_reason").Str != "tool_use" {
				t.Errorf("message_delta %s", evs[len(evs)-2].data)
			}
		})
	}
}

func TestAnthropicRequiresVersionHeaderAndMaxTokens(t *testing.T) {
	_, ts := start(t, Options{})
	t.Run("missing anthropic-version", func(t *testing.T) {
		req := anthropicReq("hi", "")
		// post() adds the header for /v1/messages; send a raw request instead.
		r, err := ts.Client().Post(ts.URL+"/v1/messages", "application/json", strings.NewReader(req))
		if err != nil {
			t.Fatal(err)
		}
		defer r.Body.Close()
		root := mustJSON(t, r, 400)
		if root.Get("type").Str != "error" || root.Get("error.type").Str != "invalid_request_error" ||
			!strings.Contains(root.Get("error.message").Str, "anthropic-version") {
			t.Errorf("body %s", root.Raw)
		}
	})
	t.Run("missing max_tokens", func(t *testing.T) {
		req := strings.Replace(anthropicReq("hi", ""), `"max_tokens":1024,`, "", 1)
		root := mustJSON(t, post(t, ts, "/v1/messages", req), 400)
		if root.Get("error.type").Str != "invalid_request_error" || !strings.Contains(root.Get("error.message").Str, "max_tokens") {
			t.Errorf("body %s", root.Raw)
		}
	})
}

func TestAnswerEchoesTheStartOfTheLastUserMessage(t *testing.T) {
	long := strings.Repeat("é", 59) + "日本語 and more text after the cut"
	cases := []struct {
		name, content, want string
	}{
		{"text parts are joined", `[{"type":"text","text":"first part"},{"type":"image","source":{}},{"type":"text","text":"second part"}]`,
			"Simulated answer to: first part second part"},
		{"cut after 60 characters", string(api.AppendString(nil, long)), "Simulated answer to: " + strings.Repeat("é", 59) + "日 "},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, ts := start(t, Options{Words: 40})
			req := `{"model":"claude-sonnet-4-5","max_tokens":100,"messages":[{"role":"user","content":"earlier"},` +
				`{"role":"assistant","content":"ok"},{"role":"user","content":` + tc.content + `}]}`
			text := mustJSON(t, post(t, ts, "/v1/messages", req), 200).Get("content.0.text").Str
			if !strings.HasPrefix(text, tc.want) {
				t.Errorf("text %q, want prefix %q", text, tc.want)
			}
		})
	}
}
