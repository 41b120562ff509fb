// Package openai is the adapter for OpenAI and every server that speaks the
// OpenAI Chat Completions API (vLLM, Ollama, LM Studio, mirrors).
package openai

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"

	"github.com/tidwall/gjson"
	"github.com/tidwall/sjson"

	"github.com/edge-agent/edge-agent/internal/api"
	"github.com/edge-agent/edge-agent/internal/provider"
	"github.com/edge-agent/edge-agent/internal/sse"
)

// DefaultBaseURL is OpenAI's API root.
const DefaultBaseURL = "https://api.openai.com/v1"

// Bounds on what we read from an upstream, so a broken one cannot exhaust
// memory.
const (
	// DefaultMaxResponseBytes bounds a non-streamed answer; a larger one is
	// a 502 upstream_response_too_large.
	DefaultMaxResponseBytes = 64 << 20
	maxErrorBody            = 1 << 20
)

// Config configures one OpenAI-compatible upstream.
type Config struct {
	Name    string // provider name ("openai", "local", ...)
	BaseURL string // API root including /v1; default DefaultBaseURL
	APIKey  string // sent as a Bearer token; may be empty for local servers
	Models  []string
	Client  *http.Client // nil: a client over provider.NewTransport
	// MaxResponseBytes bounds a non-streamed answer; 0: DefaultMaxResponseBytes.
	MaxResponseBytes int64
	// Surfaces are the APIs beside chat completions the upstream serves
	// itself (responses, embeddings, completions): a request on one of
	// them is passed through to {BaseURL}/responses, /embeddings,
	// /completions. Others are translated through chat by the gateway.
	Surfaces []provider.Surface

	// The hooks below let a cloud whose API is OpenAI's behind other paths
	// and credentials (Azure OpenAI) reuse this adapter. Nil hooks keep
	// OpenAI's behaviour.

	// Type is what Type reports ("" : "openai").
	Type string
	// Endpoint, when set, is the URL of a request on surface s for the
	// upstream model (Azure's per-deployment paths and api-version) in
	// place of BaseURL plus the surface's path. The URL is only read.
	Endpoint func(s provider.Surface, model string) (*url.URL, error)
	// Authorize, when set, puts the credential on each upstream request
	// (an api-key header, a fresh Entra ID token) instead of the Bearer
	// APIKey. Its error fails the call as it is.
	Authorize func(ctx context.Context, h http.Header) error
	// MapError, when set, maps an upstream error answer in place of
	// provider.UpstreamError (the result is still scrubbed of APIKey).
	MapError func(status int, header http.Header, body []byte) *api.Error
	// OmitStreamUsage leaves stream_options out of streamed requests, for
	// an upstream that refuses it; their usage is then estimated.
	OmitStreamUsage bool
}

// Provider talks to one OpenAI-compatible upstream.
type Provider struct {
	name, url, auth string
	key             string // the API key, scrubbed from upstream errors
	models          []string
	client          *http.Client
	maxBody         int64

	// The endpoint parsed once (urlErr when it does not parse), copied into
	// every request instead of parsing the URL per call.
	endpoint url.URL
	urlErr   error

	// Header values shared by every request: net/http only reads them, and
	// a caller that appends to a header gets a copy (len == cap).
	hJSON, hSSE, hAuth []string

	// native[s] is the endpoint of surface s when the upstream speaks it
	// (nil: it does not).
	native [8]*url.URL
	// speaks[s]: s is a configured surface (with endpoint, whose URLs
	// native then does not hold).
	speaks [8]bool

	typ             string
	endpointFn      func(provider.Surface, string) (*url.URL, error)
	authorize       func(context.Context, http.Header) error
	mapError        func(int, http.Header, []byte) *api.Error
	omitStreamUsage bool

	// events lends the read buffers of streamed answers: a stream that
	// ends hands its buffer to the next one.
	events sse.Pool
}

