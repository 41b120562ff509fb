package chatreq

import (
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/tidwall/gjson"

	"github.com/edge-agent/edge-agent/internal/api"
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

func TestEachToolCallChecksEveryCallAndNamesTheBadField(t *testing.T) {
	for _, tc := range []struct {
		name, calls string
		needID      bool
		param       string // "" : accepted
		inputs      []string
	}{
		{"two calls", `[{"id":"a","type":"function","function":{"name":"f","arguments":"{\"x\":1}"}},{"id":"b","function":{"name":"g"}}]`, true, "", []string{`{"x":1}`, `{}`}},
		{"no id where none is needed", `[{"function":{"name":"f","arguments":" "}}]`, false, "", []string{`{}`}},
		{"no id", `[{"function":{"name":"f"}}]`, true, "messages[2].tool_calls[0].id", nil},
		{"not a function", `[{"id":"a","type":"code","function":{"name":"f"}}]`, true, "messages[2].tool_calls[0].type", nil},
		{"no name", `[{"id":"a","function":{}},{"id":"b"}]`, true, "messages[2].tool_calls[0].function.name", nil},
		{"arguments not an object", `[{"id":"a","function":{"name":"f","arguments":"[1]"}}]`, true, "messages[2].tool_calls[0].function.arguments", nil},
		{"arguments not a string", `[{"id":"a","function":{"name":"f","arguments":{"x":1}}}]`, true, "messages[2].tool_calls[0].function.arguments", nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var inputs []string
			err := EachToolCall(gjson.Parse(tc.calls), 2, tc.needID, func(c ToolCall) { inputs = append(inputs, c.Input) })
			if tc.param == "" {
				if err != nil || strings.Join(inputs, " ") != strings.Join(tc.inputs, " ") {
					t.Fatalf("err %v, inputs %q; want %q", err, inputs, tc.inputs)
				}
				return
			}
			var e *api.Error
			if !errors.As(err, &e) || e.Param != tc.param || e.Status != 400 {
				t.Fatalf("err %v; want a 400 naming %s", err, tc.param)
			}
		})
	}
}

func TestEachSystemTextTakesSystemAndDeveloperTextsInOrder(t *testing.T) {
	msgs := gjson.Parse(`[{"role":"system","content":"a"},{"role":"user","content":"u"},{"role":"developer","content":[{"type":"text","text":"b","cache_control":{"type":"ephemeral"}},{"type":"text","text":""}]},{"role":"system","content":null}]`)
	var got []string
	err := EachSystemText(msgs, func(text, cc gjson.Result) { got = append(got, text.Str+"/"+cc.Get("type").Str) })
	if err != nil || strings.Join(got, " ") != "a/ b/ephemeral" {
		t.Fatalf("err %v, texts %q", err, got)
	}
	for bad, param := range map[string]string{
		`[{"role":"user","content":"u"},{"role":"system","content":[{"type":"image_url"}]}]`: "messages[1].content[0].type",
		`[{"role":"developer","content":7}]`:                                                 "messages[0].content",
	} {
		var e *api.Error
		if err := EachSystemText(gjson.Parse(bad), func(_, _ gjson.Result) {}); !errors.As(err, &e) || e.Param != param {
			t.Fatalf("%s: err %v; want a 400 naming %s", bad, err, param)
		}
	}
}

func TestEachAssistantTextTakesTextAndRefusalParts(t *testing.T) {
	var got []string
	fn := func(text, cc gjson.Result) { got = append(got, text.Str+"/"+cc.Get("type").Str) }
	if err := EachAssistantText(gjson.Parse(`"s"`), 0, "X models", fn); err != nil {
		t.Fatal(err)
	}
	if err := EachAssistantText(gjson.Parse(`[{"type":"text","text":"a","cache_control":{"type":"ephemeral"}},{"type":"refusal","refusal":"r"},{"type":"text","text":""}]`), 0, "X models", fn); err != nil {
		t.Fatal(err)
	}
	if strings.Join(got, " ") != "s/ a/ephemeral r/" {
		t.Fatalf("texts %q", got)
	}
	var e *api.Error
	err := EachAssistantText(gjson.Parse(`[{"type":"image_url"}]`), 3, "X models", fn)
	if !errors.As(err, &e) || e.Param != "messages[3].content[0].type" || !strings.Contains(e.Message, "X models") {
		t.Fatalf("err %v", err)
	}
}

