package completions

import (
	"bytes"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/tidwall/gjson"
	"github.com/tidwall/sjson"

	"github.com/edge-agent/edge-agent/internal/api"
	"github.com/edge-agent/edge-agent/internal/cost"
	"github.com/edge-agent/edge-agent/internal/provider"
	"github.com/edge-agent/edge-agent/internal/surface"
)

// DefaultMaxTokens is the legacy API's max_tokens when absent.
const DefaultMaxTokens = 16

// Surface is the legacy Completions API.
type Surface struct{}

var _ surface.Surface = Surface{}

// ID is provider.SurfaceCompletions.
func (Surface) ID() provider.Surface { return provider.SurfaceCompletions }

// WriteError writes e in OpenAI's envelope.
func (Surface) WriteError(w http.ResponseWriter, e *api.Error) { api.WriteError(w, e) }

// Request is a parsed completions request: the client's bytes and the
// fields the gateway acts on.
type Request struct {
	body         []byte
	model        string
	stream       bool
	includeUsage bool  // stream_options.include_usage
	maxTokens    int64 // as asked; 0 when absent
	n            int64 // choices per prompt (1 when absent)
	prompts      int   // number of prompts
	promptBytes  int   // bytes of the prompt, for the estimate
	logprobs     bool  // logprobs asked: a streamed answer is not rebuilt
	hasFallbacks bool
}

var _ surface.Request = (*Request)(nil)

// Parse validates body as a legacy completions request. Failures are 400
// *api.Error naming the field.
func (Surface) Parse(body []byte, lim api.Limits) (surface.Request, error) {
	r, err := Parse(body, lim)
	if err != nil {
		return nil, err
	}
	return r, nil
}

// Parse is Surface.Parse with its concrete type.
func Parse(body []byte, lim api.Limits) (*Request, error) {
	if len(body) == 0 {
		return nil, api.InvalidRequest("", "request body is empty; expected a JSON object")
	}
	if !utf8.Valid(body) {
		return nil, api.InvalidRequest("", "request body is not valid UTF-8")
	}
	if err := api.CheckDuplicateKeys(body); err != nil {
		return nil, err
	}
	root := gjson.Parse(api.View(body))
	if !root.IsObject() {
		return nil, api.InvalidRequest("", "request body must be a JSON object")
	}
	r := &Request{body: body, n: 1}
	var perr *api.Error
	var model string
	var seenModel, seenPrompt bool
	root.ForEach(func(k, v gjson.Result) bool {
		switch k.Str {
		case "model":
			seenModel = true
			if v.Type != gjson.String || v.Str == "" {
				perr = api.InvalidRequest("model", "model must be a non-empty string")
			} else if perr = api.CheckModelName("model", v.Str); perr == nil {
				model = v.Str
			}
		case "prompt":
			seenPrompt = true
			perr = r.readPrompt(v, lim)
		case "stream":
			if v.Type == gjson.Null {
				break
			}
			if !v.IsBool() {
				perr = api.InvalidRequest("stream", "stream must be a boolean")
			}
			r.stream = v.Bool()
		case "stream_options":
			if v.Type == gjson.Null {
				break
			}
			if !v.IsObject() {
				perr = api.InvalidRequest("stream_options", "stream_options must be an object")
			}
			r.includeUsage = v.Get("include_usage").Bool()
		case "max_tokens":
			if v.Type == gjson.Null {
				break
			}
			if perr = checkInt(v, "max_tokens", 0, lim.MaxMaxTokens); perr == nil {
				r.maxTokens = v.Int()
			}
		case "n":
			if v.Type == gjson.Null {
				break
			}
			if perr = checkInt(v, "n", 1, lim.MaxN); perr == nil {
				r.n = v.Int()
			}
		case "best_of":
			if v.Type != gjson.Null {
				perr = checkInt(v, "best_of", 1, 20)
			}
		case "logprobs":
			if v.Type == gjson.Null {
				break
			}
			if perr = checkInt(v, "logprobs", 0, 5); perr == nil {
				r.logprobs = true
			}
		case "echo":
			if v.Type != gjson.Null && !v.IsBool() {
				perr = api.InvalidRequest("echo", "echo must be a boolean")
			}
		case "suffix", "user":
			if v.Type != gjson.Null && v.Type != gjson.String {
				param := paramName(k.Str) // a constant: k.Str points into body
				perr = api.InvalidRequest(param, "%s must be a string", param)
			}
		case "temperature":
			perr = checkNumber(v, "temperature", 0, 2)
		case "top_p":
			perr = checkNumber(v, "top_p", 0, 1)
		case "presence_penalty":
			perr = checkNumber(v, "presence_penalty", -2, 2)
		case "frequency_penalty":
			perr = checkNumber(v, "frequency_penalty", -2, 2)
		case "fallbacks":
			r.hasFallbacks = true
		}
		return perr == nil
	})
	if perr != nil {
		return nil, perr
	}
	if !seenModel {
		return nil, api.InvalidRequest("model", "you must provide a model parameter")
	}
	if !seenPrompt {
		return nil, api.InvalidRequest("prompt", "you must provide a prompt parameter")
	}
	r.model = strings.Clone(model)
	return r, nil
}

func paramName(s string) string {
	if s == "suffix" {
		return "suffix"
	}
	return "user"
}

