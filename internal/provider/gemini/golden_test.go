package gemini

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"os"
	"strings"
	"testing"

	"go.uber.org/goleak"

	"github.com/edge-agent/edge-agent/internal/api"
	"github.com/edge-agent/edge-agent/internal/testutil/golden"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// goldenOutputs are the suffixes a translation's golden file may have.
var goldenOutputs = []string{".error.json", ".gemini.json", ".openai.json", ".chunks.jsonl", ".studio.json", ".vertex.json"}

// goldenCreated stands in for time.Now in every golden answer.
const goldenCreated = 1700000000

// TestRequestTranslationMatchesGoldens translates each
// testdata/request/NAME.openai.json and compares it with NAME.gemini.json,
// or with NAME.error.json when the input cannot be translated.
func TestRequestTranslationMatchesGoldens(t *testing.T) {
	golden.Run(t, "testdata/request/*.openai.json", goldenOutputs, func(t *testing.T, in []byte) (string, []byte) {
		out, err := TranslateRequest(in)
		if err != nil {
			return ".error.json", errorGolden(t, err)
		}
		return ".gemini.json", golden.Indent(t, out)
	})
}

// TestResponseTranslationMatchesGoldens translates each
// testdata/response/NAME.gemini.json into NAME.openai.json (or NAME.error.json).
func TestResponseTranslationMatchesGoldens(t *testing.T) {
	golden.Run(t, "testdata/response/*.gemini.json", goldenOutputs, func(t *testing.T, in []byte) (string, []byte) {
		out, err := TranslateResponse(in, goldenCreated, "gemini-2.5-flash")
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

// TestStreamTranslationMatchesGoldens reads each testdata/stream/NAME.sse
// and compares the chunks, one JSON per line, and how the stream ended
// with NAME.chunks.jsonl.
func TestStreamTranslationMatchesGoldens(t *testing.T) {
	golden.Run(t, "testdata/stream/*.sse", goldenOutputs, func(t *testing.T, in []byte) (string, []byte) {
		chunks, err := drain(NewStream(bytes.NewReader(in), goldenCreated, "gemini-2.5-flash"))
		var out []byte
		for _, c := range chunks {
			if !json.Valid(c) {
				t.Fatalf("chunk is not JSON: %s", c)
			}
			out = append(out, c...)
			out = append(out, '\n')
		}
		out = append(out, endLine(t, err)...)
		return ".chunks.jsonl", append(out, '\n')
	})
}

// TestEmbeddingsRequestTranslationMatchesGoldens translates each
// testdata/embeddings/NAME.request.json for AI Studio (NAME.studio.json)
// and Vertex AI (NAME.vertex.json, beside it), or into NAME.error.json.
func TestEmbeddingsRequestTranslationMatchesGoldens(t *testing.T) {
	golden.Run(t, "testdata/embeddings/*.request.json", []string{".studio.json", ".error.json"}, func(t *testing.T, in []byte) (string, []byte) {
		studio, method, err := TranslateEmbeddingsRequest(in, "gemini-embedding-001", false)
		if err != nil {
			return ".error.json", errorGolden(t, err)
		}
		vertex, vmethod, err := TranslateEmbeddingsRequest(in, "gemini-embedding-001", true)
		if err != nil {
			t.Fatal(err)
		}
		stem := strings.TrimSuffix(t.Name()[strings.LastIndexByte(t.Name(), '/')+1:], ".request")
		golden.Compare(t, "testdata/embeddings/"+stem+".vertex.json", append([]byte(vmethod+"\n"), golden.Indent(t, vertex)...))
		return ".studio.json", append([]byte(method+"\n"), golden.Indent(t, studio)...)
	})
}

// TestEmbeddingsResponseTranslationMatchesGoldens translates each
// testdata/embeddings/NAME.google.json, the answer to NAME.request.json,
// into OpenAI's list (NAME.answer.json).
func TestEmbeddingsResponseTranslationMatchesGoldens(t *testing.T) {
	golden.Run(t, "testdata/embeddings/*.google.json", []string{".answer.json", ".answer-error.json"}, func(t *testing.T, in []byte) (string, []byte) {
		stem := t.Name()[strings.LastIndexByte(t.Name(), '/')+1:]
		base, _, _ := strings.Cut(stem, ".")
		req, err := os.ReadFile("testdata/embeddings/" + base + ".request.json")
		if err != nil {
			t.Fatal(err)
		}
		out, err := TranslateEmbeddingsResponse(in, req, "gemini-embedding-001")
		if err != nil {
			return ".answer-error.json", errorGolden(t, err)
		}
		return ".answer.json", golden.Indent(t, out)
	})
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
