package gateway

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/edge-agent/edge-agent/internal/provider"
	"github.com/edge-agent/edge-agent/internal/route"
)

// pilingStream is a provider stream whose next chunk is, or is not,
// already in memory (provider.Buffered), as scripted by buffered; at each
// Next it notes what the client had been flushed by then.
type pilingStream struct {
	chunks   []string
	buffered []bool // after chunk i: is chunk i+1 in memory already?
	w        *flushRecorder
	i        int
	t        *testing.T
}

func (s *pilingStream) Next() ([]byte, error) {
	if s.i > 0 && !s.buffered[s.i-1] && s.w.pending() {
		// The gateway is about to wait on the network: nothing it holds
		// back may wait with it.
		s.t.Errorf("Next %d called with %q written but not flushed", s.i, s.w.unflushed())
	}
	if s.i == len(s.chunks) {
		return nil, io.EOF
	}
	s.i++
	return []byte(s.chunks[s.i-1]), nil
}

func (s *pilingStream) NextBuffered() bool { return s.i == 0 || s.buffered[s.i-1] }
func (s *pilingStream) Close() error       { return nil }

type pilingRouter struct{ s *pilingStream }

func (p *pilingRouter) Resolve(model string) (route.Target, error) {
	return route.Target{Provider: "openai", Model: model}, nil
}

func (p *pilingRouter) ChatCompletion(context.Context, route.Target, *provider.Request, []string) (*provider.Response, error) {
	return &provider.Response{Stream: p.s}, nil
}

// flushRecorder keeps what each Flush sent.
type flushRecorder struct {
	*httptest.ResponseRecorder
	flushes []string
	sent    int
}

func (f *flushRecorder) Flush() {
	b := f.Body.String()
	if len(b) > f.sent {
		f.flushes = append(f.flushes, b[f.sent:])
		f.sent = len(b)
	}
}
func (f *flushRecorder) pending() bool     { return f.Body.Len() > f.sent }
func (f *flushRecorder) unflushed() string { return f.Body.String()[f.sent:] }

func TestStreamEventsThatPiledUpGoOutWithOneFlushAndNoneWaitsOnTheNetwork(t *testing.T) {
	chunk := func(text string, finish string) string {
		f := "null"
		if finish != "" {
			f = `"` + finish + `"`
		}
		return fmt.Sprintf(`{"id":"c","object":"chat.completion.chunk","created":1,"model":"m","choices":[{"index":0,"delta":{"content":%q},"finish_reason":%s}]}`, text, f)
	}
	s := &pilingStream{
		chunks:   []string{chunk("a", ""), chunk("b", ""), chunk("c", ""), chunk("d", ""), chunk("", "stop")},
		buffered: []bool{true, true, false, false, false},
		t:        t,
	}
	w := &flushRecorder{ResponseRecorder: httptest.NewRecorder()}
	s.w = w
	g := New(Options{Router: &pilingRouter{s: s}})
	g.ServeHTTP(w, httptest.NewRequest(http.MethodPost, "/v1/chat/completions",
		strings.NewReader(`{"model":"m","stream":true,"messages":[{"role":"user","content":"x"}]}`)))
	if w.Code != 200 {
		t.Fatalf("status %d: %s", w.Code, w.Body)
	}
	var events []int
	for _, f := range w.flushes {
		events = append(events, strings.Count(f, "data: "))
	}
	// a, b and c were in memory together: one flush; d and the finish
	// chunk each came on their own; [DONE] ends it.
	if fmt.Sprint(events) != "[3 1 1 1]" {
		t.Fatalf("events per flush %v, want [3 1 1 1]; flushes %q", events, w.flushes)
	}
	if !strings.HasSuffix(w.Body.String(), "data: [DONE]\n\n") || strings.Count(w.Body.String(), "data: ") != 6 {
		t.Fatalf("body %q", w.Body)
	}
}
