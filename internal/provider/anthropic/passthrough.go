package anthropic

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"

	"github.com/tidwall/gjson"

	"github.com/edge-agent/edge-agent/internal/api"
	"github.com/edge-agent/edge-agent/internal/provider"
	"github.com/edge-agent/edge-agent/internal/sse"
)

// Speaks reports that Anthropic speaks the Messages surface natively.
func (p *Provider) Speaks(s provider.Surface) bool { return s == provider.SurfaceMessages }

// passthroughHeader reports the client headers a passthrough call carries
// upstream: every anthropic-* header (version, beta flags) and the
// propagated ones (trace context), never the client's credentials.
func passthroughHeader(canonical string) bool {
	if strings.HasPrefix(canonical, "Anthropic-") {
		return true
	}
	return !ownHeader(canonical)
}

// messages sends req.Body (a Messages request, model already rewritten)
// to POST {BaseURL}/v1/messages untouched and returns the answer's bytes,
// or a stream of the raw event payloads.
func (p *Provider) messages(ctx context.Context, req *provider.Request) (*provider.Response, error) {
	resp, err := p.post(ctx, p.url, req, req.Stream)
	if err != nil {
		return nil, err
	}
	if req.Stream {
		return &provider.Response{Stream: newRawStream(ctx, p.name, p.apiKey, provider.StreamBody(resp))}, nil
	}
	defer resp.Body.Close()
	b, err := p.readAnswer(ctx, resp)
	if err != nil {
		return nil, err
	}
	if t := gjson.GetBytes(b, "type"); t.Str == "error" {
		// A 200 carrying an error: not an answer.
		msg := gjson.GetBytes(b, "error.message").Str
		return nil, provider.ScrubSecret(&api.Error{Status: http.StatusBadGateway, Type: api.TypeUpstream, Code: "upstream_error",
			Message: fmt.Sprintf("provider %s answered 200 with an error: %s", p.name, msg)}, p.apiKey)
	}
	return &provider.Response{Body: b}, nil
}

// CountTokens passes a count_tokens request to POST
// {BaseURL}/v1/messages/count_tokens and returns the answer's bytes.
func (p *Provider) CountTokens(ctx context.Context, req *provider.Request) ([]byte, error) {
	resp, err := p.post(ctx, strings.TrimSuffix(p.url, "/v1/messages")+"/v1/messages/count_tokens", req, false)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	return p.readAnswer(ctx, resp)
}

func (p *Provider) post(ctx context.Context, url string, req *provider.Request, stream bool) (*http.Response, error) {
	hreq, err := http.NewRequestWithContext(ctx, http.MethodPost, url, bytes.NewReader(req.Body))
	if err != nil {
		return nil, api.FromError(fmt.Errorf("anthropic: building request for provider %s: %w", p.name, err))
	}
	for k, vs := range req.Header {
		if passthroughHeader(http.CanonicalHeaderKey(k)) {
			hreq.Header[k] = vs
		}
	}
	provider.MarkReplayable(hreq.Header)
	hreq.Header.Set("X-Api-Key", p.apiKey)
	if hreq.Header.Get("Anthropic-Version") == "" {
		hreq.Header.Set("Anthropic-Version", p.version)
	}
	hreq.Header.Set("Content-Type", "application/json")
	if stream {
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
	return resp, nil
}

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

// rawStream yields the data payload of each event of a Messages stream as
// sent (the event name is repeated in data.type). It ends with io.EOF
// after message_stop; an error event, or an end before message_stop, is
// an *api.Error, so a truncated answer never looks complete.
type rawStream struct {
	ctx       context.Context
	name, key string
	r         *sse.Reader
	body      io.Closer
	stopped   bool
	err       error
	closeOnce sync.Once
}

func newRawStream(ctx context.Context, name, key string, body io.ReadCloser) *rawStream {
	return &rawStream{ctx: ctx, name: name, key: key, r: sse.NewReader(body), body: body}
}

func (s *rawStream) Next() ([]byte, error) {
	if s.err != nil {
		return nil, s.err
	}
	if s.stopped {
		return nil, io.EOF
	}
	for {
		ev, err := s.r.Next()
		if err != nil {
			if err == io.EOF || s.ctx.Err() == nil {
				s.err = &api.Error{Status: http.StatusBadGateway, Type: api.TypeUpstream, Code: "upstream_stream_truncated",
					Message: fmt.Sprintf("provider %s ended the stream before message_stop", s.name)}
			} else {
				s.err = provider.TransportError(s.ctx, s.name, err)
			}
			return nil, s.err
		}
		if len(ev.Data) == 0 {
			continue
		}
		switch gjson.GetBytes(ev.Data, "type").Str {
		case "message_stop":
			s.stopped = true
		case "error":
			msg := gjson.GetBytes(ev.Data, "error.message").Str
			s.err = provider.ScrubSecret(&api.Error{Status: http.StatusBadGateway, Type: api.TypeUpstream, Code: "upstream_error",
				Message: fmt.Sprintf("provider %s: %s", s.name, msg)}, s.key)
			return nil, s.err
		}
		return ev.Data, nil
	}
}

func (s *rawStream) Close() error {
	var err error
	s.closeOnce.Do(func() { err = s.body.Close() })
	return err
}
