package openai

import (
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"

	"github.com/tidwall/gjson"

	"github.com/edge-agent/edge-agent/internal/api"
	"github.com/edge-agent/edge-agent/internal/provider"
)

// hookServer records each request's path, query, headers and body and
// answers with a chat completion (or code, body when code is not 200).
type hookServer struct {
	*httptest.Server
	path, query string
	header      http.Header
	body        []byte
}

func newHookServer(t *testing.T, code int, answer string) *hookServer {
	t.Helper()
	h := &hookServer{}
	h.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h.path, h.query, h.header = r.URL.Path, r.URL.RawQuery, r.Header.Clone()
		h.body, _ = io.ReadAll(r.Body)
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(code)
		io.WriteString(w, answer)
	}))
	t.Cleanup(h.Close)
	return h
}

func TestEndpointHookPicksTheURLForEachSurfaceAndModel(t *testing.T) {
	srv := newHookServer(t, 200, completion)
	endpoint := func(s provider.Surface, model string) (*url.URL, error) {
		return url.Parse(srv.URL + "/deployments/" + model + "/" + s.String() + "?api-version=v9")
	}
	p := New(Config{Name: "cloud", APIKey: "k", Endpoint: endpoint, Surfaces: []provider.Surface{provider.SurfaceEmbeddings}})
	if !p.Speaks(provider.SurfaceEmbeddings) || p.Speaks(provider.SurfaceResponses) {
		t.Fatalf("speaks embeddings %v, responses %v; want only the configured surface", p.Speaks(provider.SurfaceEmbeddings), p.Speaks(provider.SurfaceResponses))
	}
	if _, err := p.ChatCompletion(context.Background(), &provider.Request{Body: []byte(`{"model":"dep-a"}`), Model: "dep-a"}); err != nil {
		t.Fatal(err)
	}
	if srv.path != "/deployments/dep-a/chat" || srv.query != "api-version=v9" {
		t.Fatalf("chat went to %s?%s", srv.path, srv.query)
	}
	if _, err := p.ChatCompletion(context.Background(), &provider.Request{Surface: provider.SurfaceEmbeddings,
		Body: []byte(`{"model":"dep-b","input":"x"}`), Model: "dep-b"}); err != nil {
		t.Fatal(err)
	}
	if srv.path != "/deployments/dep-b/embeddings" {
		t.Fatalf("embeddings went to %s", srv.path)
	}
}

func TestEndpointHookErrorFailsTheCall(t *testing.T) {
	bad := &api.Error{Status: http.StatusBadRequest, Type: api.TypeInvalidRequest, Message: "no such deployment name"}
	p := New(Config{Name: "cloud", Endpoint: func(provider.Surface, string) (*url.URL, error) { return nil, bad }})
	_, err := p.ChatCompletion(context.Background(), &provider.Request{Body: []byte(`{}`), Model: "x"})
	if ae := api.FromError(err); ae != bad {
		t.Fatalf("err %v, want the hook's error", err)
	}
}

func TestAuthorizeHookReplacesTheBearerKeyAndWinsOverPropagatedHeaders(t *testing.T) {
	srv := newHookServer(t, 200, completion)
	p := New(Config{Name: "cloud", BaseURL: srv.URL, APIKey: "secret-key", Authorize: func(_ context.Context, h http.Header) error {
		h["Api-Key"] = []string{"secret-key"}
		return nil
	}})
	_, err := p.ChatCompletion(context.Background(), &provider.Request{Body: []byte(`{}`), Model: "m",
		Header: http.Header{"Api-Key": {"from-client"}}})
	if err != nil {
		t.Fatal(err)
	}
	if got := srv.header.Get("Api-Key"); got != "secret-key" {
		t.Fatalf("api-key %q", got)
	}
	if got := srv.header.Get("Authorization"); got != "" {
		t.Fatalf("Authorization %q sent beside the hook's credential", got)
	}
}

func TestAuthorizeHookErrorStopsTheRequestBeforeItIsSent(t *testing.T) {
	srv := newHookServer(t, 200, completion)
	cause := errors.New("no token")
	p := New(Config{Name: "cloud", BaseURL: srv.URL, Authorize: func(context.Context, http.Header) error { return cause }})
	_, err := p.ChatCompletion(context.Background(), &provider.Request{Body: []byte(`{}`), Model: "m"})
	if !errors.Is(err, cause) {
		t.Fatalf("err %v", err)
	}
	if srv.path != "" {
		t.Fatal("the request reached the upstream without a credential")
	}
}

func TestMapErrorHookMapsUpstreamErrorsAndTheKeyIsStillScrubbed(t *testing.T) {
	srv := newHookServer(t, 400, `{"error":{"code":"content_filter","message":"filtered for key secret-key-123"}}`)
	var gotStatus int
	p := New(Config{Name: "cloud", BaseURL: srv.URL, APIKey: "secret-key-123", MapError: func(status int, _ http.Header, body []byte) *api.Error {
		gotStatus = status
		return &api.Error{Status: status, Type: api.TypeInvalidRequest, Code: "mapped", Message: gjson.GetBytes(body, "error.message").String()}
	}})
	_, err := p.ChatCompletion(context.Background(), &provider.Request{Body: []byte(`{}`), Model: "m"})
	ae := api.FromError(err)
	if gotStatus != 400 || ae.Code != "mapped" || ae.Status != 400 {
		t.Fatalf("status %d, error %+v", gotStatus, ae)
	}
	if strings.Contains(ae.Message, "secret-key-123") {
		t.Fatalf("message %q carries the key", ae.Message)
	}
}

func TestOmitStreamUsageLeavesStreamOptionsOut(t *testing.T) {
	srv := newHookServer(t, 200, "data: [DONE]\n\n")
	p := New(Config{Name: "cloud", BaseURL: srv.URL, OmitStreamUsage: true})
	resp, err := p.ChatCompletion(context.Background(), &provider.Request{Body: []byte(`{"stream":true}`), Model: "m", Stream: true})
	if err != nil {
		t.Fatal(err)
	}
	resp.Stream.Close()
	if gjson.GetBytes(srv.body, "stream_options").Exists() {
		t.Fatalf("upstream body %s has stream_options", srv.body)
	}
}

func TestTypeIsConfigurable(t *testing.T) {
	if got := New(Config{Name: "a"}).Type(); got != "openai" {
		t.Fatalf("default type %q", got)
	}
	if got := New(Config{Name: "a", Type: "azure"}).Type(); got != "azure" {
		t.Fatalf("type %q", got)
	}
}
