// Package bedrock adapts AWS Bedrock's Converse, ConverseStream and
// InvokeModel (embeddings) APIs to the gateway's OpenAI chat completions
// and embeddings, signing every call with SigV4.
package bedrock

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	v4 "github.com/aws/aws-sdk-go-v2/aws/signer/v4"
	awsconfig "github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/smithy-go/encoding/httpbinding"

	"github.com/edge-agent/edge-agent/internal/api"
	"github.com/edge-agent/edge-agent/internal/cost"
	"github.com/edge-agent/edge-agent/internal/provider"
)

// SigningName is the service name in Bedrock's SigV4 credential scope.
const SigningName = "bedrock"

// Bounds on what we read from the upstream outside a stream.
const (
	// DefaultMaxResponseBytes bounds a non-streamed answer; a larger one is
	// a 502 upstream_response_too_large.
	DefaultMaxResponseBytes = 64 << 20
	maxErrorBytes           = 64 << 10
)

// Config configures one Bedrock upstream.
type Config struct {
	Name   string // provider name, e.g. "bedrock"
	Region string // AWS region, e.g. us-east-1; "" takes the SDK's (AWS_REGION, the profile)
	// BaseURL defaults to https://bedrock-runtime.{Region}.amazonaws.com;
	// calls go to {BaseURL}/model/{modelId}/converse and so on.
	BaseURL string
	// Static keys; when AccessKeyID is empty the SDK's default chain is
	// used (environment, shared config and profiles, web identity, IMDS).
	AccessKeyID, SecretAccessKey, SessionToken string
	// Credentials, when set, replaces both (tests, embedding programs).
	Credentials aws.CredentialsProvider
	Client      *http.Client // nil: a client over provider.NewTransport(provider.TransportOptions{})
	// MaxResponseBytes bounds a non-streamed answer; 0: DefaultMaxResponseBytes.
	MaxResponseBytes int64
}

// Provider calls Bedrock and answers in OpenAI format.
type Provider struct {
	name, base, region string
	service            string // SigningName; the SigV4 test vectors use another
	creds              aws.CredentialsProvider
	signer             *v4.Signer
	maxBody            int64
	client             *http.Client
	now                func() time.Time // signing time and the created time of answers; a field so tests can fix it
}

var (
	_ provider.Provider = (*Provider)(nil)
	_ provider.Native   = (*Provider)(nil)
)

// New returns a Provider for cfg. Without static keys it loads the SDK's
// default configuration (which reads the environment and the shared
// config files, not the network: credentials are fetched on first use and
// cached until they expire); a malformed shared config file is an error.
func New(ctx context.Context, cfg Config) (*Provider, error) {
	if cfg.Name == "" {
		cfg.Name = "bedrock"
	}
	if cfg.MaxResponseBytes <= 0 {
		cfg.MaxResponseBytes = DefaultMaxResponseBytes
	}
	if cfg.Client == nil {
		cfg.Client = &http.Client{Transport: provider.NewTransport(provider.TransportOptions{})}
	}
	creds := cfg.Credentials
	switch {
	case creds != nil:
	case cfg.AccessKeyID != "":
		if cfg.SecretAccessKey == "" {
			return nil, fmt.Errorf("bedrock provider %s: aws_secret_access_key is required with aws_access_key_id", cfg.Name)
		}
		creds = credentials.NewStaticCredentialsProvider(cfg.AccessKeyID, cfg.SecretAccessKey, cfg.SessionToken)
	default:
		var opts []func(*awsconfig.LoadOptions) error
		if cfg.Region != "" {
			opts = append(opts, awsconfig.WithRegion(cfg.Region))
		}
		ac, err := awsconfig.LoadDefaultConfig(ctx, opts...)
		if err != nil {
			return nil, fmt.Errorf("bedrock provider %s: loading the AWS configuration: %w", cfg.Name, err)
		}
		creds = ac.Credentials
		if cfg.Region == "" {
			cfg.Region = ac.Region
		}
	}
	if cfg.Region == "" {
		return nil, fmt.Errorf("bedrock provider %s: no region (set region, or AWS_REGION)", cfg.Name)
	}
	if cfg.BaseURL == "" {
		cfg.BaseURL = "https://bedrock-runtime." + cfg.Region + ".amazonaws.com"
	}
	if _, ok := creds.(*aws.CredentialsCache); !ok {
		creds = aws.NewCredentialsCache(creds)
	}
	return &Provider{
		name:    cfg.Name,
		base:    strings.TrimRight(cfg.BaseURL, "/"),
		region:  cfg.Region,
		service: SigningName,
		creds:   creds,
		signer:  v4.NewSigner(),
		maxBody: cfg.MaxResponseBytes,
		client:  cfg.Client,
		now:     time.Now,
	}, nil
}

// Name is the configured provider name.
func (p *Provider) Name() string { return p.name }

// Type is "bedrock".
func (p *Provider) Type() string { return "bedrock" }

// Speaks reports embeddings, which the adapter translates to the Titan
// and Cohere embedding models' InvokeModel bodies.
func (p *Provider) Speaks(s provider.Surface) bool { return s == provider.SurfaceEmbeddings }

