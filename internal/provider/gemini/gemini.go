// Package gemini adapts Google's Gemini API, on Google AI Studio and on
// Vertex AI, to the gateway's OpenAI chat completions and embeddings,
// translating requests, answers and streams.
package gemini

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"

	"golang.org/x/oauth2"
	"golang.org/x/oauth2/google"

	"github.com/edge-agent/edge-agent/internal/api"
	"github.com/edge-agent/edge-agent/internal/cost"
	"github.com/edge-agent/edge-agent/internal/provider"
)

// DefaultBaseURL is Google AI Studio's host root.
const DefaultBaseURL = "https://generativelanguage.googleapis.com"

// VertexBaseURL is the regional Vertex AI endpoint for location; the
// "global" location has no region prefix.
func VertexBaseURL(location string) string {
	if location == "" || location == "global" {
		return "https://aiplatform.googleapis.com"
	}
	return "https://" + location + "-aiplatform.googleapis.com"
}

// Scope is the OAuth2 scope Vertex AI access tokens are requested for.
const Scope = "https://www.googleapis.com/auth/cloud-platform"

// Bounds on what we read from the upstream outside a stream.
const (
	// DefaultMaxResponseBytes bounds a non-streamed answer; a larger one is
	// a 502 upstream_response_too_large.
	DefaultMaxResponseBytes = 64 << 20
	maxErrorBytes           = 64 << 10
	// tokenTimeout bounds one access-token fetch: oauth2's token sources
	// take no context, so the fetch is bounded by its client instead.
	tokenTimeout = 30 * time.Second
)

// Config configures one Gemini upstream: Google AI Studio when Vertex is
// false, Vertex AI otherwise.
type Config struct {
	Name    string // provider name, e.g. "gemini"
	BaseURL string // default DefaultBaseURL, or VertexBaseURL(Location) for Vertex
	// APIKey is AI Studio's key, sent as x-goog-api-key; never logged.
	APIKey string

	Vertex            bool
	Project, Location string // Vertex: required
	// AccessToken is a static Vertex bearer token. Empty: TokenSource, or
	// Application Default Credentials (GOOGLE_APPLICATION_CREDENTIALS, the
	// gcloud file, the metadata server) when that is nil too.
	AccessToken string
	TokenSource oauth2.TokenSource

	// Models are advertised to the router: clients may name them without
	// the "provider/" prefix.
	Models []string

	Client           *http.Client // nil: a client over provider.NewTransport(provider.TransportOptions{})
	MaxResponseBytes int64        // bound on a non-streamed answer; 0: DefaultMaxResponseBytes
}

// Provider calls generateContent / streamGenerateContent and the
// embeddings methods, answering in OpenAI format.
type Provider struct {
	name    string
	vertex  bool
	prefix  string // URL up to the model: {base}/v1beta/models/ or {base}/v1/projects/P/locations/L/publishers/google/models/
	apiKey  string
	tokens  oauth2.TokenSource // Vertex; nil for AI Studio
	models  []string
	maxBody int64
	client  *http.Client
	now     func() time.Time // the created time of answers; a field so tests can fix it
}

var (
	_ provider.Provider = (*Provider)(nil)
	_ provider.Native   = (*Provider)(nil)
)

// New returns a Provider for cfg with defaults filled in. For Vertex
// without AccessToken or TokenSource it looks up Application Default
// Credentials and fails when there are none; tokens are fetched on first
// use and refreshed before they expire.
func New(cfg Config) (*Provider, error) {
	if cfg.Client == nil {
		cfg.Client = &http.Client{Transport: provider.NewTransport(provider.TransportOptions{})}
	}
	if cfg.MaxResponseBytes <= 0 {
		cfg.MaxResponseBytes = DefaultMaxResponseBytes
	}
	p := &Provider{name: cfg.Name, vertex: cfg.Vertex, apiKey: cfg.APIKey, maxBody: cfg.MaxResponseBytes,
		client: cfg.Client, now: time.Now, models: append([]string(nil), cfg.Models...)}
	if !cfg.Vertex {
		if p.name == "" {
			p.name = "gemini"
		}
		base := cmpOr(cfg.BaseURL, DefaultBaseURL)
		p.prefix = strings.TrimRight(base, "/") + "/v1beta/models/"
		return p, nil
	}
	if p.name == "" {
		p.name = "vertex"
	}
	if cfg.Project == "" || cfg.Location == "" {
		return nil, fmt.Errorf("gemini: provider %s: Vertex AI needs a project and a location", p.name)
	}
	base := cmpOr(cfg.BaseURL, VertexBaseURL(cfg.Location))
	p.prefix = strings.TrimRight(base, "/") + "/v1/projects/" + url.PathEscape(cfg.Project) +
		"/locations/" + url.PathEscape(cfg.Location) + "/publishers/google/models/"
	switch {
	case cfg.AccessToken != "":
		p.tokens = oauth2.StaticTokenSource(&oauth2.Token{AccessToken: cfg.AccessToken, TokenType: "Bearer"})
	case cfg.TokenSource != nil:
		p.tokens = cfg.TokenSource
	default:
		// The token fetches happen outside any request (oauth2 caches and
		// refreshes the token), on a client of their own with a deadline.
		ctx := context.WithValue(context.Background(), oauth2.HTTPClient,
			&http.Client{Transport: cfg.Client.Transport, Timeout: tokenTimeout})
		creds, err := google.FindDefaultCredentials(ctx, Scope)
		if err != nil {
			return nil, fmt.Errorf("gemini: provider %s: no access_token and no Application Default Credentials: %w", p.name, err)
		}
		p.tokens = creds.TokenSource
	}
	return p, nil
}

