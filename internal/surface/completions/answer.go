package completions

import (
	"fmt"
	"net/http"
	"strconv"
	"strings"

	"github.com/tidwall/gjson"

	"github.com/edge-agent/edge-agent/internal/api"
	"github.com/edge-agent/edge-agent/internal/cost"
	"github.com/edge-agent/edge-agent/internal/surface"
)

func invalidAnswer(format string, args ...any) *api.Error {
	return &api.Error{Status: http.StatusBadGateway, Type: api.TypeUpstream, Code: "upstream_invalid_response",
		Message: fmt.Sprintf(format, args...)}
}

// Answer reads a provider's text_completion: its model, usage and finish
// reasons. The body is the client's answer as the provider wrote it.
func (r *Request) Answer(body []byte, native bool) (surface.Answer, error) {
	if !native {
		return surface.Answer{}, invalidAnswer("the completions API has no translation from chat")
	}
	if !gjson.ValidBytes(body) {
		return surface.Answer{}, invalidAnswer("provider returned a completion that is not JSON")
	}
	a := surface.Answer{Body: body}
	var choices, usage gjson.Result
	gjson.Parse(api.View(body)).ForEach(func(k, v gjson.Result) bool {
		switch k.Str {
		case "model":
			a.Model = strings.Clone(v.String())
		case "choices":
			choices = v
		case "usage":
			usage = v
		}
		return true
	})
	if !choices.IsArray() {
		return surface.Answer{}, invalidAnswer("provider returned a completion without choices")
	}
	choices.ForEach(func(_, c gjson.Result) bool {
		a.Finish = append(a.Finish, c.Get("finish_reason").String())
		return true
	})
	if usage.IsObject() {
		a.Usage = readUsage(usage)
	} else {
		a.Estimated = true
		text := 0
		choices.ForEach(func(_, c gjson.Result) bool { text += len(c.Get("text").Str); return true })
		a.Usage = cost.Usage{PromptTokens: cost.EstimateTokensOfLen(r.promptBytes), CompletionTokens: cost.EstimateTokensOfLen(text)}
	}
	return a, nil
}

func readUsage(u gjson.Result) cost.Usage {
	return cost.Usage{
		PromptTokens:     int(u.Get("prompt_tokens").Int()),
		CompletionTokens: int(u.Get("completion_tokens").Int()),
		CachedTokens:     int(u.Get("prompt_tokens_details.cached_tokens").Int()),
	}
}

// AppendJSON appends the answer as it is: the legacy API's object has no
// place for the gateway's metadata, which the X-Edge-* headers carry.
func (r *Request) AppendJSON(dst, answer []byte, _ surface.Meta) []byte {
	return append(dst, answer...)
}

// AppendReplay appends a stored answer as the stream that would have
// carried it: a chunk of each choice's text with its finish_reason (and
// logprobs, as stored), the usage chunk when the client asked for it, and
// [DONE].
func (r *Request) AppendReplay(dst, answer []byte) ([]byte, error) {
	if !gjson.ValidBytes(answer) {
		return dst, invalidAnswer("stored completion is not JSON")
	}
	root := gjson.Parse(api.View(answer))
	head := make([]byte, 0, 128)
	head = append(head, `data: {"id":`...)
	head = api.AppendString(head, root.Get("id").String())
	head = append(head, `,"object":"text_completion","created":`...)
	head = strconv.AppendInt(head, root.Get("created").Int(), 10)
	head = append(head, `,"model":`...)
	head = api.AppendString(head, root.Get("model").String())
	if fp := root.Get("system_fingerprint"); fp.Type == gjson.String {
		head = append(head, `,"system_fingerprint":`...)
		head = api.AppendString(head, fp.Str)
	}
	head = append(head, `,"choices":[`...)
	var err error
	root.Get("choices").ForEach(func(_, c gjson.Result) bool {
		if !c.IsObject() {
			err = invalidAnswer("stored completion has a choice that is not an object")
			return false
		}
		dst = append(dst, head...)
		dst = append(dst, `{"text":`...)
		dst = api.AppendString(dst, c.Get("text").String())
		dst = append(dst, `,"index":`...)
		dst = strconv.AppendInt(dst, c.Get("index").Int(), 10)
		dst = append(dst, `,"logprobs":`...)
		dst = appendRawOrNull(dst, c.Get("logprobs"))
		dst = append(dst, `,"finish_reason":`...)
		dst = appendRawOrNull(dst, c.Get("finish_reason"))
		dst = append(dst, "}]}\n\n"...)
		return true
	})
	if err != nil {
		return dst, err
	}
	if u := root.Get("usage"); r.includeUsage && u.IsObject() {
		dst = append(dst, head...)
		dst = append(dst, `],"usage":`...)
		dst = append(dst, u.Raw...)
		dst = append(dst, "}\n\n"...)
	}
	return append(dst, "data: [DONE]\n\n"...), nil
}

