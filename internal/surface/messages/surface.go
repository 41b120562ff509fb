package messages

import (
	"net/http"
	"strings"

	"github.com/tidwall/gjson"

	"github.com/edge-agent/edge-agent/internal/api"
	"github.com/edge-agent/edge-agent/internal/cost"
	"github.com/edge-agent/edge-agent/internal/provider"
	"github.com/edge-agent/edge-agent/internal/surface"
)

// Surface is the Anthropic Messages surface (POST /v1/messages). A model
// whose providers speak Messages (Anthropic) is passed through: the
// client's bytes go upstream with only the model rewritten, anthropic-*
// headers with them, and the answer's bytes come back as sent. Any other
// model is translated through chat. The gateway's metadata goes in headers:
// the answer's bytes are not decorated.
type Surface struct{}

// ID is provider.SurfaceMessages.
func (Surface) ID() provider.Surface { return provider.SurfaceMessages }

// Parse validates body as a Messages request.
func (Surface) Parse(body []byte, lim api.Limits) (surface.Request, error) {
	r, err := Parse(body, lim)
	if err != nil {
		return nil, err
	}
	return r, nil
}

// WriteError writes Anthropic's error envelope.
func (Surface) WriteError(w http.ResponseWriter, e *api.Error) { WriteError(w, e) }

// Info is the request's model, stream flag and max_tokens.
func (r *Request) Info() surface.Info {
	return surface.Info{Model: r.Model, Stream: r.Stream, MaxTokens: r.MaxTokens}
}

// Raw is the request body.
func (r *Request) Raw() []byte { return r.Body }

// SetRaw replaces the body (redaction).
func (r *Request) SetRaw(b []byte) { r.Body = b }

// PromptTokens is Parse's prompt estimate.
func (r *Request) PromptTokens() int { return r.InputTokens }

// Fallbacks: the Messages API has no fallbacks member.
func (r *Request) Fallbacks() ([]string, error) { return nil, nil }

// KeyBody is the body without cache_control markers (KeyBody).
func (r *Request) KeyBody() ([]byte, []string) { return KeyBody(nil, r.Body), nil }

// Upstream is the client's body and anthropic-* headers when passed
// through, the chat translation otherwise.
func (r *Request) Upstream(native bool, client http.Header) ([]byte, http.Header, error) {
	if native {
		return r.Body, anthropicHeaders(client), nil
	}
	b, err := ToChat(r.Body)
	return b, nil, err
}

// anthropicHeaders copies the client's anthropic-* headers (version, beta
// flags) for a passthrough call; nil when there are none.
func anthropicHeaders(in http.Header) http.Header {
	var out http.Header
	for k, vs := range in {
		if strings.HasPrefix(k, "Anthropic-") {
			if out == nil {
				out = make(http.Header, 4)
			}
			out[k] = vs
		}
	}
	return out
}

// UpstreamHeaders is the anthropic-* headers of a passthrough call, for
// count_tokens.
func UpstreamHeaders(client http.Header) http.Header { return anthropicHeaders(client) }

// Answer reads a Messages answer (passed through) or translates a chat
// completion into one.
func (r *Request) Answer(body []byte, native bool) (surface.Answer, error) {
	if !native {
		var err error
		if body, err = FromChat(body, r.Model); err != nil {
			return surface.Answer{}, err
		}
	}
	a := surface.Answer{Body: body, Finish: finishReasons(body)}
	if u := gjson.Get(api.View(body), "usage"); u.IsObject() {
		a.Usage = Usage(body)
	} else {
		a.Estimated = true
		a.Usage = cost.Usage{PromptTokens: r.InputTokens, CompletionTokens: cost.EstimateTokens(body)}
	}
	return a, nil
}

// finishReasons maps a Messages answer's stop_reason to the chat finish
// reason the cache decides on.
func finishReasons(answer []byte) []string {
	return stopFinish(gjson.Get(api.View(answer), "stop_reason").Str)
}

// stopFinish maps a stop_reason to the chat finish reasons.
func stopFinish(stop string) []string {
	switch stop {
	case "end_turn", "stop_sequence":
		return []string{"stop"}
	case "tool_use":
		return []string{"tool_calls"}
	case "max_tokens":
		return []string{"length"}
	case "refusal":
		return []string{"content_filter"}
	}
	return nil
}

