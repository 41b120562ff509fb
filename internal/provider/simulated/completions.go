package simulated

import (
	"context"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/tidwall/gjson"
	"github.com/zeebo/xxh3"

	"github.com/edge-agent/edge-agent/internal/api"
)

// defaultCompletionTokens is the legacy API's max_tokens default.
const defaultCompletionTokens = 16

// completionsRequest is what the simulated provider reads of a legacy
// completions request; its strings point into the request body.
type completionsRequest struct {
	prompts []gjson.Result
	echo    bool
}

// completions answers POST /v1/completions (the legacy API) as OpenAI,
// vLLM and Ollama do: a text_completion with choices[].text, or its chunk
// stream ending in [DONE]. Each prompt gets n choices, indexed prompt*n +
// choice; the text is the chat answer's (the same magic words apply).
// Counted in Calls.
func (s *Server) completions(w http.ResponseWriter, r *http.Request) {
	d := dialectOpenAI
	if r.Method != http.MethodPost {
		w.Header().Set("Allow", "POST")
		s.writeError(w, d, &simError{kind: kindMethod, msg: "Method " + r.Method + " is not allowed on " + r.URL.Path})
		return
	}
	s.calls.Add(1)
	c := s.cfg.Load()
	x := s.pool.Get().(*exchange)
	defer s.release(x)
	body, serr := x.readBody(r.Body, r.ContentLength)
	if serr != nil {
		s.writeError(w, d, serr)
		return
	}
	s.record(r, body)
	if c.apiKey != nil && !authorized(r.Header, d, c.apiKey) {
		s.writeError(w, d, errUnauthorized(d))
		return
	}
	cr, serr := x.parseCompletions(body)
	if serr != nil {
		s.writeError(w, d, serr)
		return
	}
	req := &x.req
	if err := s.fault(c, req); err != nil {
		s.writeError(w, d, err)
		return
	}
	ctx := r.Context()
	delay := req.slow
	if delay < 0 {
		delay = s.ttft(c)
	}
	if !sleep(ctx, delay) {
		return
	}
	x.c = c
	if req.stream {
		x.streamCompletions(ctx, w, s, cr)
		return
	}
	x.writeCompletions(w, s, cr)
}

func (x *exchange) parseCompletions(body []byte) (*completionsRequest, *simError) {
	js := api.View(body)
	if !gjson.Valid(js) {
		return nil, &simError{kind: kindBadRequest, msg: "We could not parse the JSON body of your request. The OpenAI API expects a JSON payload, but what was sent was not valid JSON."}
	}
	root := gjson.Parse(js)
	req := &x.req
	*req = request{n: 1, words: -1, slow: -1, id: xxh3.HashString(js), maxTokens: defaultCompletionTokens}
	cr := &completionsRequest{}
	var prompt gjson.Result
	root.ForEach(func(k, v gjson.Result) bool {
		switch k.Str {
		case "model":
			req.model = v.Str
		case "prompt":
			prompt = v
		case "stream":
			req.stream = v.Type == gjson.True
		case "stream_options":
			req.includeUsage = v.Get("include_usage").Type == gjson.True
		case "max_tokens":
			if v.Type == gjson.Number {
				req.maxTokens = v.Int()
			}
		case "n":
			if v.Type == gjson.Number {
				req.n = int(v.Int())
			}
		case "echo":
			cr.echo = v.Type == gjson.True
		}
		return true
	})
	switch {
	case req.model == "":
		return nil, &simError{kind: kindBadRequest, msg: "you must provide a model parameter"}
	case !prompt.Exists():
		return nil, &simError{kind: kindBadRequest, param: "prompt", code: "missing_required_parameter", msg: "Missing required parameter: 'prompt'."}
	case req.n < 1 || req.n > 128:
		return nil, &simError{kind: kindBadRequest, param: "n", code: "integer_out_of_range", msg: "Invalid 'n': integer must be between 1 and 128."}
	case req.maxTokens < 0:
		return nil, &simError{kind: kindBadRequest, param: "max_tokens", code: "integer_below_min_value", msg: "Invalid 'max_tokens': integer below minimum value."}
	case prompt.Type == gjson.String || prompt.IsArray() && prompt.Get("0").Type == gjson.Number:
		cr.prompts = []gjson.Result{prompt}
	case prompt.IsArray():
		cr.prompts = prompt.Array()
	default:
		return nil, &simError{kind: kindBadRequest, param: "prompt", code: "invalid_type", msg: "Invalid type for 'prompt': expected a string, an array of strings or token arrays."}
	}
	if len(cr.prompts) == 0 {
		return nil, &simError{kind: kindBadRequest, param: "prompt", code: "empty_array", msg: "Invalid 'prompt': empty array."}
	}
	for _, p := range cr.prompts {
		if p.IsArray() {
			req.promptTokens += strings.Count(p.Raw, ",") + 1
			continue
		}
		req.promptTokens += max(1, (len(p.Str)+3)/4)
		if strings.Contains(p.Str, "SIM_") {
			req.scanMagic(p.Str)
		}
	}
	return cr, nil
}

