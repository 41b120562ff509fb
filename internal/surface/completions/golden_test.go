package completions

import (
	"bytes"
	"errors"
	"io"
	"testing"

	"github.com/edge-agent/edge-agent/internal/api"
	"github.com/edge-agent/edge-agent/internal/sse"
	"github.com/edge-agent/edge-agent/internal/testutil/golden"
)

var goldenOutputs = []string{".answer.json", ".error.json", ".replay.sse", ".replay_usage.sse"}

// TestStreamRebuildsTheAnswerLikeTheGoldens copies each
// testdata/stream/NAME.sse and compares the answer it rebuilds (what the
// cache stores) with NAME.answer.json.
func TestStreamRebuildsTheAnswerLikeTheGoldens(t *testing.T) {
	golden.Run(t, "testdata/stream/*.sse", goldenOutputs, func(t *testing.T, in []byte) (string, []byte) {
		req := mustParse(t, `{"model":"m","prompt":"hi","stream":true}`)
		s := req.NewStream(true, 0)
		r := sse.NewReader(bytes.NewReader(in))
		var out []byte
		for {
			ev, err := r.Next()
			if errors.Is(err, io.EOF) {
				t.Fatal("no [DONE]")
			}
			if err != nil {
				t.Fatal(err)
			}
			if bytes.Equal(ev.Data, sse.Done) {
				break
			}
			if out, err = s.Add(out, ev.Data); err != nil {
				return ".error.json", errorGolden(t, err)
			}
		}
		_, a, err := s.End(out, true)
		if err != nil {
			return ".error.json", errorGolden(t, err)
		}
		if a == nil {
			t.Fatal("no answer rebuilt")
		}
		return ".answer.json", golden.Indent(t, a.Body)
	})
}

// TestReplayStreamsAStoredAnswerLikeTheGoldens replays each
// testdata/answer/NAME.json as a client that streamed with usage asked
// for would receive it.
func TestReplayStreamsAStoredAnswerLikeTheGoldens(t *testing.T) {
	golden.Run(t, "testdata/answer/*.json", goldenOutputs, func(t *testing.T, in []byte) (string, []byte) {
		req := mustParse(t, `{"model":"m","prompt":"hi","stream":true,"stream_options":{"include_usage":true}}`)
		out, err := req.AppendReplay(nil, bytes.TrimSpace(in))
		if err != nil {
			return ".error.json", errorGolden(t, err)
		}
		return ".replay_usage.sse", out
	})
}

func errorGolden(t *testing.T, err error) []byte {
	t.Helper()
	var e *api.Error
	if !errors.As(err, &e) {
		t.Fatalf("error %v is not an *api.Error", err)
	}
	return golden.Indent(t, e.AppendEnvelope(nil))
}
