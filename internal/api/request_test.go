package api

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

func TestParseChatRequestAcceptsValidRequests(t *testing.T) {
	tests := []struct {
		name, body   string
		model        string
		stream, incl bool
		maxTokens    int64
	}{
		{"minimal", `{"model":"gpt-4","messages":[{"role":"user","content":"hi"}]}`, "gpt-4", false, false, 0},
		{"stream with usage", `{"model":"m","stream":true,"stream_options":{"include_usage":true},"messages":[{"role":"user","content":"hi"}]}`, "m", true, true, 0},
		{"content parts", `{"model":"m","messages":[{"role":"user","content":[{"type":"text","text":"a"},{"type":"image_url","image_url":{"url":"data:image/png;base64,AAAA"}}]}]}`, "m", false, false, 0},
		{"assistant tool call without content", `{"model":"m","messages":[{"role":"user","content":"x"},{"role":"assistant","tool_calls":[{"id":"1","type":"function","function":{"name":"f","arguments":"{}"}}]},{"role":"tool","tool_call_id":"1","content":"r"}]}`, "m", false, false, 0},
		{"max_completion_tokens", `{"model":"m","max_completion_tokens":7,"messages":[{"role":"user","content":"x"}]}`, "m", false, false, 7},
		{"unknown fields pass", `{"model":"m","future_param":{"a":1},"messages":[{"role":"developer","content":"x"}]}`, "m", false, false, 0},
		{"nulls are absent", `{"model":"m","temperature":null,"stream":null,"n":null,"messages":[{"role":"user","content":"x"}]}`, "m", false, false, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			req, err := ParseChatRequest([]byte(tt.body), DefaultLimits)
			if err != nil {
				t.Fatalf("unexpected error: %v", err)
			}
			if req.Model != tt.model || req.Stream != tt.stream || req.IncludeUsage != tt.incl || req.MaxTokens != tt.maxTokens {
				t.Fatalf("got model=%q stream=%v incl=%v max=%d", req.Model, req.Stream, req.IncludeUsage, req.MaxTokens)
			}
			if string(req.Body) != tt.body {
				t.Fatal("body must be the client's bytes, untouched")
			}
		})
	}
}

func TestParseChatRequestRejectsBadInputWithParam(t *testing.T) {
	tests := []struct {
		name, body, param, msg string
	}{
		{"empty body", ``, "", "empty"},
		{"malformed JSON", `{"model":`, "", "not valid JSON"},
		{"array body", `[1,2]`, "", "JSON object"},
		{"invalid UTF-8", "{\"model\":\"\xff\",\"messages\":[]}", "", "UTF-8"},
		{"missing model", `{"messages":[{"role":"user","content":"x"}]}`, "model", "model"},
		{"model not string", `{"model":42,"messages":[{"role":"user","content":"x"}]}`, "model", "string"},
		{"empty model", `{"model":"","messages":[{"role":"user","content":"x"}]}`, "model", "non-empty"},
		{"missing messages", `{"model":"m"}`, "messages", "messages"},
		{"messages not array", `{"model":"m","messages":"hi"}`, "messages", "array"},
		{"empty messages", `{"model":"m","messages":[]}`, "messages", "at least one"},
		{"message not object", `{"model":"m","messages":["hi"]}`, "messages[0]", "object"},
		{"missing role", `{"model":"m","messages":[{"content":"x"}]}`, "messages[0].role", "string"},
		{"unknown role", `{"model":"m","messages":[{"role":"wizard","content":"x"}]}`, "messages[0].role", "unknown role"},
		{"content number", `{"model":"m","messages":[{"role":"user","content":5}]}`, "messages[0].content", "string"},
		{"user without content", `{"model":"m","messages":[{"role":"user"}]}`, "messages[0].content", "required"},
		{"part without type", `{"model":"m","messages":[{"role":"user","content":[{"text":"a"}]}]}`, "messages[0].content[0].type", "type"},
		{"text part without text", `{"model":"m","messages":[{"role":"user","content":[{"type":"text"}]}]}`, "messages[0].content[0].text", "string"},
		{"temperature too high", `{"model":"m","temperature":2.5,"messages":[{"role":"user","content":"x"}]}`, "temperature", "between"},
		{"temperature string", `{"model":"m","temperature":"hot","messages":[{"role":"user","content":"x"}]}`, "temperature", "number"},
		{"top_p negative", `{"model":"m","top_p":-0.1,"messages":[{"role":"user","content":"x"}]}`, "top_p", "between"},
		{"max_tokens zero", `{"model":"m","max_tokens":0,"messages":[{"role":"user","content":"x"}]}`, "max_tokens", "between"},
		{"max_tokens fraction", `{"model":"m","max_tokens":1.5,"messages":[{"role":"user","content":"x"}]}`, "max_tokens", "integer"},
		{"n too large", `{"model":"m","n":1000,"messages":[{"role":"user","content":"x"}]}`, "n", "between"},
		{"stream not bool", `{"model":"m","stream":"yes","messages":[{"role":"user","content":"x"}]}`, "stream", "boolean"},
		{"second message bad", `{"model":"m","messages":[{"role":"user","content":"x"},{"role":"user","content":{}}]}`, "messages[1].content", "string"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := ParseChatRequest([]byte(tt.body), DefaultLimits)
			if err == nil {
				t.Fatal("expected an error")
			}
			e := FromError(err)
			if e.Status != http.StatusBadRequest || e.Type != TypeInvalidRequest {
				t.Fatalf("status %d type %q, want 400 invalid_request_error", e.Status, e.Type)
			}
			if e.Param != tt.param {
				t.Fatalf("param %q, want %q", e.Param, tt.param)
			}
			if !strings.Contains(e.Message, tt.msg) {
				t.Fatalf("message %q does not mention %q", e.Message, tt.msg)
			}
		})
	}
}

