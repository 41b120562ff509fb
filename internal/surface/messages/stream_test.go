package messages

import (
	"bytes"
	"os"
	"path/filepath"
	"testing"
)

// TestStreamTranslatorKeepsNothingFromTheCallersBuffer feeds every stream
// fixture through one reused buffer, scribbled over after each Add, and
// expects the events of the plain run: the translator copies what it keeps
// (the matched stop sequence, the model) because the caller reuses its
// read buffer.
func TestStreamTranslatorKeepsNothingFromTheCallersBuffer(t *testing.T) {
	files, err := filepath.Glob("testdata/stream/*.chunks.jsonl")
	if err != nil || len(files) == 0 {
		t.Fatalf("no fixtures: %v", err)
	}
	for _, f := range files {
		t.Run(filepath.Base(f), func(t *testing.T) {
			in, err := os.ReadFile(f)
			if err != nil {
				t.Fatal(err)
			}
			want, wantErr := translateChunks(in)

			tr := NewStreamTranslator("")
			var out, buf []byte
			var gotErr error
			for line := range bytes.Lines(in) {
				if line = bytes.TrimSpace(line); len(line) == 0 {
					continue
				}
				buf = append(buf[:0], line...)
				out, gotErr = tr.Add(out, buf)
				for i := range buf {
					buf[i] = 'x'
				}
				if gotErr != nil {
					break
				}
			}
			if gotErr == nil {
				out, gotErr = tr.Finish(out)
			}
			if !bytes.Equal(out, want) || (gotErr == nil) != (wantErr == nil) {
				t.Fatalf("with a reused buffer:\n%s(err %v)\nwant:\n%s(err %v)", out, gotErr, want, wantErr)
			}
		})
	}
}

func TestStreamTranslatorIgnoresChunksAfterTheEnd(t *testing.T) {
	tr := NewStreamTranslator("m")
	out, _ := tr.Add(nil, []byte(`{"id":"c","choices":[{"index":0,"delta":{"content":"a"},"finish_reason":"stop"}]}`))
	out, _ = tr.Add(out, []byte(`{"id":"c","choices":[],"usage":{"prompt_tokens":1,"completion_tokens":1}}`))
	if !tr.Done() {
		t.Fatal("the usage chunk after the finish did not end the message")
	}
	n := len(out)
	out, err := tr.Add(out, []byte(`{"id":"c","choices":[{"index":0,"delta":{"content":"late"}}]}`))
	if err != nil || len(out) != n {
		t.Fatalf("a chunk after message_stop wrote %q (%v)", out[n:], err)
	}
	if out, err = tr.Finish(out); err != nil || len(out) != n {
		t.Fatalf("Finish after message_stop wrote %q (%v)", out[n:], err)
	}
}
