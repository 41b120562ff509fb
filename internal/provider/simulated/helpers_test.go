package simulated

import (
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/tidwall/gjson"
	"go.uber.org/goleak"

	"github.com/edge-agent/edge-agent/internal/api"
	"github.com/edge-agent/edge-agent/internal/sse"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// start serves a new Server for o over real HTTP.
func start(t *testing.T, o Options) (*Server, *httptest.Server) {
	t.Helper()
	s := New(o)
	ts := httptest.NewServer(s)
	t.Cleanup(ts.Close)
	return s, ts
}

// post sends body to path; Anthropic paths get an anthropic-version header.
func post(t *testing.T, ts *httptest.Server, path, body string) *http.Response {
	t.Helper()
	return postCtx(t, context.Background(), ts, path, body, nil)
}

func postCtx(t *testing.T, ctx context.Context, ts *httptest.Server, path, body string, header http.Header) *http.Response {
	t.Helper()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, ts.URL+path, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	if path == "/v1/messages" {
		req.Header.Set("anthropic-version", "2023-06-01")
	}
	for k, v := range header {
		req.Header[k] = v
	}
	resp, err := ts.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { resp.Body.Close() })
	return resp
}

// readAll returns the body, failing the test on a transport error.
func readAll(t *testing.T, resp *http.Response) string {
	t.Helper()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("reading body: %v", err)
	}
	return string(b)
}

// mustJSON reads a JSON answer with the wanted status.
func mustJSON(t *testing.T, resp *http.Response, status int) gjson.Result {
	t.Helper()
	body := readAll(t, resp)
	if resp.StatusCode != status {
		t.Fatalf("status %d, want %d; body %s", resp.StatusCode, status, body)
	}
	if ct := resp.Header.Get("Content-Type"); ct != "application/json" {
		t.Fatalf("Content-Type %q", ct)
	}
	if !gjson.Valid(body) {
		t.Fatalf("invalid JSON: %s", body)
	}
	return gjson.Parse(body)
}

type event struct{ name, data string }

// readEvents reads SSE events until the end of the body; err is the
// transport or framing error that ended it, nil for a clean end.
func readEvents(resp *http.Response) ([]event, error) {
	r := sse.NewReader(resp.Body)
	var evs []event
	for {
		ev, err := r.Next()
		if errors.Is(err, io.EOF) {
			return evs, nil
		}
		if err != nil {
			return evs, err
		}
		evs = append(evs, event{string(ev.Event), string(ev.Data)})
	}
}

// mustEvents reads a complete 200 event stream.
func mustEvents(t *testing.T, resp *http.Response) []event {
	t.Helper()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("status %d: %s", resp.StatusCode, readAll(t, resp))
	}
	if ct := resp.Header.Get("Content-Type"); !strings.HasPrefix(ct, "text/event-stream") {
		t.Fatalf("Content-Type %q", ct)
	}
	evs, err := readEvents(resp)
	if err != nil {
		t.Fatalf("stream: %v", err)
	}
	return evs
}

// openAIReq builds an OpenAI request for prompt; extra is appended to the
// top-level object (",\"stream\":true").
func openAIReq(prompt, extra string) string {
	return `{"model":"gpt-4o-mini","messages":[{"role":"system","content":"be brief"},{"role":"user","content":` +
		string(api.AppendString(nil, prompt)) + `}]` + extra + `}`
}

// anthropicReq builds an Anthropic request for prompt.
func anthropicReq(prompt, extra string) string {
	return `{"model":"claude-sonnet-4-5","max_tokens":1024,"system":"be brief","messages":[{"role":"user","content":` +
		string(api.AppendString(nil, prompt)) + `}]` + extra + `}`
}

// words counts whitespace-separated words.
func words(s string) int { return len(strings.Fields(s)) }