func TestParseChatRequestEnforcesMessageCount(t *testing.T) {
	body := `{"model":"m","messages":[` + strings.Repeat(`{"role":"user","content":"x"},`, 3) + `{"role":"user","content":"x"}]}`
	_, err := ParseChatRequest([]byte(body), Limits{MaxMessages: 3})
	if e := FromError(err); err == nil || e.Param != "messages" {
		t.Fatalf("got %v, want a messages error", err)
	}
}

func TestWriteErrorWritesOpenAIEnvelope(t *testing.T) {
	rec := httptest.NewRecorder()
	WriteError(rec, InvalidRequest("temperature", "bad \"value\""))
	if rec.Code != 400 || rec.Header().Get("Content-Type") != "application/json" {
		t.Fatalf("got %d %q", rec.Code, rec.Header().Get("Content-Type"))
	}
	var env struct {
		Error struct {
			Message string  `json:"message"`
			Type    string  `json:"type"`
			Param   *string `json:"param"`
			Code    *string `json:"code"`
		} `json:"error"`
	}
	if err := json.Unmarshal(rec.Body.Bytes(), &env); err != nil {
		t.Fatalf("envelope is not JSON: %v: %s", err, rec.Body)
	}
	if env.Error.Message != `bad "value"` || env.Error.Type != TypeInvalidRequest || env.Error.Param == nil || *env.Error.Param != "temperature" || env.Error.Code != nil {
		t.Fatalf("unexpected envelope %s", rec.Body)
	}
}

func TestAppendStringMatchesEncodingJSON(t *testing.T) {
	for _, s := range []string{"", "plain", "quote\" back\\ nl\n tab\t", "\x00\x1f", "<html>&", "é ü 日本", "\u2028\u2029", "bad\xffutf8"} {
		got := AppendString(nil, s)
		var back string
		if err := json.Unmarshal(got, &back); err != nil {
			t.Fatalf("%q: %s is not a JSON string: %v", s, got, err)
		}
		want, _ := json.Marshal(s)
		var wantBack string
		_ = json.Unmarshal(want, &wantBack)
		if back != wantBack {
			t.Fatalf("%q round-trips to %q, encoding/json gives %q", s, back, wantBack)
		}
	}
}

// FuzzParseChatRequest checks the parser never panics and that everything it
// accepts has the fields the gateway relies on.
func FuzzParseChatRequest(f *testing.F) {
	for _, s := range []string{
		`{"model":"gpt-4","messages":[{"role":"user","content":"What is 2+2?"}]}`,
		`{"model":"\"; rm -rf /","messages":[{"role":"user","content":"x"}]}`,
		`{"model":"m","stream":true,"messages":[{"role":"user","content":[{"type":"text","text":"a"}]}]}`,
		`{"model":`, `[]`, `null`, `{"model":"m","messages":[{}]}`,
		`{"model":"m","temperature":1e309,"messages":[{"role":"user","content":"x"}]}`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		req, err := ParseChatRequest(body, DefaultLimits)
		if err != nil {
			if e := FromError(err); e.Status != 400 {
				t.Fatalf("rejection must be a 400, got %d", e.Status)
			}
			return
		}
		if req.Model == "" {
			t.Fatal("accepted a request without a model")
		}
		if !json.Valid(body) {
			t.Fatal("accepted invalid JSON")
		}
	})
}

func BenchmarkParseChatRequest(b *testing.B) {
	body := []byte(`{"model":"gpt-4o-mini","temperature":0.2,"max_tokens":256,"messages":[{"role":"system","content":"You are a helpful assistant."},{"role":"user","content":"What is the capital of France? Answer in one word."}]}`)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := ParseChatRequest(body, DefaultLimits); err != nil {
			b.Fatal(err)
		}
	}
}
