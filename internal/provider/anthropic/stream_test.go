package anthropic

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/edge-agent/edge-agent/internal/api"
)

// TestStreamChunksShareIdentityAndDecode checks, for every stream fixture,
// that each chunk decodes as an OpenAI chunk and that id, object, created
// and model are the same across the stream.
func TestStreamChunksShareIdentityAndDecode(t *testing.T) {
	inputs, _ := filepath.Glob("testdata/stream/*.sse")
	if len(inputs) == 0 {
		t.Fatal("no stream fixtures")
	}
	for _, in := range inputs {
		t.Run(filepath.Base(in), func(t *testing.T) {
			data, err := os.ReadFile(in)
			if err != nil {
				t.Fatal(err)
			}
			chunks, _ := drain(NewStream(bytes.NewReader(data), goldenCreated))
			var first api.ChatCompletionChunk
			for i, c := range chunks {
				var ch api.ChatCompletionChunk
				if err := json.Unmarshal(c, &ch); err != nil {
					t.Fatalf("chunk %d does not decode: %v\n%s", i, err, c)
				}
				if i == 0 {
					first = ch
					if ch.Object != "chat.completion.chunk" || !strings.HasPrefix(ch.ID, "chatcmpl-") || ch.Model == "" {
						t.Fatalf("first chunk lacks identity: %s", c)
					}
					continue
				}
				if ch.ID != first.ID || ch.Object != first.Object || ch.Created != first.Created || ch.Model != first.Model {
					t.Errorf("chunk %d identity differs from the first: %s", i, c)
				}
			}
		})
	}
}

func TestStreamedToolArgumentsReassembleIntoJSON(t *testing.T) {
	data, err := os.ReadFile("testdata/stream/tool_use.sse")
	if err != nil {
		t.Fatal(err)
	}
	chunks, err := drain(NewStream(bytes.NewReader(data), goldenCreated))
	if err != io.EOF {
		t.Fatalf("stream ended with %v", err)
	}
	type call struct{ id, name, args string }
	var calls []call
	for _, c := range chunks {
		var ch api.ChatCompletionChunk
		if err := json.Unmarshal(c, &ch); err != nil {
			t.Fatal(err)
		}
		if len(ch.Choices) == 0 {
			continue
		}
		for _, tc := range ch.Choices[0].Delta.ToolCalls {
			i := *tc.Index
			if i == len(calls) {
				calls = append(calls, call{id: tc.ID, name: tc.Function.Name})
			}
			calls[i].args += tc.Function.Arguments
		}
	}
	want := []call{{"toolu_01T1x1fJ34qAmk2tNTrN7Up6", "get_weather", `{"city": "Paris"}`}, {"toolu_02", "get_time", `{}`}}
	if len(calls) != len(want) {
		t.Fatalf("got %d tool calls, want %d: %+v", len(calls), len(want), calls)
	}
	for i := range want {
		if calls[i] != want[i] {
			t.Errorf("call %d = %+v, want %+v", i, calls[i], want[i])
		}
		if !json.Valid([]byte(calls[i].args)) {
			t.Errorf("call %d arguments are not JSON: %s", i, calls[i].args)
		}
	}
}

func TestStreamErrorsAreStickyAndNeverEOF(t *testing.T) {
	tests := []struct {
		name, fixture string
		wantStatus    int
		wantTruncated bool
	}{
		{"overloaded event is 503", "error_event.sse", 503, false},
		{"api error event is 502", "api_error_event.sse", 502, false},
		{"body ending mid-answer is truncated", "truncated.sse", 502, true},
		{"body ending after message_delta is truncated", "truncated_after_message_delta.sse", 502, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			data, err := os.ReadFile("testdata/stream/" + tt.fixture)
			if err != nil {
				t.Fatal(err)
			}
			s := NewStream(bytes.NewReader(data), goldenCreated)
			_, err = drain(s)
			var e *api.Error
			if !errors.As(err, &e) || e.Status != tt.wantStatus {
				t.Fatalf("stream ended with %v, want an *api.Error %d", err, tt.wantStatus)
			}
			if got := errors.Is(err, io.ErrUnexpectedEOF); got != tt.wantTruncated {
				t.Errorf("errors.Is(err, io.ErrUnexpectedEOF) = %v, want %v", got, tt.wantTruncated)
			}
			if _, again := s.Next(); again != err {
				t.Errorf("Next after failure = %v, want the same error", again)
			}
		})
	}
}

func TestStreamEndsWithEOFAfterUsageChunk(t *testing.T) {
	s := NewStream(strings.NewReader(sseEvents("msg_1", "a", "b")), 1)
	chunks, err := drain(s)
	if err != io.EOF {
		t.Fatalf("err = %v, want io.EOF", err)
	}
	if _, err := s.Next(); err != io.EOF {
		t.Errorf("Next after the end = %v, want io.EOF again", err)
	}
	if last := chunks[len(chunks)-1]; !bytes.Contains(last, []byte(`"choices":[],"usage":{"prompt_tokens":10,"completion_tokens":2,"total_tokens":12`)) {
		t.Errorf("last chunk is not the usage chunk: %s", last)
	}
}

type closeCounter struct {
	io.Reader
	n int
}

func (c *closeCounter) Close() error { c.n++; return nil }

func TestStreamCloseClosesBodyOnce(t *testing.T) {
	body := &closeCounter{Reader: strings.NewReader(sseEvents("msg_1", "x"))}
	s := NewStream(body, 1)
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if body.n != 1 {
		t.Errorf("body closed %d times, want 1", body.n)
	}
}