func cmpOr(a, b string) string {
	if a != "" {
		return a
	}
	return b
}

// Name is the configured provider name.
func (p *Provider) Name() string { return p.name }

// Type is "gemini" or "vertex".
func (p *Provider) Type() string {
	if p.vertex {
		return "vertex"
	}
	return "gemini"
}

// Models are the configured models, which the router routes here by name.
func (p *Provider) Models() []string { return p.models }

// Speaks reports the surfaces served natively besides chat: embeddings,
// translated here to and from Google's embedding methods.
func (p *Provider) Speaks(s provider.Surface) bool { return s == provider.SurfaceEmbeddings }

// ownHeader reports headers the adapter owns: a propagated header never
// overrides them, and the client's own credentials never travel upstream.
func ownHeader(canonical string) bool {
	switch canonical {
	case "X-Goog-Api-Key", "Authorization", "Content-Type", "Content-Length",
		"Host", "Connection", "Accept", "Accept-Encoding", "Transfer-Encoding":
		return true
	}
	return false
}

// ChatCompletion translates req, calls the model's generateContent (or
// streamGenerateContent?alt=sse) and translates the answer back; a
// streamed answer is translated as it is read. Embeddings requests go to
// the embedding methods.
func (p *Provider) ChatCompletion(ctx context.Context, req *provider.Request) (*provider.Response, error) {
	if req.Surface == provider.SurfaceEmbeddings {
		return p.embeddings(ctx, req)
	}
	if req.Surface != provider.SurfaceChat {
		return nil, api.InvalidRequest("", "provider %s does not serve the %s API", p.name, req.Surface)
	}
	body, err := translateRequest(make([]byte, 0, len(req.Body)+256), req.Body, req.Stream)
	if err != nil {
		return nil, err
	}
	method := ":generateContent"
	if req.Stream {
		method = ":streamGenerateContent?alt=sse"
	}
	resp, secret, err := p.post(ctx, req, method, body)
	if err != nil {
		return nil, err
	}
	created := p.now().Unix()
	if req.Stream {
		s := newStream(ctx, p.name, provider.StreamBody(resp), created, req.Model)
		s.secret = secret
		return &provider.Response{Stream: s}, nil
	}
	b, err := p.readBody(ctx, resp)
	if err != nil {
		return nil, err
	}
	ku := new(cost.Usage)
	out, err := appendResponse(make([]byte, 0, len(b)+256), b, p.name, created, req.Model, ku)
	if err != nil {
		return nil, provider.Scrub(err, secret)
	}
	return &provider.Response{Body: out, Usage: ku}, nil
}

// post sends body to the model's method with the provider's credential
// and returns the 2xx answer, or the mapped error; secret is the
// credential sent, to scrub from anything the upstream says later.
func (p *Provider) post(ctx context.Context, req *provider.Request, method string, body []byte) (*http.Response, string, error) {
	model := strings.TrimPrefix(req.Model, "models/")
	if model == "" {
		return nil, "", api.InvalidRequest("model", "model must name a Gemini model")
	}
	hreq, err := http.NewRequestWithContext(ctx, http.MethodPost, p.prefix+url.PathEscape(model)+method, bytes.NewReader(body))
	if err != nil {
		return nil, "", api.FromError(fmt.Errorf("gemini: building request for provider %s: %w", p.name, err))
	}
	for k, vs := range req.Header {
		if !ownHeader(http.CanonicalHeaderKey(k)) {
			hreq.Header[k] = vs
		}
	}
	provider.MarkReplayable(hreq.Header)
	secret := p.apiKey
	if p.tokens != nil {
		tok, err := p.tokens.Token()
		if err != nil {
			return nil, "", tokenError(p.name, err)
		}
		secret = tok.AccessToken
		hreq.Header.Set("Authorization", "Bearer "+tok.AccessToken)
	} else {
		hreq.Header.Set("X-Goog-Api-Key", p.apiKey)
	}
	hreq.Header.Set("Content-Type", "application/json")
	if req.Stream {
		hreq.Header.Set("Accept", "text/event-stream")
	} else {
		hreq.Header.Set("Accept", "application/json")
	}
	resp, err := p.client.Do(hreq)
	if err != nil {
		return nil, "", provider.TransportError(ctx, p.name, err)
	}
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		defer resp.Body.Close()
		b, _ := io.ReadAll(io.LimitReader(resp.Body, maxErrorBytes))
		return nil, "", provider.ScrubSecret(upstreamError(p.name, resp.StatusCode, resp.Header, b), secret)
	}
	return resp, secret, nil
}

// readBody reads a non-streamed answer within the provider's bound.
func (p *Provider) readBody(ctx context.Context, resp *http.Response) ([]byte, error) {
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
	return b, nil
}

// tokenError is the 502 for a Vertex access token that could not be had:
// the gateway's credential failed, which is no fault of the client's. The
// token endpoint's answer stays in Err, for the logs.
func tokenError(name string, err error) *api.Error {
	return &api.Error{Status: http.StatusBadGateway, Type: api.TypeUpstream, Code: provider.CodeAuthFailed,
		Message: fmt.Sprintf("could not get an access token for provider %s", name), Err: err}
}
