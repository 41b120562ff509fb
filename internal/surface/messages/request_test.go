package messages

import (
	"errors"
	"net/http"
	"strings"
	"testing"

	"github.com/edge-agent/edge-agent/internal/api"
)

func TestParseReturnsWhatThePipelineNeeds(t *testing.T) {
	body := []byte(`{"model":"claude-sonnet-4-5","max_tokens":1024,"stream":true,"system":[{"type":"text","text":"be brief","cache_control":{"type":"ephemeral"}}],` +
		`"messages":[{"role":"user","content":"hello there, how are you today?"},{"role":"assistant","content":[{"type":"thinking","thinking":"hm","signature":"s"},{"type":"tool_use","id":"t1","name":"f","input":{}}]},` +
		`{"role":"user","content":[{"type":"tool_result","tool_use_id":"t1","content":"ok"},{"type":"document","source":{"type":"text","media_type":"text/plain","data":"d"}}]}],` +
		`"tools":[{"name":"f","input_schema":{"type":"object"}},{"type":"web_search_20250305","name":"web_search"}],"tool_choice":{"type":"auto"},` +
		`"temperature":1,"top_p":0.5,"top_k":5,"stop_sequences":["x"],"metadata":{"user_id":"u"},"thinking":{"type":"enabled","budget_tokens":1024},"future_field":[1]}`)
	req, err := Parse(body, api.DefaultLimits)
	if err != nil {
		t.Fatal(err)
	}
	if req.Model != "claude-sonnet-4-5" || !req.Stream || req.MaxTokens != 1024 || &req.Body[0] != &body[0] {
		t.Fatalf("request view: %+v", req)
	}
	if req.InputTokens < 100 || req.InputTokens > len(body)/4 {
		t.Fatalf("InputTokens = %d for a %d-byte body", req.InputTokens, len(body))
	}
	body[2] = 'X' // the caller may reuse the buffer: the model must not point into it
	if req.Model != "claude-sonnet-4-5" {
		t.Fatalf("Model aliases the body: %q", req.Model)
	}
}

