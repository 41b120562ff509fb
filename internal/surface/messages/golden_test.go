package messages

import (
	"bytes"
	"encoding/json"
	"errors"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"go.uber.org/goleak"

	"github.com/edge-agent/edge-agent/internal/api"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata/")

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// TestToChatMatchesGoldens translates each testdata/tochat/NAME.messages.json
// into NAME.chat.json, or NAME.error.json when chat cannot carry it.
func TestToChatMatchesGoldens(t *testing.T) {
	runGoldens(t, "testdata/tochat/*.messages.json", func(t *testing.T, in []byte) (string, []byte) {
		out, err := ToChat(in)
		if err != nil {
			return ".error.json", errorGolden(t, err)
		}
		if _, err := api.ParseChatRequest(out, api.DefaultLimits); err != nil {
			t.Errorf("the translation is not a valid chat request: %v", err)
		}
		return ".chat.json", indent(t, out)
	})
}

// TestFromChatMatchesGoldens translates each testdata/fromchat/NAME.chat.json
// into NAME.messages.json (or NAME.error.json).
func TestFromChatMatchesGoldens(t *testing.T) {
	runGoldens(t, "testdata/fromchat/*.chat.json", func(t *testing.T, in []byte) (string, []byte) {
		out, err := FromChat(in, "")
		if err != nil {
			return ".error.json", errorGolden(t, err)
		}
		return ".messages.json", indent(t, out)
	})
}

// TestStreamTranslationMatchesGoldens feeds each testdata/stream/NAME.chunks.jsonl
// (one chunk payload per line) to a StreamTranslator and compares the
// events, and how the stream ended, with NAME.sse.
func TestStreamTranslationMatchesGoldens(t *testing.T) {
	runGoldens(t, "testdata/stream/*.chunks.jsonl", func(t *testing.T, in []byte) (string, []byte) {
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

func runGoldens(t *testing.T, pattern string, translate func(*testing.T, []byte) (string, []byte)) {
	t.Helper()
	inputs, err := filepath.Glob(pattern)
	if err != nil || len(inputs) == 0 {
		t.Fatalf("no inputs match %s (err %v)", pattern, err)
	}
	inSuffix := pattern[strings.LastIndex(pattern, "*")+1:]
	for _, in := range inputs {
		stem := strings.TrimSuffix(in, inSuffix)
		t.Run(filepath.Base(stem), func(t *testing.T) {
			body, err := os.ReadFile(in)
			if err != nil {
				t.Fatal(err)
			}
			suffix, got := translate(t, body)
			compareGolden(t, stem+suffix, got)
			for _, other := range []string{".error.json", ".chat.json", ".messages.json", ".sse"} {
				if p := stem + other; other != suffix && p != in {
					if _, err := os.Stat(p); err == nil {
						if *update {
							_ = os.Remove(p)
						} else {
							t.Errorf("%s exists but the translation produced %s", p, suffix)
						}
					}
				}
			}
		})
	}
}

func compareGolden(t *testing.T, path string, got []byte) {
	t.Helper()
	if *update {
		if err := os.WriteFile(path, got, 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("golden %s missing (run go test -update): %v\ngot:\n%s", path, err, got)
	}
	if !bytes.Equal(got, want) {
		t.Errorf("%s differs (run go test -update to accept)\ngot:\n%s\nwant:\n%s", path, got, want)
	}
}

func indent(t *testing.T, b []byte) []byte {
	t.Helper()
	var buf bytes.Buffer
	if err := json.Indent(&buf, b, "", "  "); err != nil {
		t.Fatalf("translation is not valid JSON: %v\n%s", err, b)
	}
	buf.WriteByte('\n')
	return buf.Bytes()
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
