package simulated

import (
	"bytes"
	"net/http"
	"net/http/httptest"
	"testing"
)

// benchmark serves body repeatedly at zero latency; the recorder and
// request are reused so only the server's own allocations are counted.
func benchmark(b *testing.B, path, body string) {
	s := New(Options{})
	rec := httptest.NewRecorder()
	rec.Body = bytes.NewBuffer(make([]byte, 0, 16<<10))
	raw := []byte(body)
	rd := bytes.NewReader(raw)
	req := httptest.NewRequest(http.MethodPost, path, rd)
	req.Header.Set("Anthropic-Version", "2023-06-01")
	b.ReportAllocs()
	b.SetBytes(int64(len(body)))
	for b.Loop() {
		rd.Reset(raw)
		rec.Body.Reset()
		rec.Code = 200
		s.ServeHTTP(rec, req)
	}
	if rec.Code != 200 {
		b.Fatalf("status %d: %s", rec.Code, rec.Body)
	}
}

func BenchmarkOpenAIJSON(b *testing.B) {
	benchmark(b, "/v1/chat/completions", openAIReq("Explain what an LLM edge gateway does, in two sentences.", ""))
}

func BenchmarkOpenAIStream(b *testing.B) {
	benchmark(b, "/v1/chat/completions", openAIReq("Explain what an LLM edge gateway does, in two sentences.",
		`,"stream":true,"stream_options":{"include_usage":true}`))
}

func BenchmarkAnthropicJSON(b *testing.B) {
	benchmark(b, "/v1/messages", anthropicReq("Explain what an LLM edge gateway does, in two sentences.", ""))
}

func BenchmarkAnthropicStream(b *testing.B) {
	benchmark(b, "/v1/messages", anthropicReq("Explain what an LLM edge gateway does, in two sentences.", `,"stream":true`))
}