func TestParseRejectsBadRequestsNamingTheField(t *testing.T) {
	const ok = `"model":"m","max_tokens":10,"messages":[{"role":"user","content":"hi"}]`
	tests := []struct {
		name, body, param string
	}{
		{"empty", ``, ""},
		{"not JSON", `{"model":`, ""},
		{"not an object", `[1]`, ""},
		{"invalid UTF-8", "{\"model\":\"\xff\"}", ""},
		{"no model", `{"max_tokens":10,"messages":[{"role":"user","content":"hi"}]}`, "model"},
		{"empty model", `{"model":"","max_tokens":10,"messages":[{"role":"user","content":"hi"}]}`, "model"},
		{"model not a string", `{"model":7,"max_tokens":10,"messages":[{"role":"user","content":"hi"}]}`, "model"},
		{"model with newline", `{"model":"claude\nX-Injected: 1","max_tokens":10,"messages":[{"role":"user","content":"hi"}]}`, "model"},
		{"model with C1 control", `{"model":"claude\u0085","max_tokens":10,"messages":[{"role":"user","content":"hi"}]}`, "model"},
		{"model with a zero-width space", `{"model":"claude\u200b","max_tokens":10,"messages":[{"role":"user","content":"hi"}]}`, "model"},
		{"duplicate content key", `{"model":"claude-sonnet-4-5","max_tokens":10,"messages":[{"role":"user","content":"harmless","content":"alice@example.com"}]}`, "messages[0].content"},
		{"duplicate model key", `{"model":"claude-sonnet-4-5","model":"gpt-4o","max_tokens":10,"messages":[{"role":"user","content":"hi"}]}`, "model"},
		{"no max_tokens", `{"model":"m","messages":[{"role":"user","content":"hi"}]}`, "max_tokens"},
		{"zero max_tokens", `{"model":"m","max_tokens":0,"messages":[{"role":"user","content":"hi"}]}`, "max_tokens"},
		{"fractional max_tokens", `{"model":"m","max_tokens":1.5,"messages":[{"role":"user","content":"hi"}]}`, "max_tokens"},
		{"max_tokens over the limit", `{"model":"m","max_tokens":1000000000,"messages":[{"role":"user","content":"hi"}]}`, "max_tokens"},
		{"no messages", `{"model":"m","max_tokens":10}`, "messages"},
		{"empty messages", `{"model":"m","max_tokens":10,"messages":[]}`, "messages"},
		{"messages not an array", `{"model":"m","max_tokens":10,"messages":{}}`, "messages"},
		{"system role", `{"model":"m","max_tokens":10,"messages":[{"role":"system","content":"hi"}]}`, "messages[0].role"},
		{"no content", `{"model":"m","max_tokens":10,"messages":[{"role":"user"}]}`, "messages[0].content"},
		{"content a number", `{"model":"m","max_tokens":10,"messages":[{"role":"user","content":3}]}`, "messages[0].content"},
		{"block without type", `{"model":"m","max_tokens":10,"messages":[{"role":"user","content":[{"text":"x"}]}]}`, "messages[0].content[0].type"},
		{"text block without text", `{"model":"m","max_tokens":10,"messages":[{"role":"user","content":[{"type":"text"}]}]}`, "messages[0].content[0].text"},
		{"image without source", `{"model":"m","max_tokens":10,"messages":[{"role":"user","content":[{"type":"image"}]}]}`, "messages[0].content[0].source"},
		{"tool_use from the user", `{"model":"m","max_tokens":10,"messages":[{"role":"user","content":[{"type":"tool_use","id":"t","name":"f","input":{}}]}]}`, "messages[0].content[0].type"},
		{"tool_use input not an object", `{"model":"m","max_tokens":10,"messages":[{"role":"user","content":"q"},{"role":"assistant","content":[{"type":"tool_use","id":"t","name":"f","input":"x"}]}]}`, "messages[1].content[0].input"},
		{"tool_result without id", `{"model":"m","max_tokens":10,"messages":[{"role":"user","content":[{"type":"tool_result","content":"x"}]}]}`, "messages[0].content[0].tool_use_id"},
		{"system a number", `{` + ok + `,"system":1}`, "system"},
		{"system image block", `{` + ok + `,"system":[{"type":"image","source":{}}]}`, "system[0].type"},
		{"stream a string", `{` + ok + `,"stream":"yes"}`, "stream"},
		{"temperature above 1", `{` + ok + `,"temperature":1.5}`, "temperature"},
		{"top_p a string", `{` + ok + `,"top_p":"0.5"}`, "top_p"},
		{"negative top_k", `{` + ok + `,"top_k":-1}`, "top_k"},
		{"stop_sequences a string", `{` + ok + `,"stop_sequences":"END"}`, "stop_sequences"},
		{"stop_sequences with a number", `{` + ok + `,"stop_sequences":["a",2]}`, "stop_sequences[1]"},
		{"tools an object", `{` + ok + `,"tools":{}}`, "tools"},
		{"tool without name", `{` + ok + `,"tools":[{"input_schema":{}}]}`, "tools[0].name"},
		{"custom tool without schema", `{` + ok + `,"tools":[{"name":"f"}]}`, "tools[0].input_schema"},
		{"tool_choice a string", `{` + ok + `,"tool_choice":"auto"}`, "tool_choice"},
		{"tool_choice unknown type", `{` + ok + `,"tool_choice":{"type":"required"}}`, "tool_choice.type"},
		{"tool_choice tool without name", `{` + ok + `,"tool_choice":{"type":"tool"}}`, "tool_choice.name"},
		{"metadata a string", `{` + ok + `,"metadata":"x"}`, "metadata"},
		{"metadata.user_id a number", `{` + ok + `,"metadata":{"user_id":1}}`, "metadata.user_id"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			req, err := Parse([]byte(tt.body), api.DefaultLimits)
			var e *api.Error
			if !errors.As(err, &e) {
				t.Fatalf("Parse accepted it (%+v) or failed with %T: %v", req, err, err)
			}
			if e.Status != http.StatusBadRequest || e.Param != tt.param {
				t.Fatalf("status %d param %q; want 400 %q (%s)", e.Status, e.Param, tt.param, e.Message)
			}
			if tt.param != "" && !strings.HasPrefix(e.Message, tt.param) {
				t.Fatalf("message %q does not start with the field %q", e.Message, tt.param)
			}
		})
	}
}

func TestParseEnforcesTheMessageLimit(t *testing.T) {
	body := `{"model":"m","max_tokens":1,"messages":[` + strings.Repeat(`{"role":"user","content":"x"},`, 3) + `{"role":"user","content":"x"}]}`
	if _, err := Parse([]byte(body), api.Limits{MaxMessages: 4}); err != nil {
		t.Fatalf("4 messages at a limit of 4: %v", err)
	}
	if _, err := Parse([]byte(body), api.Limits{MaxMessages: 3}); err == nil {
		t.Fatal("4 messages at a limit of 3 accepted")
	}
}

func TestParseDoesNotAllocateMuch(t *testing.T) {
	body := []byte(`{"model":"claude-sonnet-4-5","max_tokens":1024,"system":"be brief","messages":[{"role":"user","content":"hello"},{"role":"assistant","content":[{"type":"text","text":"hi"}]},{"role":"user","content":[{"type":"text","text":"more"}]}],"temperature":0.2}`)
	// The Request and the cloned model name.
	if n := testing.AllocsPerRun(100, func() { _, _ = Parse(body, api.DefaultLimits) }); n > 2 {
		t.Fatalf("Parse allocates %v times per call; want at most 2", n)
	}
}
