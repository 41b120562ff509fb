package gateway

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/tidwall/gjson"

	"github.com/edge-agent/edge-agent/internal/api"
	"github.com/edge-agent/edge-agent/internal/cache"
	"github.com/edge-agent/edge-agent/internal/cache/memory"
	"github.com/edge-agent/edge-agent/internal/provider"
	"github.com/edge-agent/edge-agent/internal/route"
)

// embedRouter answers embeddings calls in memory, as OpenAI's API does:
// one element per input, in order, its vector tail the same for every
// input and its first number the input's length (so inputs differ). It
// counts calls and inputs, and a call may be held at gate.
type embedRouter struct {
	mu      sync.Mutex
	calls   int
	inputs  int
	bytes   int // answer bytes returned
	tail    string
	speaks  bool
	fail    error
	gate    chan struct{}
	entered chan struct{}
}

func newEmbedRouter(dims int) *embedRouter {
	var b strings.Builder
	for i := 1; i < dims; i++ {
		b.WriteString(",-0.0123456789")
	}
	b.WriteByte(']')
	return &embedRouter{tail: b.String(), speaks: true}
}

func (m *embedRouter) Resolve(model string) (route.Target, error) {
	return route.Target{Provider: "openai", Model: model}, nil
}

func (m *embedRouter) Speaks(_ route.Target, s provider.Surface) bool {
	return m.speaks && s == provider.SurfaceEmbeddings
}

