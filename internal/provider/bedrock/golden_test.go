package bedrock

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws/protocol/eventstream"
	"go.uber.org/goleak"

	"github.com/edge-agent/edge-agent/internal/api"
	"github.com/edge-agent/edge-agent/internal/testutil/golden"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// goldenOutputs are the suffixes a translation's golden file may have.
var goldenOutputs = []string{".error.json", ".converse.json", ".openai.json", ".chunks.jsonl"}

// goldenCreated stands in for time.Now in every golden answer.
const goldenCreated = 1700000000

// goldenRequestID stands in for the x-amzn-RequestId of every golden answer.
const goldenRequestID = "6f2c0a8e-1b7d-4c3e-9a55-0d8e2f1b7c44"

// TestRequestTranslationMatchesGoldens translates each
// testdata/request/NAME.openai.json and compares it with NAME.converse.json,
// or with NAME.error.json when the input cannot be translated.
func TestRequestTranslationMatchesGoldens(t *testing.T) {
	golden.Run(t, "testdata/request/*.openai.json", goldenOutputs, func(t *testing.T, in []byte) (string, []byte) {
		out, err := TranslateRequest(in)
		if err != nil {
			return ".error.json", errorGolden(t, err)
		}
		return ".converse.json", golden.Indent(t, out)
	})
}

// TestResponseTranslationMatchesGoldens translates each
// testdata/response/NAME.converse.json into NAME.openai.json (or NAME.error.json).
func TestResponseTranslationMatchesGoldens(t *testing.T) {
	golden.Run(t, "testdata/response/*.converse.json", goldenOutputs, func(t *testing.T, in []byte) (string, []byte) {
		out, err := TranslateResponse(in, claude, goldenRequestID, goldenCreated)
		if err != nil {
			return ".error.json", errorGolden(t, err)
		}
		var cc api.ChatCompletion
		if err := json.Unmarshal(out, &cc); err != nil {
			t.Fatalf("answer does not decode as a chat.completion: %v\n%s", err, out)
		}
		return ".openai.json", golden.Indent(t, out)
	})
}

// TestStreamTranslationMatchesGoldens encodes each
// testdata/stream/NAME.events.jsonl (one event a line) into AWS
// event-stream frames with the SDK's encoder, reads them back through a
// Stream and compares the chunks, one JSON per line, and how the stream
// ended with NAME.chunks.jsonl.
func TestStreamTranslationMatchesGoldens(t *testing.T) {
	golden.Run(t, "testdata/stream/*.events.jsonl", goldenOutputs, func(t *testing.T, in []byte) (string, []byte) {
		var events []testEvent
		sc := bufio.NewScanner(bytes.NewReader(in))
		for sc.Scan() {
			if len(bytes.TrimSpace(sc.Bytes())) == 0 {
				continue
			}
			var e testEvent
			if err := json.Unmarshal(sc.Bytes(), &e); err != nil {
				t.Fatalf("event %q: %v", sc.Text(), err)
			}
			events = append(events, e)
		}
		var frames bytes.Buffer
		writeEvents(t, &frames, events)
		chunks, err := drain(NewStream(&frames, claude, goldenRequestID, goldenCreated))
		var out []byte
		for _, c := range chunks {
			out = append(out, c...)
			out = append(out, '\n')
		}
		out = append(out, endLine(t, err)...)
		return ".chunks.jsonl", append(out, '\n')
	})
}

// testEvent is one ConverseStream message: an event (Type), an exception
// (Exception) or a generic error (ErrorCode).
type testEvent struct {
	Type      string          `json:"type,omitempty"`
	Exception string          `json:"exception,omitempty"`
	ErrorCode string          `json:"error_code,omitempty"`
	Payload   json.RawMessage `json:"payload,omitempty"`
}

// writeEvents frames events as Bedrock does, with the SDK's encoder.
func writeEvents(t *testing.T, w io.Writer, events []testEvent) {
	t.Helper()
	enc := eventstream.NewEncoder()
	for _, e := range events {
		var m eventstream.Message
		switch {
		case e.Exception != "":
			m.Headers.Set(":message-type", eventstream.StringValue("exception"))
			m.Headers.Set(":exception-type", eventstream.StringValue(e.Exception))
		case e.ErrorCode != "":
			m.Headers.Set(":message-type", eventstream.StringValue("error"))
			m.Headers.Set(":error-code", eventstream.StringValue(e.ErrorCode))
			var msg string
			if err := json.Unmarshal(e.Payload, &msg); err != nil {
				t.Fatalf("an error event's payload is its message, a JSON string: %v", err)
			}
			m.Headers.Set(":error-message", eventstream.StringValue(msg))
		default:
			m.Headers.Set(":message-type", eventstream.StringValue("event"))
			m.Headers.Set(":event-type", eventstream.StringValue(e.Type))
		}
		m.Headers.Set(":content-type", eventstream.StringValue("application/json"))
		if e.ErrorCode == "" {
			m.Payload = e.Payload
		}
		if err := enc.Encode(w, m); err != nil {
			t.Fatal(err)
		}
	}
}

func errorGolden(t *testing.T, err error) []byte {
	t.Helper()
	var e *api.Error
	if !errors.As(err, &e) {
		t.Fatalf("error is %T, want *api.Error: %v", err, err)
	}
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	enc.SetIndent("", "  ")
	if err := enc.Encode(map[string]any{
		"status": e.Status, "type": e.Type, "param": e.Param, "code": e.Code, "message": e.Message,
	}); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// endLine records how a stream ended: {"end":"EOF"} or the error's fields.
func endLine(t *testing.T, err error) []byte {
	t.Helper()
	if err == io.EOF {
		return []byte(`{"end":"EOF"}`)
	}
	var e *api.Error
	if !errors.As(err, &e) {
		t.Fatalf("stream error is %T, want *api.Error: %v", err, err)
	}
	b, _ := json.Marshal(map[string]any{
		"end": "error", "status": e.Status, "type": e.Type, "code": e.Code, "message": e.Message,
		"unexpected_eof": errors.Is(err, io.ErrUnexpectedEOF),
	})
	return b
}

// drain reads s to its end, copying each chunk, and closes it.
func drain(s *Stream) ([][]byte, error) {
	defer s.Close()
	var chunks [][]byte
	for {
		c, err := s.Next()
		if err != nil {
			return chunks, err
		}
		chunks = append(chunks, bytes.Clone(c))
	}
}
