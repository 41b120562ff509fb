package bedrock

import (
	"bytes"
	"encoding/json"
	"io"
	"os"
	"strconv"
	"testing"
)

// BenchmarkTranslateRequest translates a typical agent request: a tool
// round and two tool definitions.
func BenchmarkTranslateRequest(b *testing.B) {
	body, err := os.ReadFile("testdata/request/tools_round_trip.openai.json")
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
	body, err := os.ReadFile("testdata/response/tool_use.converse.json")
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := TranslateResponse(body, claude, goldenRequestID, goldenCreated); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkStream100Chunks decodes and translates a ConverseStream answer
// of 100 text deltas in event-stream framing.
func BenchmarkStream100Chunks(b *testing.B) {
	events := []testEvent{{Type: "messageStart", Payload: json.RawMessage(`{"role":"assistant"}`)}}
	for i := range 100 {
		p, _ := json.Marshal(map[string]any{"contentBlockIndex": 0, "delta": map[string]string{"text": "token " + strconv.Itoa(i) + " of a streamed answer, "}, "p": "abcdefghijkl"})
		events = append(events, testEvent{Type: "contentBlockDelta", Payload: p})
	}
	events = append(events, testEvent{Type: "messageStop", Payload: json.RawMessage(`{"stopReason":"end_turn"}`)},
		testEvent{Type: "metadata", Payload: json.RawMessage(`{"usage":{"inputTokens":10,"outputTokens":100,"totalTokens":110}}`)})
	var frames bytes.Buffer
	writeEvents(&testing.T{}, &frames, events)
	data := frames.Bytes()
	r := bytes.NewReader(data)
	b.ReportAllocs()
	b.SetBytes(int64(len(data)))
	for b.Loop() {
		r.Reset(data)
		s := NewStream(r, claude, goldenRequestID, goldenCreated)
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
