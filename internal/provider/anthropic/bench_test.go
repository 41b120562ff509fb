package anthropic

import (
	"bytes"
	"io"
	"os"
	"strconv"
	"testing"
)

// BenchmarkTranslateRequest translates a typical agent request: a system
// prompt, a tool round and two tool definitions.
func BenchmarkTranslateRequest(b *testing.B) {
	body, err := os.ReadFile("testdata/request/tool_round.openai.json")
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	b.SetBytes(int64(len(body)))
	for b.Loop() {
		if _, err := TranslateRequest(body, "claude-sonnet-4-5", 0); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkTranslateResponse(b *testing.B) {
	body, err := os.ReadFile("testdata/response/tool_use.anthropic.json")
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := TranslateResponse(body, goldenCreated); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkStream100Chunks translates a streamed answer of 100 text deltas.
func BenchmarkStream100Chunks(b *testing.B) {
	parts := make([]string, 100)
	for i := range parts {
		parts[i] = "token " + strconv.Itoa(i) + " of a streamed answer, "
	}
	data := []byte(sseEvents("msg_bench", parts...))
	r := bytes.NewReader(data)
	b.ReportAllocs()
	b.SetBytes(int64(len(data)))
	for b.Loop() {
		r.Reset(data)
		s := NewStream(r, goldenCreated)
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
		if n != 103 {
			b.Fatalf("got %d chunks, want 103", n)
		}
	}
}