// New returns a Provider for cfg.
func New(cfg Config) *Provider {
	base := strings.TrimRight(cfg.BaseURL, "/")
	if base == "" {
		base = DefaultBaseURL
	}
	client := cfg.Client
	if client == nil {
		client = &http.Client{Transport: provider.NewTransport(provider.TransportOptions{})}
	}
	p := &Provider{name: cfg.Name, url: base + "/chat/completions", key: cfg.APIKey, models: cfg.Models, client: client,
		maxBody: cfg.MaxResponseBytes, hJSON: []string{"application/json"}, hSSE: []string{"text/event-stream"},
		typ: cfg.Type, endpointFn: cfg.Endpoint, authorize: cfg.Authorize, mapError: cfg.MapError, omitStreamUsage: cfg.OmitStreamUsage}
	if p.typ == "" {
		p.typ = "openai"
	}
	if p.maxBody <= 0 {
		p.maxBody = DefaultMaxResponseBytes
	}
	if cfg.APIKey != "" && cfg.Authorize == nil {
		p.auth = "Bearer " + cfg.APIKey
		p.hAuth = []string{p.auth}
	}
	if u, err := url.Parse(p.url); err != nil {
		p.urlErr = err
	} else {
		// As http.NewRequest does: "host:" means the default port.
		u.Host = strings.TrimSuffix(u.Host, ":")
		p.endpoint = *u
	}
	for _, s := range cfg.Surfaces {
		path, ok := nativePaths[s]
		if !ok || int(s) >= len(p.native) {
			continue
		}
		if cfg.Endpoint != nil {
			p.speaks[s] = true
			continue
		}
		if u, err := url.Parse(base + path); err == nil {
			u.Host = strings.TrimSuffix(u.Host, ":")
			p.native[s] = u
		}
	}
	return p
}

// nativePaths are the endpoints, under BaseURL, of the surfaces an
// OpenAI-compatible upstream may speak beside chat.
var nativePaths = map[provider.Surface]string{
	provider.SurfaceResponses:   "/responses",
	provider.SurfaceEmbeddings:  "/embeddings",
	provider.SurfaceCompletions: "/completions",
}

// Speaks reports the surfaces configured as served by the upstream itself.
func (p *Provider) Speaks(s provider.Surface) bool {
	return s == provider.SurfaceChat || int(s) < len(p.native) && (p.native[s] != nil || p.speaks[s])
}

// Name is the configured provider name.
func (p *Provider) Name() string { return p.name }

// Type is "openai", or the Config's Type.
func (p *Provider) Type() string { return p.typ }

// Models are the models this upstream is configured to advertise.
func (p *Provider) Models() []string { return p.models }

// ChatCompletion forwards the client's bytes; for streams it asks for the
// usage chunk so every answer can be priced (the gateway strips it again when
// the client did not ask for it).
func (p *Provider) ChatCompletion(ctx context.Context, req *provider.Request) (*provider.Response, error) {
	if req.Surface != provider.SurfaceChat {
		return p.passthrough(ctx, req)
	}
	body := req.Body
	if req.Stream && !p.omitStreamUsage && !gjson.GetBytes(body, "stream_options.include_usage").Bool() {
		var err error
		body, err = sjson.SetBytes(bytes.Clone(body), "stream_options.include_usage", true)
		if err != nil {
			return nil, api.InvalidRequest("stream_options", "cannot set stream_options: %v", err)
		}
	}
	hreq, err := p.newRequest(ctx, body, req)
	if err != nil {
		return nil, fmt.Errorf("openai: build request: %w", err)
	}
	resp, err := p.client.Do(hreq)
	if err != nil {
		return nil, provider.TransportError(ctx, p.name, err)
	}
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		return nil, p.upstreamError(resp)
	}
	if req.Stream {
		return &provider.Response{Stream: p.newStream(provider.StreamBody(resp), false, false)}, nil
	}
	defer resp.Body.Close()
	b, err := readAll(resp.Body, resp.ContentLength, p.maxBody)
	if err == errTooLarge {
		return nil, provider.TooLarge(p.name, p.maxBody)
	}
	if err != nil {
		return nil, provider.TransportError(ctx, p.name, err)
	}
	// A string view of the answer spares GetBytes' copy of the choices;
	// nothing read from it outlives this check.
	valid := gjson.ValidBytes(b)
	choices := gjson.Get(api.View(b), "choices")
	if valid && (!choices.IsArray() || emptyArray(choices.Raw)) && gjson.GetBytes(b, "error").IsObject() {
		// Some servers answer 200 with an error body: it is an upstream
		// failure, and never an answer to cache.
		return nil, provider.ScrubSecret(provider.ErrorInBody(p.name, b), p.key)
	}
	if !valid || !choices.IsArray() {
		return nil, &api.Error{Status: http.StatusBadGateway, Type: api.TypeUpstream, Code: "upstream_invalid_response",
			Message: fmt.Sprintf("provider %s returned an answer that is not a chat completion", p.name)}
	}
	return &provider.Response{Body: b}, nil
}

