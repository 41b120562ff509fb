package responses

import (
	"errors"
	"strings"
	"testing"

	"github.com/edge-agent/edge-agent/internal/api"
)

func TestParseReadsModelStreamBudgetAndStore(t *testing.T) {
	s := &Surface{}
	req, err := s.Parse([]byte(`{"model":"gpt-4o","input":"hi","stream":true,"max_output_tokens":64,"store":false}`), api.DefaultLimits)
	if err != nil {
		t.Fatal(err)
	}
	info := req.Info()
	if info.Model != "gpt-4o" || !info.Stream || info.MaxTokens != 64 {
		t.Errorf("Info = %+v", info)
	}
	if r := req.(*Request); r.f.store {
		t.Error("store: false was not read")
	}
	if n := req.PromptTokens(); n < 1 {
		t.Errorf("PromptTokens = %d", n)
	}
}

func TestParseAcceptsEveryInputShape(t *testing.T) {
	for name, body := range map[string]string{
		"string":               `{"model":"m","input":"hi"}`,
		"message items":        `{"model":"m","input":[{"role":"user","content":"hi"},{"type":"message","role":"assistant","content":[{"type":"output_text","text":"yo"}]}]}`,
		"function round trip":  `{"model":"m","input":[{"type":"function_call","call_id":"c","name":"f","arguments":"{}"},{"type":"function_call_output","call_id":"c","output":"ok"}]}`,
		"only previous id":     `{"model":"m","previous_response_id":"resp_1"}`,
		"unknown item type":    `{"model":"m","input":[{"type":"web_search_call","id":"ws_1","status":"completed"}]}`,
		"every parameter":      `{"model":"m","input":"x","instructions":"be brief","tools":[{"type":"function","name":"f","parameters":{"type":"object"}},{"type":"web_search"}],"tool_choice":{"type":"function","name":"f"},"text":{"format":{"type":"json_schema","name":"n","schema":{"type":"object"}}},"reasoning":{"effort":"low"},"temperature":1.5,"top_p":0.5,"metadata":{"a":"b"},"parallel_tool_calls":false,"user":"u"}`,
		"nulls where optional": `{"model":"m","input":"x","instructions":null,"max_output_tokens":null,"metadata":null,"previous_response_id":null,"text":null,"reasoning":null}`,
	} {
		if _, err := (&Surface{}).Parse([]byte(body), api.DefaultLimits); err != nil {
			t.Errorf("%s: %v", name, err)
		}
	}
}

func TestParseRejectsBadInputWithParam(t *testing.T) {
	for _, tc := range []struct{ name, body, param string }{
		{"empty", ``, ""},
		{"not json", `{"model":`, ""},
		{"array body", `[]`, ""},
		{"no model", `{"input":"hi"}`, "model"},
		{"model not string", `{"model":1,"input":"hi"}`, "model"},
		{"no input", `{"model":"m"}`, "input"},
		{"input number", `{"model":"m","input":3}`, "input"},
		{"item not object", `{"model":"m","input":["hi"]}`, "input[0]"},
		{"message without role", `{"model":"m","input":[{"content":"hi"}]}`, "input[0].role"},
		{"unknown role", `{"model":"m","input":[{"role":"tool","content":"hi"}]}`, "input[0].role"},
		{"content number", `{"model":"m","input":[{"role":"user","content":1}]}`, "input[0].content"},
		{"part without type", `{"model":"m","input":[{"role":"user","content":[{"text":"x"}]}]}`, "input[0].content[0].type"},
		{"function call without name", `{"model":"m","input":[{"type":"function_call","call_id":"c","arguments":"{}"}]}`, "input[0].name"},
		{"output without call id", `{"model":"m","input":[{"type":"function_call_output","output":"x"}]}`, "input[0].call_id"},
		{"stream string", `{"model":"m","input":"x","stream":"yes"}`, "stream"},
		{"store number", `{"model":"m","input":"x","store":1}`, "store"},
		{"background", `{"model":"m","input":"x","background":true}`, "background"},
		{"temperature high", `{"model":"m","input":"x","temperature":2.5}`, "temperature"},
		{"top_p high", `{"model":"m","input":"x","top_p":1.5}`, "top_p"},
		{"max_output_tokens zero", `{"model":"m","input":"x","max_output_tokens":0}`, "max_output_tokens"},
		{"max_output_tokens fraction", `{"model":"m","input":"x","max_output_tokens":1.5}`, "max_output_tokens"},
		{"tools object", `{"model":"m","input":"x","tools":{}}`, "tools"},
		{"function tool without name", `{"model":"m","input":"x","tools":[{"type":"function"}]}`, "tools[0].name"},
		{"tool_choice unknown", `{"model":"m","input":"x","tool_choice":"any"}`, "tool_choice"},
		{"tool_choice function without name", `{"model":"m","input":"x","tool_choice":{"type":"function"}}`, "tool_choice.name"},
		{"text format unknown", `{"model":"m","input":"x","text":{"format":{"type":"yaml"}}}`, "text.format.type"},
		{"json_schema without schema", `{"model":"m","input":"x","text":{"format":{"type":"json_schema","name":"n"}}}`, "text.format.schema"},
		{"effort unknown", `{"model":"m","input":"x","reasoning":{"effort":"max"}}`, "reasoning.effort"},
		{"metadata value number", `{"model":"m","input":"x","metadata":{"a":1}}`, "metadata.a"},
		{"previous id empty", `{"model":"m","input":"x","previous_response_id":""}`, "previous_response_id"},
		{"conversation", `{"model":"m","input":"x","conversation":"conv_1"}`, "conversation"},
		{"repeated key", `{"model":"m","input":"x","model":"n"}`, "model"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := (&Surface{}).Parse([]byte(tc.body), api.DefaultLimits)
			var e *api.Error
			if !errors.As(err, &e) {
				t.Fatalf("err = %v, want an *api.Error", err)
			}
			if e.Status != 400 || e.Param != tc.param || e.Type != api.TypeInvalidRequest {
				t.Errorf("got %d %q %q (%s), want 400 param %q", e.Status, e.Param, e.Type, e.Message, tc.param)
			}
		})
	}
}

func TestParseBoundsTheItemCount(t *testing.T) {
	body := `{"model":"m","input":[` + strings.Repeat(`{"role":"user","content":"x"},`, 4) + `{"role":"user","content":"x"}]}`
	_, err := (&Surface{}).Parse([]byte(body), api.Limits{MaxMessages: 4})
	if e := api.FromError(err); err == nil || e.Param != "input" {
		t.Errorf("err = %v, want a 400 naming input", err)
	}
}