func TestEachUserPartSkipsEmptyTextsAndRefusesWhatTheProviderDoesNotTake(t *testing.T) {
	takes := func(got *[]string) func(Part, int) (bool, error) {
		return func(p Part, j int) (bool, error) {
			switch p.Type.Str {
			case "text":
				*got = append(*got, fmt.Sprintf("%d:text:%s/%s", j, p.Text.Str, p.CacheControl.Get("type").Str))
			case "image_url":
				*got = append(*got, fmt.Sprintf("%d:image:%s", j, p.ImageURL.Get("url").Str))
			case "input_audio":
				return true, api.InvalidRequest("x", "bad audio")
			default:
				return false, nil
			}
			return true, nil
		}
	}
	for _, tc := range []struct {
		content string
		want    string // the parts fn took, or the 400's param
	}{
		{`"hi"`, "-1:text:hi/"},
		{`""`, ""},
		{`null`, ""},
		{`[{"type":"text","text":"a","cache_control":{"type":"ephemeral"}},{"type":"text","text":""},{"type":"image_url","image_url":{"url":"u"}}]`,
			"0:text:a/ephemeral 2:image:u"},
		{`[{"type":"text","text":"a"},{"type":"file","file":{}}]`, "400 messages[2].content[1].type"},
		{`[{"type":"input_audio","input_audio":{}}]`, "400 x"},
		{`7`, "400 messages[2].content"},
		{`{"type":"text"}`, "400 messages[2].content"},
	} {
		var got []string
		err := EachUserPart(gjson.Parse(tc.content), 2, "X models", takes(&got))
		res := strings.Join(got, " ")
		var e *api.Error
		if errors.As(err, &e) {
			res = fmt.Sprintf("400 %s", e.Param)
			if e.Status != 400 || e.Param == "messages[2].content[1].type" && !strings.Contains(e.Message, `"file" is not supported by X models`) {
				t.Errorf("%s: error %v", tc.content, err)
			}
		} else if err != nil {
			t.Errorf("%s: error %v", tc.content, err)
		}
		if res != tc.want {
			t.Errorf("%s: %q, want %q", tc.content, res, tc.want)
		}
	}
}

func TestAppendStopDropsEmptySequencesAndWritesNothingWithoutOne(t *testing.T) {
	for _, tc := range []struct{ stop, want string }{
		{`"END"`, `{,"s":["END"]`},
		{`""`, `{`},
		{`null`, `{`},
		{`[]`, `{`},
		{`["", ""]`, `{`},
		{`["a", "", "b\n"]`, `{,"s":["a","b\n"]`},
		{`7`, `400`},
		{`["a", 7]`, `400`},
	} {
		stop := gjson.Parse(tc.stop)
		if tc.stop == "" {
			stop = gjson.Result{}
		}
		got, err := AppendStop([]byte("{"), "s", true, stop)
		if err != nil {
			var e *api.Error
			if !errors.As(err, &e) || e.Status != 400 || e.Param != "stop" {
				t.Errorf("%s: error %v", tc.stop, err)
			}
			got = []byte("400")
		}
		if string(got) != tc.want {
			t.Errorf("%s: %s, want %s", tc.stop, got, tc.want)
		}
	}
	if got, err := AppendStop(nil, "s", false, gjson.Result{}); err != nil || len(got) != 0 {
		t.Errorf("absent stop: %q, %v", got, err)
	}
}

func TestToolChoiceSpeaksTheProvidersWords(t *testing.T) {
	m := ToolModes{Auto: "A", Required: "R", None: "N", Function: "F"}
	for _, tc := range []struct{ choice, want string }{
		{``, "A "},
		{`null`, "A "},
		{`"auto"`, "A "},
		{`"required"`, "R "},
		{`"none"`, "N "},
		{`{"type":"function","function":{"name":"get_weather"}}`, `F "get_weather"`},
		{`"sometimes"`, "400 tool_choice"},
		{`{"type":"function","function":{"name":""}}`, "400 tool_choice.function.name"},
		{`{"type":"function"}`, "400 tool_choice.function.name"},
		{`{"type":"custom"}`, "400 tool_choice"},
		{`3`, "400 tool_choice"},
	} {
		c := gjson.Parse(tc.choice)
		mode, name, err := ToolChoice(c, m)
		got := mode + " " + name
		var e *api.Error
		if errors.As(err, &e) {
			got = "400 " + e.Param
		} else if err != nil {
			t.Fatalf("%s: %v", tc.choice, err)
		}
		if got != tc.want {
			t.Errorf("%s: %q, want %q", tc.choice, got, tc.want)
		}
	}
}
