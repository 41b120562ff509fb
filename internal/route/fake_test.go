package route

import (
	"context"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/edge-agent/edge-agent/internal/api"
	"github.com/edge-agent/edge-agent/internal/provider"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// fake is an in-memory provider whose answers a test scripts per call.
type fake struct {
	name, typ string
	models    []string
	calls     atomic.Int64
	// answer decides call n (1-based); nil answers every call.
	answer func(ctx context.Context, req *provider.Request, n int64) (*provider.Response, error)

	mu     sync.Mutex
	bodies []string
}

func newFake(name string, answer func(ctx context.Context, req *provider.Request, n int64) (*provider.Response, error)) *fake {
	return &fake{name: name, typ: "openai", answer: answer}
}

func (f *fake) Name() string     { return f.name }
func (f *fake) Type() string     { return f.typ }
func (f *fake) Models() []string { return f.models }

func (f *fake) ChatCompletion(ctx context.Context, req *provider.Request) (*provider.Response, error) {
	n := f.calls.Add(1)
	f.mu.Lock()
	f.bodies = append(f.bodies, string(req.Body))
	f.mu.Unlock()
	if f.answer == nil {
		return answerOK(req), nil
	}
	return f.answer(ctx, req, n)
}

func (f *fake) lastBody() string {
	f.mu.Lock()
	defer f.mu.Unlock()
	if len(f.bodies) == 0 {
		return ""
	}
	return f.bodies[len(f.bodies)-1]
}

// answerOK is a chat completion (or a three-chunk stream) naming the model.
func answerOK(req *provider.Request) *provider.Response {
	if req.Stream {
		return &provider.Response{Stream: newFakeStream(nil, chunks(req.Model, 3)...)}
	}
	return &provider.Response{Body: []byte(`{"id":"c1","object":"chat.completion","model":"` + req.Model +
		`","choices":[{"index":0,"message":{"role":"assistant","content":"hi"},"finish_reason":"stop"}],"usage":{"prompt_tokens":3,"completion_tokens":1,"total_tokens":4}}`)}
}

func chunks(model string, n int) [][]byte {
	out := make([][]byte, n)
	for i := range out {
		out[i] = fmt.Appendf(nil, `{"object":"chat.completion.chunk","model":%q,"choices":[{"index":0,"delta":{"content":"c%d"}}]}`, model, i)
	}
	return out
}

// upstreamErr is what an adapter returns for an upstream status.
func upstreamErr(status int, header http.Header) *api.Error {
	return provider.UpstreamError("fake", status, header, []byte(`{"error":{"message":"injected","type":"server_error"}}`))
}

func failWith(status int) func(context.Context, *provider.Request, int64) (*provider.Response, error) {
	return func(context.Context, *provider.Request, int64) (*provider.Response, error) {
		return nil, upstreamErr(status, nil)
	}
}

// failFirst fails the first k calls with status, then answers.
func failFirst(k int64, status int) func(context.Context, *provider.Request, int64) (*provider.Response, error) {
	return func(_ context.Context, req *provider.Request, n int64) (*provider.Response, error) {
		if n <= k {
			return nil, upstreamErr(status, nil)
		}
		return answerOK(req), nil
	}
}

// fakeStream yields chunks; at stallAt it blocks until its context ends
// (as a stalled HTTP body does), at failAt it returns failErr.
type fakeStream struct {
	ctx     context.Context
	chunks  [][]byte
	i       int
	stallAt int
	failAt  int
	failErr error
	gaps    []time.Duration // the upstream's wait before chunk i, when set
	closed  atomic.Int32
}

func newFakeStream(ctx context.Context, cs ...[]byte) *fakeStream {
	return &fakeStream{ctx: ctx, chunks: cs, stallAt: -1, failAt: -1}
}

func (s *fakeStream) Next() ([]byte, error) {
	if s.i == s.stallAt {
		<-s.ctx.Done()
		return nil, &api.Error{Status: http.StatusBadGateway, Type: api.TypeUpstream, Code: "upstream_stream_truncated",
			Message: "stream cut", Err: s.ctx.Err()}
	}
	if s.i == s.failAt {
		return nil, s.failErr
	}
	if s.i >= len(s.chunks) {
		return nil, io.EOF
	}
	if s.i < len(s.gaps) {
		select {
		case <-time.After(s.gaps[s.i]):
		case <-s.ctx.Done():
			return nil, &api.Error{Status: http.StatusBadGateway, Type: api.TypeUpstream, Code: "upstream_stream_truncated",
				Message: "stream cut", Err: s.ctx.Err()}
		}
	}
	s.i++
	return s.chunks[s.i-1], nil
}

func (s *fakeStream) Close() error {
	s.closed.Add(1)
	return nil
}

// lockedRand is a deterministic Rand for Config and fault injection.
type lockedRand struct {
	mu sync.Mutex
	r  *rand.Rand
}

func newRand(seed uint64) *lockedRand {
	return &lockedRand{r: rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))}
}

func (l *lockedRand) Float64() float64 {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.r.Float64()
}

func chatReq(model string, stream bool) *provider.Request {
	body := fmt.Appendf(nil, `{"model":%q,"messages":[{"role":"user","content":"hello"}],"stream":%t}`, model, stream)
	return &provider.Request{Body: body, Model: model, Stream: stream}
}

// readAll drains a stream, returning its chunks and the error that ended it
// (nil for a clean end).
func readAll(s provider.Stream) ([]string, error) {
	var out []string
	for {
		b, err := s.Next()
		if err == io.EOF {
			return out, nil
		}
		if err != nil {
			return out, err
		}
		out = append(out, string(b))
	}
}

func mustRouter(t testing.TB, cfg Config) *Router {
	t.Helper()
	r, err := New(cfg)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	return r
}

func mustResolve(t testing.TB, r *Router, model string) Target {
	t.Helper()
	tg, err := r.Resolve(model)
	if err != nil {
		t.Fatalf("Resolve(%q): %v", model, err)
	}
	return tg
}

func apiErr(t testing.TB, err error) *api.Error {
	t.Helper()
	e, ok := err.(*api.Error)
	if !ok {
		t.Fatalf("error %v (%T) is not an *api.Error", err, err)
	}
	return e
}
