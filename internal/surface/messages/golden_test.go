package messages

import (
	"bytes"
	"encoding/json"
	"errors"
	"strings"
	"testing"

	"go.uber.org/goleak"

	"github.com/edge-agent/edge-agent/internal/api"
	"github.com/edge-agent/edge-agent/internal/testutil/golden"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// goldenOutputs are the suffixes a translation's golden file may have.
var goldenOutputs = []string{".error.json", ".chat.json", ".messages.json", ".sse"}

// TestToChatMatchesGoldens translates each testdata/tochat/NAME.messages.json
// into NAME.chat.json, or NAME.error.json when chat cannot carry it.
func TestToChatMatchesGoldens(t *testing.T) {
	golden.Run(t, "testdata/tochat/*.messages.json", goldenOutputs, func(t *testing.T, in []byte) (string, []byte) {
		out, err := ToChat(in)
		if err != nil {
			return ".error.json", errorGolden(t, err)
		}
		if _, err := api.ParseChatRequest(out, api.DefaultLimits); err != nil {
			t.Errorf("the translation is not a valid chat request: %v", err)
		}
		return ".chat.json", golden.Indent(t, out)
	})
}

// TestFromChatMatchesGoldens translates each testdata/fromchat/NAME.chat.json
// into NAME.messages.json (or NAME.error.json).
func TestFromChatMatchesGoldens(t *testing.T) {
	golden.Run(t, "testdata/fromchat/*.chat.json", goldenOutputs, func(t *testing.T, in []byte) (string, []byte) {
		out, err := FromChat(in, "")
		if err != nil {
			return ".error.json", errorGolden(t, err)
		}
		return ".messages.json", golden.Indent(t, out)
	})
}

// TestStreamTranslationMatchesGoldens feeds each testdata/stream/NAME.chunks.jsonl
// (one chunk payload per line) to a StreamTranslator and compares the
// events, and how the stream ended, with NAME.sse.
func TestStreamTranslationMatchesGoldens(t *testing.T) {
	golden.Run(t, "testdata/stream/*.chunks.jsonl", goldenOutputs, func(t *testing.T, in []byte) (string, []byte) {
		out, err := translateChunks(in)
		if err != nil {
			out = append(out, "# ended with "...)
			out = append(out, strings.TrimSpace(string(errorGolden(t, err)))...)
			out = append(out, '\n')
		}
		return ".sse", out
	})
}

func translateChunks(jsonl []byte) ([]byte, error) {
	tr := NewStreamTranslator("")
	var out []byte
	var err error
	for line := range bytes.Lines(jsonl) {
		if line = bytes.TrimSpace(line); len(line) == 0 {
			continue
		}
		if out, err = tr.Add(out, line); err != nil {
			return out, err
		}
	}
	return tr.Finish(out)
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
	if err := enc.Encode(map[string]any{"status": e.Status, "param": e.Param, "code": e.Code, "message": e.Message}); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}