func appendRawOrNull(dst []byte, v gjson.Result) []byte {
	if !v.Exists() {
		return append(dst, "null"...)
	}
	return append(dst, v.Raw...)
}

// NewStream returns the copier of one streamed answer.
func (r *Request) NewStream(native bool, maxCapture int) surface.Stream {
	return &stream{req: r, limit: maxCapture}
}

// stream copies text_completion chunks to the client as they come while
// rebuilding the answer: each choice's text and finish reason, the usage.
type stream struct {
	req   *Request
	limit int // bound on held text bytes; 0: none

	id, model, fingerprint string
	created                int64
	choices                []choice
	usage                  *cost.Usage
	text                   int  // text bytes seen, held or not
	over                   bool // past limit: text let go of
	logprobs               bool // a chunk carried logprobs: not rebuilt
}

type choice struct {
	index  int64
	text   []byte
	finish string
}

var dataPrefix = []byte("data: ")

// Add copies one chunk, SSE framed, and folds it into the answer. A usage
// chunk the client did not ask for (Upstream asked for it) is kept back. An
// error event from the provider ends the stream with a 502.
func (s *stream) Add(dst, payload []byte) ([]byte, error) {
	if !gjson.ValidBytes(payload) {
		return dst, &api.Error{Status: http.StatusBadGateway, Type: api.TypeUpstream, Code: "upstream_invalid_chunk",
			Message: "provider sent a stream chunk that is not JSON"}
	}
	root := gjson.Parse(api.View(payload))
	var choices, usage gjson.Result
	root.ForEach(func(k, v gjson.Result) bool {
		switch k.Str {
		case "id":
			if s.id == "" {
				s.id = strings.Clone(v.String())
			}
		case "model":
			if s.model == "" {
				s.model = strings.Clone(v.String())
			}
		case "created":
			if s.created == 0 {
				s.created = v.Int()
			}
		case "system_fingerprint":
			if v.Type == gjson.String && s.fingerprint == "" {
				s.fingerprint = strings.Clone(v.Str)
			}
		case "choices":
			choices = v
		case "usage":
			usage = v
		}
		return true
	})
	if e := root.Get("error"); e.IsObject() {
		// The provider's message is not repeated: the gateway cannot scrub
		// it of the provider key here.
		return dst, &api.Error{Status: http.StatusBadGateway, Type: api.TypeUpstream, Code: "upstream_stream_error",
			Message: "provider failed mid-stream (" + safeWord(e.Get("type").Str) + ")"}
	}
	if usage.IsObject() {
		u := readUsage(usage)
		s.usage = &u
	}
	nchoices := 0
	choices.ForEach(func(_, c gjson.Result) bool {
		nchoices++
		s.add(c)
		return true
	})
	if nchoices == 0 && usage.IsObject() && !s.req.includeUsage {
		return dst, nil
	}
	dst = append(dst, dataPrefix...)
	dst = append(dst, payload...)
	return append(dst, "\n\n"...), nil
}

// safeWord keeps an error type to a bounded, printable word.
func safeWord(s string) string {
	if len(s) > 64 {
		s = s[:64]
	}
	for i := 0; i < len(s); i++ {
		if c := s[i]; !(c == '_' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9') {
			return "error"
		}
	}
	if s == "" {
		return "error"
	}
	return s
}

func (s *stream) add(c gjson.Result) {
	idx := c.Get("index").Int()
	var ch *choice
	for i := range s.choices {
		if s.choices[i].index == idx {
			ch = &s.choices[i]
			break
		}
	}
	if ch == nil {
		s.choices = append(s.choices, choice{index: idx})
		ch = &s.choices[len(s.choices)-1]
	}
	t := c.Get("text").Str
	s.text += len(t)
	if s.limit > 0 && s.text > s.limit && !s.over {
		s.over = true
		for i := range s.choices {
			s.choices[i].text = nil
		}
	}
	if !s.over {
		ch.text = append(ch.text, t...)
	}
	if f := c.Get("finish_reason"); f.Type == gjson.String {
		ch.finish = strings.Clone(f.Str)
	}
	if lp := c.Get("logprobs"); lp.Exists() && lp.Type != gjson.Null {
		s.logprobs = true
	}
}

