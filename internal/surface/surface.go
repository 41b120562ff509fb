// Package surface defines a surface: one wire API the gateway offers to
// clients (OpenAI Chat Completions, Anthropic Messages, OpenAI Responses,
// ...). Every request, whatever its surface, goes down the one pipeline in
// internal/gateway: authenticate, parse, resolve the model, admit (limits,
// budget, redaction), key, look up L1/L2, coalesce, route (retries,
// breakers, fallbacks), call the provider, capture the stream, store, price,
// record. A surface supplies only what differs between APIs: parsing and
// validation, the bytes that key the cache, the error envelope, the upstream
// body (the client's own when the provider speaks the surface, a chat
// completion request otherwise), reading an answer, copying a stream while
// accumulating it, and replaying a stored answer as that API's events.
//
// Each surface is a package under internal/surface (chat, messages, ...).
package surface

import (
	"context"
	"net/http"
	"time"

	"github.com/edge-agent/edge-agent/internal/api"
	"github.com/edge-agent/edge-agent/internal/cost"
	"github.com/edge-agent/edge-agent/internal/provider"
)

// Surface is one wire API. Implementations are stateless values shared by
// every request.
type Surface interface {
	// ID names the surface: it is part of the cache key (an answer of one
	// API never answers another), the metrics' endpoint label, and what a
	// provider must speak to be passed the client's bytes.
	ID() provider.Surface
	// Parse validates a request body. Failures are *api.Error (400, Param
	// naming the field). body's buffer is the gateway's and is reused once
	// the request is answered: nothing that outlives the request may point
	// into it except through Request.Raw.
	Parse(body []byte, lim api.Limits) (Request, error)
	// WriteError writes e in the surface's error envelope, with e.Status.
	WriteError(w http.ResponseWriter, e *api.Error)
}

// Info is what the pipeline reads of a parsed request.
type Info struct {
	Model     string
	Stream    bool
	MaxTokens int64 // the answer's token budget the client asked for (0: unset)
}

// Request is one parsed request of a surface.
type Request interface {
	Info() Info
	// Raw is the request body as the client sent it (or as redacted, see
	// SetRaw).
	Raw() []byte
	// SetRaw replaces the body after admission rewrote it (redaction).
	SetRaw(b []byte)
	// PromptTokens estimates the prompt's tokens before the call, for
	// rate limits and the hold of a hard budget (the answer's budget is
	// Info.MaxTokens).
	PromptTokens() int
	// Fallbacks are the fallback models the body names (chat's
	// "fallbacks"); the X-Fallback-Models header is the pipeline's.
	Fallbacks() ([]string, error)
	// KeyBody is what decides the answer, for the cache key, and the
	// top-level members of it to leave out; the pipeline adds the surface,
	// the caller's scope, the target and the model.
	KeyBody() (body []byte, ignore []string)
	// Upstream is the provider request's body and extra headers: the
	// client's request when native (the provider speaks the surface), a
	// chat completion request otherwise. client is the request's headers.
	Upstream(native bool, client http.Header) (body []byte, h http.Header, err error)
	// Answer reads a provider's non-streamed answer (the surface's format
	// when native, a chat completion otherwise) and returns the client's
	// answer in the surface's format: what is stored and sent.
	Answer(body []byte, native bool) (Answer, error)
	// NewStream returns the copier of one streamed answer; maxCapture
	// bounds the text it holds to rebuild the answer.
	NewStream(native bool, maxCapture int) Stream
	// AppendJSON appends the answer sent to a client that did not stream:
	// stored or fresh, with the gateway's metadata where the surface has a
	// place for it (chat's "metadata"); others send answer as is.
	AppendJSON(dst, answer []byte, m Meta) []byte
	// AppendReplay appends a stored answer as the surface's stream: the
	// SSE bytes a client that streamed would have received.
	AppendReplay(dst, answer []byte) ([]byte, error)
}

// Answer is a complete answer in the surface's format.
type Answer struct {
	Body  []byte
	Model string // as the answer names it; "": the request's
	Usage cost.Usage
	// Estimated: the answer carried no usage and Usage is an estimate
	// (priced from it and marked estimated; never free).
	Estimated bool
	// Finish holds each choice's finish reason in chat's terms (stop,
	// length, tool_calls, content_filter, ...); they decide caching.
	Finish []string
}

// Stream copies one streamed answer to the client while accumulating it.
type Stream interface {
	// Add takes one provider event payload and appends what the client is
	// sent for it (SSE framed; maybe nothing) to dst.
	Add(dst, payload []byte) ([]byte, error)
	// End is called when the provider's stream ended cleanly. It appends
	// the closing bytes ([DONE], the translated stop events) and returns
	// the complete answer; a nil Answer with a nil error means the stream
	// was sent whole but cannot be stored (too large to hold: Overflowed).
	// An error means the stream was not complete. keep false says the
	// answer will be neither stored nor recorded: Body may then be left
	// nil (usage and finish reasons are still wanted), sparing its rebuild.
	End(dst []byte, keep bool) ([]byte, *Answer, error)
	// AppendError appends the surface's in-stream error event for e.
	AppendError(dst []byte, e *api.Error) []byte
	// Partial is the usage up to now, for a stream that ended early (client
	// gone, upstream cut, error) or could not be rebuilt: what the provider
	// reported, or an estimate from the text delivered (estimated true).
	Partial() (u cost.Usage, estimated bool)
	// Overflowed reports that the answer outgrew maxCapture: it is still
	// sent whole, but not stored.
	Overflowed() bool
}

// Meta is the gateway's metadata about one answer, for surfaces that carry
// it in the body (chat); every surface also gets it in X-Edge-* headers.
type Meta struct {
	Provider        string
	Model           string
	RequestID       string
	Tier            string // "" for a fresh answer; L1, L2, COALESCED for a stored one
	Elapsed         time.Duration
	ProviderLatency time.Duration
	CostUSD         float64
	SavedUSD        float64
	CostKnown       bool
	CostEstimated   bool
	Attempts        int
}

// Scope identifies the caller for surfaces that keep state of their own
// (the Responses API's stored responses): a principal's answers are its
// own.
type Scope struct {
	Principal string // the client key's stable name; "" on an open gateway
	Namespace string // its cache scope (a team's, or its own)
}

// Preparer is implemented by requests that need I/O before the upstream
// call (the Responses API resolving previous_response_id from its store).
// The pipeline calls Prepare after admission and before the cache key, with
// native as Upstream will get it.
type Preparer interface {
	Prepare(ctx context.Context, sc Scope, native bool) error
}

// Recorder is implemented by requests that keep what they answered (the
// Responses API's store). The pipeline calls Record once for every answer
// the client received whole, fresh or from the cache, with the answer in
// the surface's format (for a stored one, as AppendJSON or AppendReplay
// rewrote it: a request may give a cached answer an id of its own there).
// fresh is false for an answer from the cache.
type Recorder interface {
	Record(ctx context.Context, sc Scope, answer []byte, fresh bool) error
}
