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
		{"role after content", `{"model":"m","messages":[{"content":"x","role":"user"}]}`, "m", false, false, 0},
		{"escaped keys", `{"model":"m","messages":[{"r\u006fle":"user","c\u006fntent":"x"}]}`, "m", false, false, 0},
		{"null content", `{"model":"m","messages":[{"role":"user","content":null}]}`, "m", false, false, 0},
		{"text after type", `{"model":"m","messages":[{"role":"user","content":[{"text":"a","type":"text"}]}]}`, "m", false, false, 0},
		{"model with inner space and non-ASCII letters", `{"model":"my modèle/v1:ä","messages":[{"role":"user","content":"x"}]}`, "my modèle/v1:ä", false, false, 0},
		{"escaped model", `{"model":"gpt\u002d4","messages":[{"role":"user","content":"x"}]}`, "gpt-4", false, false, 0},
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
		{"model with NUL", `{"model":"gpt-4\u0000x","messages":[{"role":"user","content":"x"}]}`, "model", "control"},
		{"model with newline", `{"model":"gpt-4\nx","messages":[{"role":"user","content":"x"}]}`, "model", "control"},
		{"model with DEL", "{\"model\":\"gpt-4\x7f\",\"messages\":[{\"role\":\"user\",\"content\":\"x\"}]}", "model", "control"},
		{"model with zero-width space", `{"model":"gpt-4\u200b","messages":[{"role":"user","content":"x"}]}`, "model", "printable"},
		{"model with C1 control", `{"model":"gpt-4\u0085","messages":[{"role":"user","content":"x"}]}`, "model", "printable"},
		{"model of spaces only", `{"model":"   ","messages":[{"role":"user","content":"x"}]}`, "model", "space"},
		{"model with trailing space", `{"model":"gpt-4 ","messages":[{"role":"user","content":"x"}]}`, "model", "space"},
		{"model too long", `{"model":"` + strings.Repeat("m", MaxModelNameBytes+1) + `","messages":[{"role":"user","content":"x"}]}`, "model", "longer than 256"},
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
		{"role not string", `{"model":"m","messages":[{"role":5,"content":"x"}]}`, "messages[0].role", "string"},
		{"part not object", `{"model":"m","messages":[{"role":"user","content":["a"]}]}`, "messages[0].content[0]", "object"},
		{"part type empty", `{"model":"m","messages":[{"role":"user","content":[{"type":""}]}]}`, "messages[0].content[0].type", "non-empty"},
		{"later part text not string", `{"model":"m","messages":[{"role":"user","content":"x"},{"role":"user","content":[{"type":"text","text":"a"},{"text":5,"type":"text"}]}]}`, "messages[1].content[1].text", "messages[1].content[1].text must be a string"},
		{"presence_penalty too low", `{"model":"m","presence_penalty":-3,"messages":[{"role":"user","content":"x"}]}`, "presence_penalty", "presence_penalty must be between -2 and 2, got -3"},
		{"frequency_penalty string", `{"model":"m","frequency_penalty":"a","messages":[{"role":"user","content":"x"}]}`, "frequency_penalty", "frequency_penalty must be a number"},
		{"max_completion_tokens too large", `{"model":"m","max_completion_tokens":2000000,"messages":[{"role":"user","content":"x"}]}`, "max_completion_tokens", "max_completion_tokens must be between 1 and 1000000"},
		{"escaped max_tokens key", `{"model":"m","max\u005ftokens":0,"messages":[{"role":"user","content":"x"}]}`, "max_tokens", "max_tokens must be between"},
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

// The gateway reuses the body's buffer after a request, so nothing
// ParseChatRequest returns may point into it.
func TestParseChatRequestResultDoesNotAliasBody(t *testing.T) {
	scribble := func(b []byte) {
		for i := range b {
			b[i] = '#'
		}
	}
	body := []byte(`{"model":"gpt-4o","messages":[{"role":"user","content":"x"}]}`)
	req, err := ParseChatRequest(body, DefaultLimits)
	if err != nil {
		t.Fatal(err)
	}
	scribble(body)
	if req.Model != "gpt-4o" {
		t.Fatalf("model changed with the body: %q", req.Model)
	}
	for _, bad := range []string{
		`{"model":"m","frequency_penalty":3,"messages":[{"role":"user","content":"x"}]}`,
		`{"model":"m","max_completion_tokens":0,"messages":[{"role":"user","content":"x"}]}`,
		`{"model":"m","messages":[{"role":"wizard","content":"x"}]}`,
		`{"model":"m","messages":[{"role":"user","content":[{"type":"text","text":1}]}]}`,
	} {
		body := []byte(bad)
		_, err := ParseChatRequest(body, DefaultLimits)
		if err == nil {
			t.Fatalf("%s: expected an error", bad)
		}
		e := FromError(err)
		param, msg := strings.Clone(e.Param), strings.Clone(e.Message)
		scribble(body)
		if e.Param != param || e.Message != msg {
			t.Fatalf("%s: error changed with the body: %q %q", bad, e.Param, e.Message)
		}
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

// BenchmarkParseChatRequestShapes covers the request shapes the gateway sees
// most: one short user turn, a short conversation with sampling parameters,
// a tool-calling round trip, content parts, and a long history.
func BenchmarkParseChatRequestShapes(b *testing.B) {
	var long strings.Builder
	long.WriteString(`{"model":"gpt-4o","stream":true,"stream_options":{"include_usage":true},"messages":[{"role":"system","content":"You are a helpful assistant."}`)
	for i := 0; i < 20; i++ {
		long.WriteString(`,{"role":"user","content":"` + strings.Repeat("Tell me more about that. ", 40) + `"}`)
		long.WriteString(`,{"role":"assistant","content":"` + strings.Repeat("Here is some more detail. ", 60) + `"}`)
	}
	long.WriteString(`]}`)
	shapes := []struct{ name, body string }{
		{"one-turn", `{"model":"gpt-4o-mini","messages":[{"role":"user","content":"Hello, how are you?"}]}`},
		{"three-turns", `{"model":"gpt-4o-mini","temperature":0.7,"max_tokens":512,"messages":[{"role":"system","content":"You are terse."},{"role":"user","content":"Name a prime."},{"role":"assistant","content":"7"},{"role":"user","content":"Another?"}]}`},
		{"tools", `{"model":"gpt-4o","tools":[{"type":"function","function":{"name":"get_weather","description":"Get the weather for a city","parameters":{"type":"object","properties":{"city":{"type":"string"}},"required":["city"]}}}],"tool_choice":"auto","messages":[{"role":"user","content":"Weather in Paris?"},{"role":"assistant","content":null,"tool_calls":[{"id":"call_1","type":"function","function":{"name":"get_weather","arguments":"{\"city\":\"Paris\"}"}}]},{"role":"tool","tool_call_id":"call_1","content":"18C, cloudy"}]}`},
		{"content-parts", `{"model":"gpt-4o","messages":[{"role":"user","content":[{"type":"text","text":"What is in this image?"},{"type":"image_url","image_url":{"url":"https://example.com/cat.png","detail":"low"}}]}]}`},
		{"long-history", long.String()},
	}
	for _, s := range shapes {
		body := []byte(s.body)
		b.Run(s.name, func(b *testing.B) {
			b.ReportAllocs()
			b.SetBytes(int64(len(body)))
			for b.Loop() {
				if _, err := ParseChatRequest(body, DefaultLimits); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
