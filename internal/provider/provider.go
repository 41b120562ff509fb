// Package provider defines what an LLM provider adapter is and holds the
// pieces every adapter shares: the tuned HTTP transport and upstream error
// mapping.
package provider

import (
	"context"
	"io"
	"net/http"

	"github.com/edge-agent/edge-agent/internal/cost"
)

// Request is one chat completion call as the gateway hands it to a provider.
type Request struct {
	// Body is the client's OpenAI chat request JSON. Model has already been
	// rewritten to the upstream model; every other field is as the client
	// sent it. Adapters must not modify it in place.
	Body []byte
	// Model is the upstream model id.
	Model string
	// Stream asks for a streamed answer.
	Stream bool
	// Surface is the wire format of Body and of the answer wanted: chat
	// (the zero value), or a surface the provider speaks natively (see
	// Native), in which case Body goes upstream as is. (Beside Stream: in
	// its padding.)
	Surface Surface
	// MaxTokens is the client's max_tokens/max_completion_tokens (0: unset).
	MaxTokens int64
	// Header carries headers to propagate upstream (trace context). May be nil.
	Header http.Header
}

// Response is a provider's answer in OpenAI format.
type Response struct {
	// Body is the complete OpenAI chat.completion JSON (non-streaming calls).
	Body []byte
	// Stream yields OpenAI chat.completion.chunk payloads (streaming calls).
	Stream Stream
	// Provider names the deployment that produced the answer when a router
	// chose among several; "" means the provider called.
	Provider string
	// Attempts counts upstream calls made for this answer (0 means 1).
	Attempts int
	// Usage is the answer's usage by token kind when the adapter knows more
	// than the chat usage object can say (Anthropic cache writes), so the
	// gateway prices it without parsing the body again; nil means price
	// the body's usage.
	Usage *cost.Usage
}

// UsageReporter is implemented by streams that know the answer's usage by
// token kind. Usage is valid after Next returned io.EOF; ok is false when
// the upstream reported no usage, and the gateway then reads the stream's
// usage chunk (or estimates).
type UsageReporter interface {
	Usage() (u cost.Usage, ok bool)
}

// Stream is a streamed answer translated to OpenAI chunks.
//
// Streams always end with a usage chunk ({"choices":[],"usage":{...}}) when
// the upstream reports usage, whether or not the client asked for it; the
// gateway decides what the client sees.
type Stream interface {
	// Next returns the next chunk's JSON, valid until the following call.
	// It returns io.EOF after the last chunk ([DONE] or message_stop) and an
	// error (an *api.Error where one applies) when the stream fails or ends
	// early.
	Next() ([]byte, error)
	// Close releases the upstream connection. It is safe to call twice.
	Close() error
}

// Buffered is implemented by a Stream that can tell whether its next chunk
// is in memory already (NextBuffered: Next will not wait on the network).
// The gateway then writes the chunks a slow reader let pile up with one
// flush instead of one system call each; a stream that cannot tell has
// every chunk flushed as it comes.
type Buffered interface {
	NextBuffered() bool
}

// Provider is one configured upstream.
type Provider interface {
	// Name is the configured name, used in "name/model" and in metrics.
	Name() string
	// Type is the wire protocol: "openai" or "anthropic".
	Type() string
	// ChatCompletion sends the request upstream. Errors are *api.Error:
	// upstream 4xx passed through with the provider's message, 5xx and
	// connection failures 502, timeouts 504.
	ChatCompletion(ctx context.Context, req *Request) (*Response, error)
}

// Surface is a wire API offered to clients. The zero value is chat
// completions, the representation every provider accepts.
type Surface uint8

// Surfaces served by the gateway.
const (
	SurfaceChat        Surface = iota // POST /v1/chat/completions
	SurfaceMessages                   // POST /v1/messages (Anthropic)
	SurfaceResponses                  // POST /v1/responses (OpenAI)
	SurfaceEmbeddings                 // POST /v1/embeddings (OpenAI): never streamed
	SurfaceCompletions                // POST /v1/completions (OpenAI, legacy)
	surfaceCount
)

var surfaceNames = [surfaceCount]string{"chat", "messages", "responses", "embeddings", "completions"}

// String names the surface, as the endpoint label of metrics does: a
// bounded set.
func (s Surface) String() string {
	if s < surfaceCount {
		return surfaceNames[s]
	}
	return "unknown"
}

// ParseSurface is the Surface named name (as String gives it).
func ParseSurface(name string) (Surface, bool) {
	for i, n := range surfaceNames {
		if n == name {
			return Surface(i), true
		}
	}
	return 0, false
}

// Native is implemented by providers that speak a surface other than chat
// natively. A Request whose Surface a provider speaks is passed through:
// Body is the client's request in that surface's format (model rewritten),
// and the Response is in that format too (Body the answer's bytes, Stream
// the raw event payloads). "Speaks" is about the contract, not the wire: an
// adapter whose upstream has its own embeddings API (Gemini, Bedrock) may
// speak SurfaceEmbeddings by translating inside the adapter, taking and
// giving OpenAI's embeddings format.
type Native interface {
	Speaks(s Surface) bool
}

// Speaks reports whether p serves s natively (chat: always).
func Speaks(p Provider, s Surface) bool {
	if s == SurfaceChat {
		return true
	}
	n, ok := p.(Native)
	return ok && n.Speaks(s)
}

// StreamBody returns the body of resp, a stream's answer, and lets go of
// the rest of resp, which the stream does not read again: net/http's body
// keeps its *http.Response to its end (for trailers), and with it the
// header map and the request, whose body bytes are the whole prompt. At
// thousands of open streams that is a KiB or two each.
func StreamBody(resp *http.Response) io.ReadCloser {
	resp.Header, resp.Request = nil, nil
	return resp.Body
}
