package messages

import (
	"encoding/json"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/edge-agent/edge-agent/internal/api"
)

func TestCountTokensNeedsNoMaxTokensAndIsLabelledAnEstimate(t *testing.T) {
	body := []byte(`{"model":"gpt-4o","system":"be brief","messages":[{"role":"user","content":"` + strings.Repeat("x", 40) + `"}]}`)
	if _, err := Parse(body, api.DefaultLimits); err == nil {
		t.Fatal("Parse accepted a request without max_tokens")
	}
	req, err := ParseCountTokens(body, api.DefaultLimits)
	if err != nil {
		t.Fatal(err)
	}
	rec := httptest.NewRecorder()
	WriteCountTokensEstimate(rec, req)
	var got struct {
		InputTokens int `json:"input_tokens"`
	}
	if err := json.Unmarshal(rec.Body.Bytes(), &got); err != nil {
		t.Fatal(err)
	}
	if rec.Code != 200 || rec.Header().Get(EstimateHeader) != "true" || got.InputTokens != req.InputTokens || got.InputTokens < 10 {
		t.Fatalf("status %d header %q body %s (estimate %d)", rec.Code, rec.Header().Get(EstimateHeader), rec.Body, req.InputTokens)
	}
	if _, err := ParseCountTokens([]byte(`{"model":"m","max_tokens":0,"messages":[{"role":"user","content":"q"}]}`), api.DefaultLimits); err == nil {
		t.Fatal("a bad max_tokens was accepted by count_tokens")
	}
	if _, err := ParseCountTokens([]byte(`{"model":"m","messages":[]}`), api.DefaultLimits); err == nil {
		t.Fatal("empty messages accepted by count_tokens")
	}
}
