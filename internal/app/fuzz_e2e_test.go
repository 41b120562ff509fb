package app_test

import (
	"bytes"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/tidwall/gjson"

	"github.com/edge-agent/edge-agent/internal/provider/simulated"
)

func TestHostileInputsGetA4xxEnvelope(t *testing.T) {
	s := startSim(t, simulated.Options{})
	g := startGateway(t, simConfig(s))
	tests := []struct {
		name, body string
		status     int
		param      string
	}{
		{"shell in model", `{"model":"\"; rm -rf /","messages":[{"role":"user","content":"x"}]}`, 404, ""},
		{"temperature 5", `{"model":"gpt-4o","temperature":5,"messages":[{"role":"user","content":"x"}]}`, 400, "temperature"},
		{"top_p 2", `{"model":"gpt-4o","top_p":2,"messages":[{"role":"user","content":"x"}]}`, 400, "top_p"},
		{"n 1000", `{"model":"gpt-4o","n":1000,"messages":[{"role":"user","content":"x"}]}`, 400, "n"},
		{"max_tokens negative", `{"model":"gpt-4o","max_tokens":-5,"messages":[{"role":"user","content":"x"}]}`, 400, "max_tokens"},
		{"invalid UTF-8", "{\"model\":\"gpt-4o\",\"messages\":[{\"role\":\"user\",\"content\":\"\xc3\x28\"}]}", 400, ""},
		{"role hacker", `{"model":"gpt-4o","messages":[{"role":"hacker","content":"x"}]}`, 400, "messages[0].role"},
		{"content number", `{"model":"gpt-4o","messages":[{"role":"user","content":42}]}`, 400, "messages[0].content"},
		{"deep nesting", `{"model":"gpt-4o","messages":[{"role":"user","content":"x"}],"x":` + string(bytes.Repeat([]byte("["), 5000)) + string(bytes.Repeat([]byte("]"), 5000)) + `}`, 0, ""},
		{"null body", `null`, 400, ""},
		{"fallbacks not array", `{"model":"gpt-4o","fallbacks":"x","messages":[{"role":"user","content":"x"}]}`, 400, "fallbacks"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			resp, out := post(t, g.URL, tt.body)
			if tt.status == 0 { // must simply not break the gateway
				if resp.StatusCode >= 500 {
					t.Fatalf("%d %s", resp.StatusCode, out)
				}
				return
			}
			if resp.StatusCode != tt.status || gjson.GetBytes(out, "error.param").Str != tt.param || gjson.GetBytes(out, "error.message").Str == "" {
				t.Fatalf("%d %s", resp.StatusCode, out)
			}
		})
	}
	if s.Calls() > 1 {
		t.Fatalf("hostile inputs reached the provider %d times", s.Calls())
	}
}

// FuzzGatewayNeverAcceptsGarbage drives the whole handler in process: no
// input may panic, produce a 5xx, or be answered 200 unless it is valid JSON.
func FuzzGatewayNeverAcceptsGarbage(f *testing.F) {
	for _, seed := range []string{
		`{"model":"gpt-4o-mini","messages":[{"role":"user","content":"hi"}]}`,
		`{"model":"gpt-4o-mini","stream":true,"messages":[{"role":"user","content":"hi"}]}`,
		`{"model":"claude-3-5-sonnet-20241022","messages":[{"role":"system","content":"s"},{"role":"user","content":[{"type":"text","text":"t"}]}]}`,
		`{"model":`, `[]`, `{}`, `{"model":"gpt-4o","messages":[{"role":"tool"}]}`,
		`{"model":"anthropic/claude-3-5-haiku-20241022","tools":[{"type":"function"}],"messages":[{"role":"assistant","tool_calls":[{"function":{"arguments":"{"}}]}]}`,
	} {
		f.Add([]byte(seed))
	}
	s := startSim(f, simulated.Options{})
	g := startGateway(f, simConfig(s))
	h := g.App.Handler()
	f.Fuzz(func(t *testing.T, body []byte) {
		req := httptest.NewRequest(http.MethodPost, "/v1/chat/completions", bytes.NewReader(body))
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		if rec.Code >= 500 && rec.Code != http.StatusBadGateway {
			t.Fatalf("%d for %q: %s", rec.Code, body, rec.Body)
		}
		if rec.Code == 200 && !gjson.ValidBytes(body) {
			t.Fatalf("accepted invalid JSON %q", body)
		}
		if rec.Code != 200 && !gjson.GetBytes(rec.Body.Bytes(), "error.message").Exists() {
			t.Fatalf("%d without an envelope: %s", rec.Code, rec.Body)
		}
	})
}