// readPrompt checks prompt: a string, an array of strings, an array of
// token ids or an array of token arrays.
func (r *Request) readPrompt(v gjson.Result, lim api.Limits) *api.Error {
	if v.Type == gjson.String {
		r.prompts, r.promptBytes = 1, len(v.Str)
		return nil
	}
	if !v.IsArray() {
		return api.InvalidRequest("prompt", "prompt must be a string, an array of strings, an array of token ids or an array of token arrays")
	}
	first := v.Get("0")
	if !first.Exists() {
		return api.InvalidRequest("prompt", "prompt must not be an empty array")
	}
	if first.Type == gjson.Number {
		r.prompts, r.promptBytes = 1, len(v.Raw)
		return tokenIDs(v, "prompt")
	}
	tokens := first.IsArray()
	var perr *api.Error
	i := 0
	v.ForEach(func(_, p gjson.Result) bool {
		param := "prompt[" + strconv.Itoa(i) + "]"
		i++
		switch {
		case tokens && p.IsArray():
			perr = tokenIDs(p, param)
		case !tokens && p.Type == gjson.String:
		default:
			perr = api.InvalidRequest(param, "prompt must be all strings or all token arrays; %s is not like prompt[0]", param)
		}
		r.promptBytes += len(p.Raw)
		return perr == nil
	})
	if perr == nil && lim.MaxMessages > 0 && i > lim.MaxMessages {
		perr = api.InvalidRequest("prompt", "too many prompts: %d, the limit is %d", i, lim.MaxMessages)
	}
	r.prompts = i
	return perr
}

func tokenIDs(v gjson.Result, param string) *api.Error {
	var perr *api.Error
	v.ForEach(func(_, t gjson.Result) bool {
		if t.Type != gjson.Number || t.Float() != float64(t.Int()) || t.Int() < 0 {
			perr = api.InvalidRequest(param, "%s must hold non-negative integer token ids", param)
		}
		return perr == nil
	})
	return perr
}

func checkInt(v gjson.Result, param string, lo, hi int64) *api.Error {
	if v.Type != gjson.Number || v.Float() != float64(v.Int()) {
		return api.InvalidRequest(param, "%s must be an integer", param)
	}
	if n := v.Int(); n < lo || (hi > 0 && n > hi) {
		if hi > 0 {
			return api.InvalidRequest(param, "%s must be between %d and %d, got %d", param, lo, hi, n)
		}
		return api.InvalidRequest(param, "%s must be at least %d, got %d", param, lo, n)
	}
	return nil
}

func checkNumber(v gjson.Result, param string, lo, hi float64) *api.Error {
	if v.Type == gjson.Null {
		return nil
	}
	if v.Type != gjson.Number {
		return api.InvalidRequest(param, "%s must be a number", param)
	}
	if f := v.Float(); f < lo || f > hi {
		return api.InvalidRequest(param, "%s must be between %g and %g, got %s", param, lo, hi, v.Raw)
	}
	return nil
}

// Info is what the pipeline reads of the request. MaxTokens is the
// answer's whole budget: max_tokens (16 unset, as OpenAI's default) for
// every choice of every prompt.
func (r *Request) Info() surface.Info {
	per := r.maxTokens
	if per == 0 {
		per = DefaultMaxTokens
	}
	return surface.Info{Model: r.model, Stream: r.stream, MaxTokens: min(per*r.n*int64(max(r.prompts, 1)), 1<<20)}
}

// Raw is the request body.
func (r *Request) Raw() []byte { return r.body }

// SetRaw replaces the body after admission rewrote it.
func (r *Request) SetRaw(b []byte) { r.body = b }

// PromptTokens is the prompt's bytes / 4 (a token id counts as one).
func (r *Request) PromptTokens() int { return cost.EstimateTokensOfLen(r.promptBytes) }

// Fallbacks are the body's "fallbacks" model names.
func (r *Request) Fallbacks() ([]string, error) {
	if !r.hasFallbacks {
		return nil, nil
	}
	f := gjson.GetBytes(r.body, "fallbacks")
	if f.Type == gjson.Null {
		return nil, nil
	}
	if !f.IsArray() {
		return nil, api.InvalidRequest("fallbacks", "fallbacks must be an array of model names")
	}
	var out []string
	var bad *api.Error
	f.ForEach(func(_, m gjson.Result) bool {
		if m.Type != gjson.String {
			bad = api.InvalidRequest("fallbacks", "fallbacks must be an array of model names")
		} else {
			bad = api.CheckModelName("fallbacks["+strconv.Itoa(len(out))+"]", m.Str)
		}
		out = append(out, m.Str)
		return bad == nil
	})
	if bad != nil {
		return nil, bad
	}
	if len(out) > 8 {
		return nil, api.InvalidRequest("fallbacks", "at most 8 fallback models")
	}
	return out, nil
}

// KeyBody is the body; fallbacks (the gateway's) are left out, as are
// stream, stream_options and user by the cache's defaults.
func (r *Request) KeyBody() ([]byte, []string) { return r.body, keyIgnored }

var keyIgnored = []string{"fallbacks"}

// Upstream is the client's request for a provider that serves the API,
// with stream_options.include_usage set on a stream so the answer can be
// priced (the usage chunk is kept from a client that did not ask). A
// provider without the API cannot be sent it: 400.
func (r *Request) Upstream(native bool, _ http.Header) ([]byte, http.Header, error) {
	if !native {
		return nil, nil, &api.Error{Status: http.StatusBadRequest, Type: api.TypeInvalidRequest, Param: "model", Code: "model_not_supported",
			Message: fmt.Sprintf("model %q is served by a provider without the legacy completions API (POST /v1/completions); use POST /v1/chat/completions for it", r.model)}
	}
	if !r.stream || r.includeUsage {
		return r.body, nil, nil
	}
	b, err := sjson.SetBytes(bytes.Clone(r.body), "stream_options.include_usage", true)
	if err != nil {
		return nil, nil, api.InvalidRequest("stream_options", "cannot set stream_options: %v", err)
	}
	return b, nil, nil
}