func (m *embedRouter) ChatCompletion(ctx context.Context, _ route.Target, req *provider.Request, _ []string) (*provider.Response, error) {
	if req.Surface != provider.SurfaceEmbeddings {
		return nil, api.InvalidRequest("", "not an embeddings call")
	}
	if m.entered != nil {
		m.entered <- struct{}{}
	}
	if m.gate != nil {
		select {
		case <-m.gate:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
	in := gjson.GetBytes(req.Body, "input")
	items := in.Array()
	if !in.IsArray() || (len(items) > 0 && items[0].Type == gjson.Number) {
		items = []gjson.Result{in}
	}
	out := make([]byte, 0, 64+len(items)*(len(m.tail)+48))
	out = append(out, `{"object":"list","data":[`...)
	for i, it := range items {
		if i > 0 {
			out = append(out, ',')
		}
		out = append(out, `{"object":"embedding","index":`...)
		out = strconv.AppendInt(out, int64(i), 10)
		out = append(out, `,"embedding":[`...)
		out = strconv.AppendInt(out, int64(len(it.Raw)), 10)
		out = append(out, m.tail...)
		out = append(out, '}')
	}
	out = append(out, `],"model":"text-embedding-3-small","usage":{"prompt_tokens":`...)
	out = strconv.AppendInt(out, int64(2*len(items)), 10)
	out = append(out, `,"total_tokens":`...)
	out = strconv.AppendInt(out, int64(2*len(items)), 10)
	out = append(out, "}}\n"...)
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.fail != nil {
		return nil, m.fail
	}
	m.calls++
	m.inputs += len(items)
	m.bytes += len(out)
	return &provider.Response{Body: out}, nil
}

func (m *embedRouter) counts() (calls, inputs int) {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.calls, m.inputs
}

func newEmbedGateway(t testing.TB, r *embedRouter) *Gateway {
	t.Helper()
	l1, err := memory.New(memory.Options{MaxBytes: 256 << 20})
	if err != nil {
		t.Fatal(err)
	}
	c := cache.NewTiered(cache.Options{L1: l1})
	t.Cleanup(func() { c.Close(); l1.Close() })
	return New(Options{Router: r, Cache: c})
}

func postEmbeddings(g *Gateway, body string) *httptest.ResponseRecorder {
	req := httptest.NewRequest(http.MethodPost, "/v1/embeddings", strings.NewReader(body))
	w := httptest.NewRecorder()
	g.ServeEmbeddings(w, req)
	return w
}

func TestEmbeddingsConcurrentIdenticalInputsAreFetchedOnce(t *testing.T) {
	r := newEmbedRouter(4)
	r.gate, r.entered = make(chan struct{}), make(chan struct{}, 4)
	g := newEmbedGateway(t, r)

	first := make(chan *httptest.ResponseRecorder)
	go func() { first <- postEmbeddings(g, `{"model":"text-embedding-3-small","input":["shared","mine"]}`) }()
	<-r.entered // the leader's call is upstream, holding "shared" and "mine"
	second := make(chan *httptest.ResponseRecorder)
	go func() { second <- postEmbeddings(g, `{"model":"text-embedding-3-small","input":["other","shared"]}`) }()
	<-r.entered // the second request's own miss, "other", is upstream too
	close(r.gate)
	a, b := <-first, <-second

	if a.Code != http.StatusOK || b.Code != http.StatusOK {
		t.Fatalf("status %d %s / %d %s", a.Code, a.Body, b.Code, b.Body)
	}
	if calls, inputs := r.counts(); calls != 2 || inputs != 3 {
		t.Fatalf("upstream saw %d calls, %d inputs; want shared fetched once: 2 calls, 3 inputs", calls, inputs)
	}
	if got, want := gjson.Get(b.Body.String(), "data.1.embedding").Raw, gjson.Get(a.Body.String(), "data.0.embedding").Raw; got != want || got == "" {
		t.Fatalf("the coalesced vector %s, the leader's %s", got, want)
	}
	if got := b.Header().Get("X-Cache-Hits") + "/" + b.Header().Get("X-Cache-Misses"); got != "1/1" {
		t.Fatalf("second request hits/misses %s", got)
	}
}

func TestEmbeddingsUpstreamFailureStoresNothing(t *testing.T) {
	r := newEmbedRouter(4)
	r.fail = &api.Error{Status: http.StatusBadGateway, Type: api.TypeUpstream, Message: "upstream down"}
	g := newEmbedGateway(t, r)
	body := `{"model":"text-embedding-3-small","input":["a","b"]}`
	if w := postEmbeddings(g, body); w.Code != http.StatusBadGateway || gjson.Get(w.Body.String(), "error.type").String() != api.TypeUpstream {
		t.Fatalf("status %d %s", w.Code, w.Body)
	}
	r.mu.Lock()
	r.fail = nil
	r.mu.Unlock()
	w := postEmbeddings(g, body)
	if w.Code != http.StatusOK || w.Header().Get("X-Cache-Misses") != "2" {
		t.Fatalf("after the failure: status %d, misses %q", w.Code, w.Header().Get("X-Cache-Misses"))
	}
}

func TestEmbeddingsForAProviderWithoutTheAPIIsA400(t *testing.T) {
	r := newEmbedRouter(4)
	r.speaks = false
	g := newEmbedGateway(t, r)
	w := postEmbeddings(g, `{"model":"claude-sonnet-4-5","input":"a"}`)
	if w.Code != http.StatusBadRequest || gjson.Get(w.Body.String(), "error.code").String() != "model_not_supported" {
		t.Fatalf("status %d %s", w.Code, w.Body)
	}
	if calls, _ := r.counts(); calls != 0 {
		t.Fatalf("%d upstream calls", calls)
	}
}

func TestEmbeddingsNoCacheSendsEveryInputAndNoStoreKeepsNone(t *testing.T) {
	r := newEmbedRouter(4)
	g := newEmbedGateway(t, r)
	body := `{"model":"text-embedding-3-small","input":["a","b","c"]}`
	send := func(cc string) *httptest.ResponseRecorder {
		req := httptest.NewRequest(http.MethodPost, "/v1/embeddings", strings.NewReader(body))
		if cc != "" {
			req.Header.Set("Cache-Control", cc)
		}
		w := httptest.NewRecorder()
		g.ServeEmbeddings(w, req)
		return w
	}
	if w := send("no-store"); w.Code != http.StatusOK || w.Header().Get("X-Cache-Status") != "MISS" {
		t.Fatalf("no-store: %d %q", w.Code, w.Header().Get("X-Cache-Status"))
	}
	if w := send(""); w.Header().Get("X-Cache-Misses") != "3" {
		t.Fatalf("after no-store: misses %q, want 3 (nothing was kept)", w.Header().Get("X-Cache-Misses"))
	}
	if w := send("no-cache"); w.Header().Get("X-Cache-Status") != "BYPASS" {
		t.Fatalf("no-cache: %q", w.Header().Get("X-Cache-Status"))
	}
	if calls, inputs := r.counts(); calls != 3 || inputs != 9 {
		t.Fatalf("upstream saw %d calls, %d inputs; want 3, 9", calls, inputs)
	}
}