// AppendJSON appends the answer as it is.
func (r *Request) AppendJSON(dst, answer []byte, _ surface.Meta) []byte {
	return append(dst, answer...)
}

// AppendReplay appends a stored answer as the event sequence that streams it.
func (r *Request) AppendReplay(dst, answer []byte) ([]byte, error) { return Replay(dst, answer) }

// NewStream copies the provider's events as they are (native) or
// translates chat chunks into events, accumulating the answer either way.
func (r *Request) NewStream(native bool, maxCapture int) surface.Stream {
	s := &stream{req: r, native: native}
	if native {
		s.acc.SetLimit(maxCapture)
	} else {
		s.chat.SetLimit(maxCapture)
		s.tr = NewStreamTranslator(r.Model)
	}
	return s
}

type stream struct {
	req    *Request
	native bool
	acc    Accumulator     // native: the events
	chat   api.Accumulator // translated: the chat chunks
	tr     *StreamTranslator
}

func (s *stream) Add(dst, payload []byte) ([]byte, error) {
	if !s.native {
		if err := s.chat.Add(payload); err != nil {
			return dst, badStream("a chunk is not valid JSON")
		}
		return s.tr.Add(dst, payload)
	}
	if err := s.acc.Add(payload); err != nil {
		return dst, err
	}
	name := gjson.Get(api.View(payload), "type").Str
	dst = append(dst, "event: "...)
	dst = append(dst, name...)
	dst = append(dst, "\ndata: "...)
	dst = append(dst, payload...)
	return append(dst, '\n', '\n'), nil
}

var errTruncated = &api.Error{Status: http.StatusBadGateway, Type: api.TypeUpstream, Code: "upstream_stream_truncated",
	Message: "provider ended the stream before message_stop"}

func (s *stream) End(dst []byte, keep bool) ([]byte, *surface.Answer, error) {
	var body []byte
	if s.native {
		if !s.acc.Complete() {
			return dst, nil, errTruncated
		}
		if s.acc.Overflowed() {
			return dst, nil, nil
		}
		if !keep {
			a := &surface.Answer{Finish: stopFinish(s.acc.StopReason())}
			a.Usage, a.Estimated = s.Partial()
			return dst, a, nil
		}
		b, err := s.acc.Answer()
		if err != nil {
			return dst, nil, nil // sent whole, not rebuilt: priced by Partial, not stored
		}
		body = b
	} else {
		var err error
		if dst, err = s.tr.Finish(dst); err != nil {
			return dst, nil, err
		}
		if s.chat.Overflowed() {
			return dst, nil, nil
		}
		if !keep {
			a := &surface.Answer{Finish: s.chat.FinishReasons()}
			a.Usage, a.Estimated = s.Partial()
			return dst, a, nil
		}
		cb, err := s.chat.CompletionJSON()
		if err != nil {
			return dst, nil, nil
		}
		if body, err = FromChat(cb, s.req.Model); err != nil {
			return dst, nil, nil
		}
	}
	a, _ := s.req.Answer(body, true)
	return dst, &a, nil
}

func (s *stream) AppendError(dst []byte, e *api.Error) []byte { return AppendErrorEvent(dst, e) }

func (s *stream) Partial() (cost.Usage, bool) {
	if s.native {
		// message_start reports the input and a first output count, later
		// message_delta events the running output count: what was
		// delivered since then is counted from its text.
		u, ok := s.acc.Usage()
		if !ok {
			u.PromptTokens = s.req.InputTokens
		}
		if est := (s.acc.TextBytes() + 3) / 4; est > u.CompletionTokens {
			u.CompletionTokens = est
			return u, true
		}
		return u, !ok
	}
	if au := s.chat.Usage(); au != nil {
		u := cost.Usage{PromptTokens: au.PromptTokens, CompletionTokens: au.CompletionTokens}
		if au.PromptTokensDetails != nil {
			u.CachedTokens = au.PromptTokensDetails.CachedTokens
		}
		return u, false
	}
	return cost.Usage{PromptTokens: s.req.InputTokens, CompletionTokens: (s.chat.TextBytes() + 3) / 4}, true
}

func (s *stream) Overflowed() bool {
	if s.native {
		return s.acc.Overflowed()
	}
	return s.chat.Overflowed()
}
