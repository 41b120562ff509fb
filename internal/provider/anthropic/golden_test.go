package anthropic

import (
	"bytes"
	"encoding/json"
	"errors"
	"flag"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"go.uber.org/goleak"

	"github.com/edge-agent/edge-agent/internal/api"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata/")

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// goldenCreated stands in for time.Now in every golden answer.
const goldenCreated = 1700000000

// TestRequestTranslationMatchesGoldens translates each
// testdata/request/NAME.openai.json and compares it with NAME.anthropic.json,
// or with NAME.error.json when the input cannot be translated.
func TestRequestTranslationMatchesGoldens(t *testing.T) {
	runGoldens(t, "testdata/request/*.openai.json", func(t *testing.T, in []byte) (string, []byte) {
		out, err := TranslateRequest(in, "claude-sonnet-4-5", 0)
		if err != nil {
			return ".error.json", errorGolden(t, err)
		}
		return ".anthropic.json", indent(t, out)
	})
}

// TestResponseTranslationMatchesGoldens translates each
// testdata/response/NAME.anthropic.json into NAME.openai.json (or NAME.error.json).
func TestResponseTranslationMatchesGoldens(t *testing.T) {
	runGoldens(t, "testdata/response/*.anthropic.json", func(t *testing.T, in []byte) (string, []byte) {
		out, err := TranslateResponse(in, goldenCreated)
		if err != nil {
			return ".error.json", errorGolden(t, err)
		}
		var cc api.ChatCompletion
		if err := json.Unmarshal(out, &cc); err != nil {
			t.Fatalf("answer does not decode as a chat.completion: %v\n%s", err, out)
		}
		return ".openai.json", indent(t, out)
	})
}

// TestStreamTranslationMatchesGoldens reads each testdata/stream/NAME.sse
// and compares the chunks, one JSON per line, and how the stream ended
// with NAME.chunks.jsonl.
func TestStreamTranslationMatchesGoldens(t *testing.T) {
	runGoldens(t, "testdata/stream/*.sse", func(t *testing.T, in []byte) (string, []byte) {
		chunks, err := drain(NewStream(bytes.NewReader(in), goldenCreated))
		var out []byte
		for _, c := range chunks {
			out = append(out, c...)
			out = append(out, '\n')
		}
		out = append(out, endLine(t, err)...)
		return ".chunks.jsonl", append(out, '\n')
	})
}

// runGoldens calls translate for each input matching pattern and compares
// the result with the golden file named by the input's stem and the suffix
// translate returns. Exactly one golden may exist per input.
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
			for _, other := range []string{".error.json", ".anthropic.json", ".openai.json", ".chunks.jsonl"} {
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
