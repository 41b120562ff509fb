package gemini

import (
	"bytes"
	"io"
	"os"
	"strconv"
	"testing"
)

// BenchmarkTranslateRequest translates a typical agent request: a tool
// round with two tool definitions (their schemas rewritten).
func BenchmarkTranslateRequest(b *testing.B) {
	body, err := os.ReadFile("testdata/request/tool_round.openai.json")
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	b.SetBytes(int64(len(body)))
	for b.Loop() {
		if _, err := TranslateRequest(body); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkTranslateResponse(b *testing.B) {
	body, err := os.ReadFile("testdata/response/function_calls.gemini.json")
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := TranslateResponse(body, goldenCreated, "gemini-2.5-flash"); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkStream100Chunks translates a streamed answer of 100 text events.
func BenchmarkStream100Chunks(b *testing.B) {
	var buf bytes.Buffer
	for i := range 100 {
		buf.WriteString(`data: {"candidates":[{"content":{"role":"model","parts":[{"text":"token ` + strconv.Itoa(i) + ` of a streamed answer, "}]}`)
		if i == 99 {
			buf.WriteString(`,"finishReason":"STOP"`)
		}
		buf.WriteString(`}],"usageMetadata":{"promptTokenCount":10,"candidatesTokenCount":` + strconv.Itoa(i+1) + `},"modelVersion":"gemini-2.5-flash","responseId":"bench"}` + "\r\n\r\n")
	}
	data := buf.Bytes()
	r := bytes.NewReader(data)
	b.ReportAllocs()
	b.SetBytes(int64(len(data)))
	for b.Loop() {
		r.Reset(data)
		s := NewStream(r, goldenCreated, "gemini-2.5-flash")
		n := 0
		for {
			_, err := s.Next()
			if err == io.EOF {
				break
			}
			if err != nil {
				b.Fatal(err)
			}
			n++
		}
		if n != 103 { // role, 100 texts, finish, usage
			b.Fatalf("got %d chunks, want 103", n)
		}
	}
}
