// Package chat is the OpenAI Chat Completions surface (POST
// /v1/chat/completions): the representation every provider speaks, so its
// requests are always passed to the provider as they are.
package chat

import (
	"net/http"
	"strconv"
	"strings"

	"github.com/tidwall/gjson"

	"github.com/edge-agent/edge-agent/internal/api"
	"github.com/edge-agent/edge-agent/internal/cost"
	"github.com/edge-agent/edge-agent/internal/provider"
	"github.com/edge-agent/edge-agent/internal/surface"
)

// Surface is the chat completions surface.
type Surface struct{}

// ID is provider.SurfaceChat.
func (Surface) ID() provider.Surface { return provider.SurfaceChat }

// Parse validates body as a chat completion request (api.ParseChatRequest).
func (Surface) Parse(body []byte, lim api.Limits) (surface.Request, error) {
	req, err := api.ParseChatRequest(body, lim)
	if err != nil {
		return nil, err
	}
	// A conversion, not a copy: the parsed view is the request.
	return (*Request)(req), nil
}

// WriteError writes OpenAI's error envelope.
func (Surface) WriteError(w http.ResponseWriter, e *api.Error) { api.WriteError(w, e) }

// Request is a parsed chat completion request.
type Request api.ChatRequest

// Info is the request's model, stream flag and token budget.
func (r *Request) Info() surface.Info {
	return surface.Info{Model: r.Model, Stream: r.Stream, MaxTokens: r.MaxTokens}
}

// Raw is the request body.
func (r *Request) Raw() []byte { return r.Body }

// SetRaw replaces the body (redaction).
func (r *Request) SetRaw(b []byte) { r.Body = b }

// PromptTokens is the body's bytes / 4.
func (r *Request) PromptTokens() int { return cost.EstimateTokens(r.Body) }

// keyIgnored are the request fields that cannot change the answer (the
// gateway's own), left out of the cache key on top of cache's defaults.
var keyIgnored = []string{"fallbacks"}

// KeyBody is the whole body but "fallbacks".
func (r *Request) KeyBody() ([]byte, []string) { return r.Body, keyIgnored }

// Upstream is the client's body: every provider speaks chat.
func (r *Request) Upstream(bool, http.Header) ([]byte, http.Header, error) { return r.Body, nil, nil }

// Fallbacks reads the body's "fallbacks" array of model names (the router
// removes it before the call).
func (r *Request) Fallbacks() ([]string, error) {
	if !r.HasFallbacks { // spares a scan of the body on nearly every request
		return nil, nil
	}
	f := gjson.GetBytes(r.Body, "fallbacks")
	if !f.Exists() || f.Type == gjson.Null {
		return nil, nil
	}
	if !f.IsArray() {
		return nil, api.InvalidRequest("fallbacks", "fallbacks must be an array of model names")
	}
	var out []string
	var bad *api.Error
	i := 0
	f.ForEach(func(_, m gjson.Result) bool {
		if m.Type != gjson.String || m.Str == "" {
			bad = api.InvalidRequest("fallbacks", "fallbacks must be an array of model names")
			return false
		}
		if bad = api.CheckModelName("fallbacks["+strconv.Itoa(i)+"]", m.Str); bad != nil {
			return false
		}
		out = append(out, m.Str)
		i++
		return true
	})
	if bad != nil {
		return nil, bad
	}
	if len(out) > 8 {
		return nil, api.InvalidRequest("fallbacks", "at most 8 fallback models")
	}
	return out, nil
}

// Answer reads a chat.completion: model, usage and finish reasons, with any
// upstream "metadata" member removed (the gateway's is the only one).
func (r *Request) Answer(body []byte, _ bool) (surface.Answer, error) {
	body = withoutMetadata(body)
	a := readAnswer(body)
	a.Body = body
	if !a.hasUsage {
		// No usage: estimated, never free.
		a.Estimated = true
		a.Usage = cost.Usage{PromptTokens: cost.EstimateTokens(r.Body), CompletionTokens: cost.EstimateTokens(body)}
	}
	return a.Answer, nil
}

// AppendReplay appends a stored chat.completion as the chunk stream that
// carries it, with the usage chunk when the client asked for it.
func (r *Request) AppendReplay(dst, answer []byte) ([]byte, error) {
	chunks, err := api.StreamChunks(answer, r.IncludeUsage)
	if err != nil {
		return dst, err
	}
	for _, c := range chunks {
		dst = appendData(dst, c)
	}
	return appendData(dst, doneData), nil
}

// answer is what the gateway reads from a chat.completion.
type answer struct {
	surface.Answer
	hasUsage bool
}

// readAnswer reads model, usage and finish reasons in one pass over the
// answer's top-level members, instead of a scan from the start for each.
// Only model outlives the call, and it is copied.
func readAnswer(body []byte) answer {
	var a answer
	gjson.Parse(api.View(body)).ForEach(func(k, v gjson.Result) bool {
		switch k.Str {
		case "model":
			a.Model = strings.Clone(v.String())
		case "usage":
			if v.IsObject() {
				a.hasUsage = true
				a.Usage = cost.Usage{
					PromptTokens:     int(v.Get("prompt_tokens").Int()),
					CompletionTokens: int(v.Get("completion_tokens").Int()),
					CachedTokens:     int(v.Get("prompt_tokens_details.cached_tokens").Int()),
					ReasoningTokens:  int(v.Get("completion_tokens_details.reasoning_tokens").Int()),
				}
			}
		case "choices":
			v.ForEach(func(_, c gjson.Result) bool {
				a.Finish = append(a.Finish, c.Get("finish_reason").String())
				return true
			})
		}
		return true
	})
	return a
}