// End appends [DONE] and returns the rebuilt answer: nil when it was too
// large to hold, or carried logprobs (not rebuilt: a streamed answer's
// logprobs come in pieces); an error when a choice never finished. keep
// false leaves the body unbuilt (the usage and finish reasons are still
// returned).
func (s *stream) End(dst []byte, keep bool) ([]byte, *surface.Answer, error) {
	for _, c := range s.choices {
		if c.finish == "" {
			return dst, nil, &api.Error{Status: http.StatusBadGateway, Type: api.TypeUpstream, Code: "upstream_stream_truncated",
				Message: "provider ended the stream before every choice finished"}
		}
	}
	if len(s.choices) == 0 {
		return dst, nil, &api.Error{Status: http.StatusBadGateway, Type: api.TypeUpstream, Code: "upstream_stream_truncated",
			Message: "provider ended the stream without a completion"}
	}
	dst = append(dst, "data: [DONE]\n\n"...)
	if s.over || s.logprobs {
		return dst, nil, nil
	}
	a := &surface.Answer{Model: s.model}
	if !keep {
		for _, c := range s.choices {
			a.Finish = append(a.Finish, c.finish)
		}
		if s.usage != nil {
			a.Usage = *s.usage
		} else {
			a.Usage, a.Estimated = s.Partial()
		}
		return dst, a, nil
	}
	b := make([]byte, 0, 256+s.text)
	b = append(b, `{"id":`...)
	b = api.AppendString(b, s.id)
	b = append(b, `,"object":"text_completion","created":`...)
	b = strconv.AppendInt(b, s.created, 10)
	b = append(b, `,"model":`...)
	b = api.AppendString(b, s.model)
	b = append(b, `,"choices":[`...)
	for i, c := range sortedChoices(s.choices) {
		if i > 0 {
			b = append(b, ',')
		}
		b = append(b, `{"text":`...)
		b = api.AppendString(b, api.View(c.text))
		b = append(b, `,"index":`...)
		b = strconv.AppendInt(b, c.index, 10)
		b = append(b, `,"logprobs":null,"finish_reason":`...)
		b = api.AppendString(b, c.finish)
		b = append(b, '}')
		a.Finish = append(a.Finish, c.finish)
	}
	b = append(b, ']')
	if s.usage != nil {
		a.Usage = *s.usage
		b = append(b, `,"usage":{"prompt_tokens":`...)
		b = strconv.AppendInt(b, int64(s.usage.PromptTokens), 10)
		b = append(b, `,"completion_tokens":`...)
		b = strconv.AppendInt(b, int64(s.usage.CompletionTokens), 10)
		b = append(b, `,"total_tokens":`...)
		b = strconv.AppendInt(b, int64(s.usage.PromptTokens+s.usage.CompletionTokens), 10)
		b = append(b, '}')
	} else {
		a.Usage, a.Estimated = s.Partial()
	}
	if s.fingerprint != "" {
		b = append(b, `,"system_fingerprint":`...)
		b = api.AppendString(b, s.fingerprint)
	}
	a.Body = append(b, '}')
	return dst, a, nil
}

func sortedChoices(cs []choice) []choice {
	sorted := true
	for i := 1; i < len(cs); i++ {
		if cs[i].index < cs[i-1].index {
			sorted = false
			break
		}
	}
	if sorted {
		return cs
	}
	out := append([]choice(nil), cs...)
	for i := 1; i < len(out); i++ {
		for j := i; j > 0 && out[j].index < out[j-1].index; j-- {
			out[j], out[j-1] = out[j-1], out[j]
		}
	}
	return out
}

// AppendError appends OpenAI's in-stream error event (no [DONE]: the
// answer is not complete).
func (s *stream) AppendError(dst []byte, e *api.Error) []byte {
	dst = append(dst, dataPrefix...)
	dst = e.AppendEnvelope(dst)
	return append(dst, "\n\n"...)
}

// Partial is the usage the provider reported, or an estimate from the
// prompt and the text delivered.
func (s *stream) Partial() (cost.Usage, bool) {
	if s.usage != nil {
		return *s.usage, false
	}
	return cost.Usage{PromptTokens: cost.EstimateTokensOfLen(s.req.promptBytes), CompletionTokens: cost.EstimateTokensOfLen(s.text)}, true
}

// Overflowed reports that the text outgrew the capture limit.
func (s *stream) Overflowed() bool { return s.over }