// newRequest builds the upstream POST of body to the endpoint with req's
// headers. The request is what http.NewRequestWithContext(ctx, "POST",
// p.url, bytes.NewReader(body)) returns, without parsing the URL again: it
// is made with an empty URL that the parsed endpoint is copied into. Host
// stays empty, which net/http reads as URL.Host (what NewRequest would have
// set it to), and which spares http.Client a copy of the URL per call.
func (p *Provider) newRequest(ctx context.Context, body []byte, req *provider.Request) (*http.Request, error) {
	if p.endpointFn != nil {
		u, err := p.endpointFn(provider.SurfaceChat, req.Model)
		if err != nil {
			return nil, err
		}
		return p.newRequestTo(ctx, u, body, req)
	}
	if p.urlErr != nil {
		return nil, p.urlErr
	}
	return p.newRequestTo(ctx, &p.endpoint, body, req)
}

// upstreamError reads an error answer and maps it (MapError or
// provider.UpstreamError), with the key scrubbed.
func (p *Provider) upstreamError(resp *http.Response) *api.Error {
	defer resp.Body.Close()
	b, _ := io.ReadAll(io.LimitReader(resp.Body, maxErrorBody))
	var e *api.Error
	if p.mapError != nil {
		e = p.mapError(resp.StatusCode, resp.Header, b)
	} else {
		e = provider.UpstreamError(p.name, resp.StatusCode, resp.Header, b)
	}
	return provider.ScrubSecret(e, p.key)
}

func (p *Provider) newRequestTo(ctx context.Context, endpoint *url.URL, body []byte, req *provider.Request) (*http.Request, error) {
	hreq, err := http.NewRequestWithContext(ctx, http.MethodPost, "", bytes.NewReader(body))
	if err != nil {
		return nil, err
	}
	*hreq.URL = *endpoint
	h := hreq.Header
	h["Content-Type"] = p.hJSON
	if req.Stream {
		h["Accept"] = p.hSSE
	} else {
		h["Accept"] = p.hJSON
	}
	if p.hAuth != nil {
		h["Authorization"] = p.hAuth
	}
	for k, v := range req.Header {
		h[k] = v
	}
	if p.authorize != nil {
		// After the propagated headers, so none can replace the credential.
		if err := p.authorize(ctx, h); err != nil {
			return nil, err
		}
	}
	provider.MarkReplayable(h)
	return hreq, nil
}

// emptyArray reports a JSON array with no elements ("[]", "[ ]").
func emptyArray(raw string) bool {
	return len(raw) >= 2 && len(raw) < 16 && strings.TrimSpace(raw[1:len(raw)-1]) == ""
}

// errTooLarge is readAll's error for an answer over its limit.
var errTooLarge = errors.New("openai: answer too large")

// readAll reads an answer of n bytes (n < 0: unknown) into a buffer sized
// for it, so a known length costs one allocation and no copy. It fails with
// errTooLarge past limit bytes.
func readAll(r io.Reader, n, limit int64) ([]byte, error) {
	if n > limit {
		return nil, errTooLarge
	}
	if n < 0 {
		n = 4096
	}
	// One spare byte lets the read that sees EOF go without growing.
	b := make([]byte, 0, n+1)
	for {
		if len(b) == cap(b) {
			b = append(b, 0)[:len(b)]
		}
		m, err := r.Read(b[len(b):cap(b)])
		b = b[:len(b)+m]
		if int64(len(b)) > limit {
			return nil, errTooLarge
		}
		if err == io.EOF {
			return b, nil
		}
		if err != nil {
			return nil, err
		}
	}
}

// stream reads an OpenAI SSE answer.
type stream struct {
	name string
	key  string // scrubbed from the upstream's error events
	body io.ReadCloser
	r    sse.Reader // held here, not beside: every event reads both
	done bool
	// raw: a passed-through surface's events, handed on as they are (an
	// error event is the surface's to interpret). eofEnds: the end of the
	// body ends the stream (the Responses API sends no [DONE]).
	raw, eofEnds bool
}