// usePrompt points the answer builder at prompt p.
func (x *exchange) usePrompt(p gjson.Result) {
	x.req.prompt = p.Str
	x.req.seed = xxh3.HashString(p.Raw)
}

func (x *exchange) writeCompletions(w http.ResponseWriter, s *Server, cr *completionsRequest) {
	req := &x.req
	o := append(x.out[:0], `{"id":"cmpl-sim-`...)
	o = appendHex(o, req.id)
	o = append(o, `","object":"text_completion","created":`...)
	o = strconv.AppendInt(o, time.Now().Unix(), 10)
	o = append(o, `,"model":`...)
	o = api.AppendString(o, req.model)
	o = append(o, `,"choices":[`...)
	completion := 0
	for pi, p := range cr.prompts {
		x.usePrompt(p)
		for i := range req.n {
			if pi > 0 || i > 0 {
				o = append(o, ',')
			}
			words, truncated := x.buildText(i)
			completion += words
			o = append(o, `{"text":`...)
			text := api.View(x.text)
			if cr.echo {
				text = p.Str + text
			}
			o = api.AppendString(o, text)
			o = append(o, `,"index":`...)
			o = strconv.AppendInt(o, int64(pi*req.n+i), 10)
			o = append(o, `,"logprobs":null,"finish_reason":`...)
			o = append(o, openAIFinish(truncated)...)
			o = append(o, '}')
		}
	}
	o = append(o, `],"usage":`...)
	o = appendCompletionsUsage(o, req.promptTokens, completion)
	o = append(o, `,"system_fingerprint":"fp_sim"}`...)
	o = append(o, '\n')
	x.out = o
	h := w.Header()
	h["Content-Type"] = s.ctJSON
	_, _ = w.Write(o)
}

func appendCompletionsUsage(o []byte, prompt, completion int) []byte {
	o = append(o, `{"prompt_tokens":`...)
	o = strconv.AppendInt(o, int64(prompt), 10)
	o = append(o, `,"completion_tokens":`...)
	o = strconv.AppendInt(o, int64(completion), 10)
	o = append(o, `,"total_tokens":`...)
	o = strconv.AppendInt(o, int64(prompt+completion), 10)
	return append(o, '}')
}

// streamCompletions answers with text_completion chunks: the text a few
// words an event, a last event of each choice with its finish_reason, a
// usage chunk with no choices when stream_options.include_usage asked for
// it, and [DONE].
func (x *exchange) streamCompletions(ctx context.Context, w http.ResponseWriter, s *Server, cr *completionsRequest) {
	req := &x.req
	st := x.newStream(ctx, w, s)
	prefix := append(x.prefix[:0], `data: {"id":"cmpl-sim-`...)
	prefix = appendHex(prefix, req.id)
	prefix = append(prefix, `","object":"text_completion","created":`...)
	prefix = strconv.AppendInt(prefix, time.Now().Unix(), 10)
	prefix = append(prefix, `,"model":`...)
	prefix = api.AppendString(prefix, req.model)
	prefix = append(prefix, `,"system_fingerprint":"fp_sim","choices":[`...)
	x.prefix = prefix
	event := func(text string, index int, finish string) []byte {
		o := append(x.out[:0], prefix...)
		o = append(o, `{"text":`...)
		o = api.AppendString(o, text)
		o = append(o, `,"index":`...)
		o = strconv.AppendInt(o, int64(index), 10)
		o = append(o, `,"logprobs":null,"finish_reason":`...)
		o = append(o, finish...)
		o = append(o, "}]}\n\n"...)
		x.out = o
		return o
	}
	completion := 0
	for pi, p := range cr.prompts {
		x.usePrompt(p)
		for i := range req.n {
			index := pi*req.n + i
			words, truncated := x.buildText(i)
			completion += words
			if cr.echo && !st.send(event(p.Str, index, "null"), false) {
				return
			}
			if index == 0 && req.magic&magicStall != 0 {
				stall(&st)
				return
			}
			for k := range x.chunkCount() {
				if !st.send(event(x.chunk(k), index, "null"), true) {
					return
				}
				if x.faultDue(&st, false) {
					x.openAIFault(&st)
					return
				}
			}
			if x.faultDue(&st, true) {
				x.openAIFault(&st)
				return
			}
			if !st.send(event("", index, openAIFinish(truncated)), false) {
				return
			}
		}
	}
	if req.includeUsage {
		o := append(x.out[:0], prefix...)
		o = append(o, `],"usage":`...)
		o = appendCompletionsUsage(o, req.promptTokens, completion)
		o = append(o, "}\n\n"...)
		x.out = o
		if !st.send(o, false) {
			return
		}
	}
	st.send(append(x.out[:0], "data: [DONE]\n\n"...), false)
}
