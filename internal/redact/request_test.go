package redact

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/tidwall/gjson"
)

func TestRedactRequestRedactsToolCallArgumentsAndToolResults(t *testing.T) {
	r := newDefault(t)
	for _, tt := range []struct {
		name, body string
		path       string // where the redacted text is
		want       string
	}{
		{"tool call arguments",
			`{"model":"m","messages":[{"role":"assistant","content":null,"tool_calls":[{"id":"c1","type":"function","function":{"name":"send","arguments":"{\"to\":\"alice@example.com\",\"ssn\":\"123-45-6789\"}"}}]}]}`,
			"messages.0.tool_calls.0.function.arguments", `{"to":"[EMAIL]","ssn":"[SSN]"}`},
		{"second tool call, nested argument",
			`{"model":"m","messages":[{"role":"assistant","tool_calls":[{"id":"c1","function":{"name":"a","arguments":"{}"}},{"id":"c2","function":{"name":"b","arguments":"{\"who\":[{\"mail\":\"alice@example.com\"}],\"n\":1}"}}]}]}`,
			"messages.0.tool_calls.1.function.arguments", `{"who":[{"mail":"[EMAIL]"}],"n":1}`},
		{"arguments that are not JSON",
			`{"model":"m","messages":[{"role":"assistant","tool_calls":[{"id":"c1","function":{"name":"a","arguments":"mail alice@example.com"}}]}]}`,
			"messages.0.tool_calls.0.function.arguments", `mail [EMAIL]`},
		{"arguments JSON with a repeated key",
			`{"model":"m","messages":[{"role":"assistant","tool_calls":[{"id":"c1","function":{"name":"a","arguments":"{\"to\":\"x\",\"to\":\"alice@example.com\"}"}}]}]}`,
			"messages.0.tool_calls.0.function.arguments", `{"to":"x","to":"[EMAIL]"}`},
		{"legacy function_call arguments",
			`{"model":"m","messages":[{"role":"assistant","content":null,"function_call":{"name":"send","arguments":"{\"to\":\"alice@example.com\"}"}}]}`,
			"messages.0.function_call.arguments", `{"to":"[EMAIL]"}`},
		{"tool result string",
			`{"model":"m","messages":[{"role":"tool","tool_call_id":"c1","content":"{\"email\":\"alice@example.com\"}"}]}`,
			"messages.0.content", `{"email":"[EMAIL]"}`},
		{"tool result parts",
			`{"model":"m","messages":[{"role":"tool","tool_call_id":"c1","content":[{"type":"text","text":"ssn 123-45-6789"}]}]}`,
			"messages.0.content.0.text", `ssn [SSN]`},
		{"legacy function result",
			`{"model":"m","messages":[{"role":"function","name":"lookup","content":"alice@example.com"}]}`,
			"messages.0.content", `[EMAIL]`},
	} {
		t.Run(tt.name, func(t *testing.T) {
			out, counts, err := r.RedactRequest([]byte(tt.body))
			if err != nil {
				t.Fatal(err)
			}
			if !json.Valid(out) {
				t.Fatalf("output is not JSON: %s", out)
			}
			if strings.Contains(string(out), "alice@example.com") || strings.Contains(string(out), "123-45-6789") {
				t.Fatalf("PII left in %s", out)
			}
			if got := gjson.GetBytes(out, tt.path).Str; got != tt.want {
				t.Fatalf("%s = %q, want %q", tt.path, got, tt.want)
			}
			if len(counts) == 0 {
				t.Fatal("no redaction counted")
			}
		})
	}
}

func TestRedactRequestRedactsResponsesInput(t *testing.T) {
	r := newDefault(t)
	body := `{"model":"m","input":[{"role":"user","content":"mail alice@example.com"},` +
		`{"type":"message","role":"user","content":[{"type":"input_text","text":"ssn 123-45-6789"},{"type":"input_image","image_url":"https://x/alice@example.com.png"}]},` +
		`{"type":"function_call","call_id":"c","name":"send","arguments":"{\"to\":\"bob@example.com\"}"},` +
		`{"type":"function_call_output","call_id":"c","output":"sent to bob@example.com"}],` +
		`"instructions":"reply to carol@example.com","metadata":{"owner":"dave@example.com"}}`
	out, counts, err := r.RedactRequest([]byte(body))
	if err != nil {
		t.Fatal(err)
	}
	for path, want := range map[string]string{
		"input.0.content":             "mail [EMAIL]",
		"input.1.content.0.text":      "ssn [SSN]",
		"input.1.content.1.image_url": "https://x/alice@example.com.png",
		"input.2.arguments":           `{"to":"[EMAIL]"}`,
		"input.3.output":              "sent to [EMAIL]",
		"instructions":                "reply to [EMAIL]",
		"metadata.owner":              "dave@example.com",
	} {
		if got := gjson.GetBytes(out, path).Str; got != want {
			t.Errorf("%s = %q, want %q", path, got, want)
		}
	}
	if counts["email"] != 4 || counts["ssn"] != 1 {
		t.Errorf("counts = %v", counts)
	}
	if !json.Valid(out) {
		t.Errorf("not JSON: %s", out)
	}
	out, _, _ = r.RedactRequest([]byte(`{"model":"m","input":"call 555-123-4567 or alice@example.com"}`))
	if got := gjson.GetBytes(out, "input").Str; strings.Contains(got, "alice@") {
		t.Errorf("a string input was not redacted: %q", got)
	}
}