// ChatCompletion translates req to a Converse (or ConverseStream) call and
// the answer back; an embeddings request goes to InvokeModel.
func (p *Provider) ChatCompletion(ctx context.Context, req *provider.Request) (*provider.Response, error) {
	switch req.Surface {
	case provider.SurfaceChat:
	case provider.SurfaceEmbeddings:
		return p.embeddings(ctx, req)
	default:
		return nil, api.InvalidRequest("", "provider %s does not serve the %s API", p.name, req.Surface)
	}
	body, err := translateRequest(make([]byte, 0, len(req.Body)+256), req.Body)
	if err != nil {
		return nil, err
	}
	op := "/converse"
	if req.Stream {
		op = "/converse-stream"
	}
	resp, err := p.post(ctx, req.Model, op, body, req.Header, req.Stream)
	if err != nil {
		return nil, err
	}
	created := p.now().Unix()
	id := resp.Header.Get("X-Amzn-Requestid")
	if req.Stream {
		return &provider.Response{Stream: newStream(ctx, p.name, provider.StreamBody(resp), req.Model, id, created)}, nil
	}
	defer resp.Body.Close()
	b, err := p.readAnswer(ctx, resp)
	if err != nil {
		return nil, err
	}
	ku := new(cost.Usage)
	out, err := appendResponse(make([]byte, 0, len(b)+256), b, p.name, req.Model, id, created, ku)
	if err != nil {
		return nil, err
	}
	return &provider.Response{Body: out, Usage: ku}, nil
}

// ownHeader reports headers the adapter owns: a propagated header never
// overrides them, and the client's own credentials never travel upstream.
func ownHeader(canonical string) bool {
	switch canonical {
	case "Authorization", "X-Api-Key", "Content-Type", "Content-Length", "Host", "Connection", "Accept",
		"Accept-Encoding", "Transfer-Encoding", "X-Amz-Date", "X-Amz-Security-Token", "X-Amz-Content-Sha256":
		return true
	}
	return false
}

// modelURL is {base}/model/{modelId}{op}, the id escaped as one path
// segment the way the AWS SDK escapes it: an inference profile ARN's '/'
// and ':' become %2F and %3A (and the signer escapes them once more, as
// SigV4 wants for every service but S3).
func (p *Provider) modelURL(model, op string) string {
	return p.base + "/model/" + httpbinding.EscapePath(model, true) + op
}

// post signs and sends body to the model's operation and returns the 2xx
// answer; anything else is mapped to an *api.Error.
func (p *Provider) post(ctx context.Context, model, op string, body []byte, propagate http.Header, stream bool) (*http.Response, error) {
	if model == "" {
		return nil, api.InvalidRequest("model", "no Bedrock model id for provider %s", p.name)
	}
	hreq, err := http.NewRequestWithContext(ctx, http.MethodPost, p.modelURL(model, op), bytes.NewReader(body))
	if err != nil {
		return nil, api.FromError(fmt.Errorf("bedrock: building request for provider %s: %w", p.name, err))
	}
	for k, vs := range propagate {
		if !ownHeader(http.CanonicalHeaderKey(k)) {
			hreq.Header[k] = vs
		}
	}
	hreq.Header.Set("Content-Type", "application/json")
	if stream {
		hreq.Header.Set("Accept", "application/vnd.amazon.eventstream")
	} else {
		hreq.Header.Set("Accept", "application/json")
	}
	secret, err := p.sign(ctx, hreq, body)
	if err != nil {
		return nil, err
	}
	// After signing: a nil header is not sent, so it must not be signed.
	provider.MarkReplayable(hreq.Header)

	resp, err := p.client.Do(hreq)
	if err != nil {
		return nil, provider.TransportError(ctx, p.name, err)
	}
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		defer resp.Body.Close()
		b, _ := io.ReadAll(io.LimitReader(resp.Body, maxErrorBytes))
		return nil, provider.ScrubSecret(httpError(p.name, resp.StatusCode, resp.Header, b), secret)
	}
	return resp, nil
}

// sign adds the SigV4 headers for body to r. It returns the secret key so
// the caller can scrub it from what the upstream says.
func (p *Provider) sign(ctx context.Context, r *http.Request, body []byte) (secret string, err error) {
	c, err := p.creds.Retrieve(ctx)
	if err != nil {
		if ctx.Err() != nil {
			return "", provider.TransportError(ctx, p.name, ctx.Err())
		}
		// The chain's error says where it looked (the gateway logs only
		// the code, so the reason travels in the message); it never
		// carries a secret.
		return "", &api.Error{Status: http.StatusBadGateway, Type: api.TypeUpstream, Code: provider.CodeAuthFailed,
			Message: fmt.Sprintf("provider %s has no AWS credentials: %v", p.name, err), Err: err}
	}
	sum := sha256.Sum256(body)
	if err := p.signer.SignHTTP(ctx, c, r, hex.EncodeToString(sum[:]), p.service, p.region, p.now()); err != nil {
		return c.SecretAccessKey, api.FromError(fmt.Errorf("bedrock: signing the request for provider %s: %w", p.name, err))
	}
	return c.SecretAccessKey, nil
}

// readAnswer reads a non-streamed answer within the size bound.
func (p *Provider) readAnswer(ctx context.Context, resp *http.Response) ([]byte, error) {
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
