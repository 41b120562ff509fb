package chatreq

import (
	"testing"

	"github.com/tidwall/gjson"
)

func TestParseMessageAndPartReadEveryFieldInOnePass(t *testing.T) {
	m := ParseMessage(gjson.Parse(`{"role":"tool","tool_call_id":"c1","content":[{"type":"text","text":"hi","cache_control":{"type":"ephemeral"}}],"tool_calls":[]}`))
	if m.Role.Str != "tool" || m.ToolCallID.Str != "c1" || !m.Content.IsArray() || !m.ToolCalls.IsArray() {
		t.Fatalf("message %+v", m)
	}
	p := ParsePart(m.Content.Array()[0])
	if p.Type.Str != "text" || p.Text.Str != "hi" || !p.CacheControl.IsObject() || p.ImageURL.Exists() {
		t.Fatalf("part %+v", p)
	}
	if got := ContentParam(2, 3); got != "messages[2].content[3]" {
		t.Fatalf("ContentParam = %q", got)
	}
	if got := string(AppendCompact([]byte("x"), `{ "a" : [1, 2] }`)); got != `x{"a":[1,2]}` {
		t.Fatalf("AppendCompact = %q", got)
	}
}
