// Package anthropic adapts Anthropic's Messages API to the gateway's
// OpenAI chat completions, translating requests, answers and streams.
package anthropic

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"

	"github.com/edge-agent/edge-agent/internal/api"
	"github.com/edge-agent/edge-agent/internal/cost"
	"github.com/edge-agent/edge-agent/internal/provider"
)

// Defaults applied by New.
const (
	DefaultBaseURL = "https://api.anthropic.com"
	DefaultVersion = "2023-06-01"
)

// Bounds on what we read from the upstream outside a stream.
const (
	// DefaultMaxResponseBytes bounds a non-streamed answer; a larger one is
	// a 502 upstream_response_too_large.
	DefaultMaxResponseBytes = 64 << 20
	maxErrorBytes           = 64 << 10
)

// Config configures one Anthropic upstream.
type Config struct {
	Name             string       // provider name, e.g. "anthropic"
	BaseURL          string       // default DefaultBaseURL; requests go to {BaseURL}/v1/messages
	APIKey           string       // sent as x-api-key; never logged
	Version          string       // anthropic-version header, default DefaultVersion
	DefaultMaxTokens int          // max_tokens when the client sends none, default DefaultMaxTokens
	Client           *http.Client // nil: a client over provider.NewTransport(provider.TransportOptions{})
	MaxResponseBytes int64        // bound on a non-streamed answer; 0: DefaultMaxResponseBytes
}

// Provider calls the Anthropic Messages API and answers in OpenAI format.
type Provider struct {
	name, url, apiKey, version string
	defaultMaxTokens           int
	maxBody                    int64
	client                     *http.Client
	now                        func() time.Time // the created time of answers; a field so tests can fix it
}

var _ provider.Provider = (*Provider)(nil)

// New returns a Provider for cfg with defaults filled in.
func New(cfg Config) *Provider {
	if cfg.Name == "" {
		cfg.Name = "anthropic"
	}
	if cfg.BaseURL == "" {
		cfg.BaseURL = DefaultBaseURL
	}
	if cfg.Version == "" {
		cfg.Version = DefaultVersion
	}
	if cfg.DefaultMaxTokens <= 0 {
		cfg.DefaultMaxTokens = DefaultMaxTokens
	}
	if cfg.MaxResponseBytes <= 0 {
		cfg.MaxResponseBytes = DefaultMaxResponseBytes
	}
	if cfg.Client == nil {
		cfg.Client = &http.Client{Transport: provider.NewTransport(provider.TransportOptions{})}
	}
	return &Provider{
		name:             cfg.Name,
		url:              strings.TrimRight(cfg.BaseURL, "/") + "/v1/messages",
		apiKey:           cfg.APIKey,
		version:          cfg.Version,
		defaultMaxTokens: cfg.DefaultMaxTokens,
		maxBody:          cfg.MaxResponseBytes,
		client:           cfg.Client,
		now:              time.Now,
	}
}

// Name is the configured provider name.
func (p *Provider) Name() string { return p.name }

// Type is "anthropic".
func (p *Provider) Type() string { return "anthropic" }

// ownHeader reports headers the adapter owns: a propagated header never
// overrides them, and the client's own credentials never travel upstream.
func ownHeader(canonical string) bool {
	switch canonical {
	case "X-Api-Key", "Authorization", "Anthropic-Version", "Content-Type", "Content-Length",
		"Host", "Connection", "Accept", "Accept-Encoding", "Transfer-Encoding":
		return true
	}
	return false
}

// ChatCompletion translates req, calls POST {BaseURL}/v1/messages and
// translates the answer back; a streamed answer is translated as it is read.
func (p *Provider) ChatCompletion(ctx context.Context, req *provider.Request) (*provider.Response, error) {
	if req.Surface == provider.SurfaceMessages {
		return p.messages(ctx, req)
	}
	mode := streamOff
	if req.Stream {
		mode = streamOn
	}
	body, err := translateRequest(make([]byte, 0, len(req.Body)+256), req.Body, req.Model, p.defaultMaxTokens, mode)
	if err != nil {
		return nil, err
	}
	hreq, err := http.NewRequestWithContext(ctx, http.MethodPost, p.url, bytes.NewReader(body))
	if err != nil {
		return nil, api.FromError(fmt.Errorf("anthropic: building request for provider %s: %w", p.name, err))
	}
	for k, vs := range req.Header {
		if !ownHeader(http.CanonicalHeaderKey(k)) {
			hreq.Header[k] = vs
		}
	}
	provider.MarkReplayable(hreq.Header)
	hreq.Header.Set("X-Api-Key", p.apiKey)
	hreq.Header.Set("Anthropic-Version", p.version)
	hreq.Header.Set("Content-Type", "application/json")
	if req.Stream {
		hreq.Header.Set("Accept", "text/event-stream")
	} else {
		hreq.Header.Set("Accept", "application/json")
	}

	resp, err := p.client.Do(hreq)
	if err != nil {
		return nil, provider.TransportError(ctx, p.name, err)
	}
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		defer resp.Body.Close()
		b, _ := io.ReadAll(io.LimitReader(resp.Body, maxErrorBytes))
		return nil, provider.ScrubSecret(provider.UpstreamError(p.name, resp.StatusCode, resp.Header, b), p.apiKey)
	}
	created := p.now().Unix()
	if req.Stream {
		s := newStream(ctx, p.name, provider.StreamBody(resp), created)
		s.key = p.apiKey
		return &provider.Response{Stream: s}, nil
	}
	defer resp.Body.Close()
	if resp.ContentLength > p.maxBody {
		return nil, provider.TooLarge(p.name, p.maxBody)
	}
	b, err := io.ReadAll(io.LimitReader(resp.Body, p.maxBody+1))
	if err != nil {
		return nil, provider.TransportError(ctx, p.name, err)
	}
	if int64(len(b)) > p.maxBody {
		return nil, provider.TooLarge(p.name, p.maxBody)
	}
	ku := new(cost.Usage)
	out, err := appendResponse(make([]byte, 0, len(b)+256), b, p.name, created, ku)
	if err != nil {
		// A 200 with an error body is mapped by appendResponse; the
		// upstream's text may quote the key.
		return nil, provider.Scrub(err, p.apiKey)
	}
	return &provider.Response{Body: out, Usage: ku}, nil
}