func (p *Provider) newStream(body io.ReadCloser, raw, eofEnds bool) *stream {
	s := &stream{name: p.name, key: p.key, body: body, raw: raw, eofEnds: eofEnds}
	p.events.Init(&s.r, body)
	return s
}

var errorKey = []byte(`"error"`)

func (s *stream) Next() ([]byte, error) {
	if s.done {
		return nil, io.EOF
	}
	for {
		ev, err := s.r.Next()
		if err == io.EOF && s.eofEnds {
			s.done = true
			return nil, io.EOF
		}
		if err != nil {
			if err == io.EOF || err == io.ErrUnexpectedEOF {
				err = io.ErrUnexpectedEOF
			}
			return nil, &api.Error{Status: http.StatusBadGateway, Type: api.TypeUpstream, Code: "upstream_stream_truncated",
				Message: fmt.Sprintf("provider %s ended the stream before [DONE]", s.name), Err: err}
		}
		data := ev.Data
		if len(data) == 0 {
			continue
		}
		if bytes.Equal(data, sse.Done) {
			s.done = true
			s.r.Release()
			return nil, io.EOF
		}
		if s.raw {
			return data, nil
		}
		// An error event is {"error":{...}}; the key's bytes are looked
		// for first, so an ordinary chunk is not parsed here at all.
		if !bytes.Contains(data, errorKey) {
			return data, nil
		}
		if e := gjson.GetBytes(data, "error"); e.IsObject() {
			return nil, provider.ScrubSecret(&api.Error{Status: http.StatusBadGateway, Type: api.TypeUpstream, Code: "upstream_stream_error",
				Message: fmt.Sprintf("provider %s failed mid-stream: %s", s.name, e.Get("message").String())}, s.key)
		}
		return data, nil
	}
}

// NextBuffered: the next event is in the reader's buffer (provider.Buffered).
func (s *stream) NextBuffered() bool { return s.done || s.r.NextBuffered() }

func (s *stream) Close() error { return s.body.Close() }

// passthrough sends req.Body, a request of a surface the upstream speaks
// (model already rewritten), to that surface's endpoint untouched and
// returns the answer's bytes, or a stream of the raw event payloads. A
// stream ends at [DONE] or, for the Responses API, which sends none, at the
// end of the body; the surface's accumulator decides whether it was
// complete.
func (p *Provider) passthrough(ctx context.Context, req *provider.Request) (*provider.Response, error) {
	if !p.Speaks(req.Surface) {
		return nil, &api.Error{Status: http.StatusBadGateway, Type: api.TypeUpstream, Code: "surface_not_supported",
			Message: fmt.Sprintf("provider %s is not configured to serve the %s API", p.name, req.Surface)}
	}
	endpoint := p.native[req.Surface]
	if p.endpointFn != nil {
		var err error
		if endpoint, err = p.endpointFn(req.Surface, req.Model); err != nil {
			return nil, fmt.Errorf("openai: build request: %w", err)
		}
	}
	hreq, err := p.newRequestTo(ctx, endpoint, req.Body, req)
	if err != nil {
		return nil, fmt.Errorf("openai: build request: %w", err)
	}
	resp, err := p.client.Do(hreq)
	if err != nil {
		return nil, provider.TransportError(ctx, p.name, err)
	}
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		return nil, p.upstreamError(resp)
	}
	if req.Stream {
		return &provider.Response{Stream: p.newStream(provider.StreamBody(resp), true, req.Surface == provider.SurfaceResponses)}, nil
	}
	defer resp.Body.Close()
	b, err := readAll(resp.Body, resp.ContentLength, p.maxBody)
	if err == errTooLarge {
		return nil, provider.TooLarge(p.name, p.maxBody)
	}
	if err != nil {
		return nil, provider.TransportError(ctx, p.name, err)
	}
	if !gjson.ValidBytes(b) {
		return nil, &api.Error{Status: http.StatusBadGateway, Type: api.TypeUpstream, Code: "upstream_invalid_response",
			Message: fmt.Sprintf("provider %s returned an answer that is not JSON", p.name)}
	}
	if gjson.GetBytes(b, "error").IsObject() && !gjson.GetBytes(b, "object").Exists() {
		return nil, provider.ScrubSecret(provider.ErrorInBody(p.name, b), p.key)
	}
	return &provider.Response{Body: b}, nil
}
