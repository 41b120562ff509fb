package simulated

import (
	"context"
	"net/http"
	"strconv"
	"time"

	"github.com/edge-agent/edge-agent/internal/api"
)

// writeOpenAI answers with a chat.completion object.
func (x *exchange) writeOpenAI(w http.ResponseWriter, s *Server) {
	req := &x.req
	o := append(x.out[:0], `{"id":"chatcmpl-sim-`...)
	o = appendHex(o, req.id)
	o = append(o, `","object":"chat.completion","created":`...)
	o = strconv.AppendInt(o, time.Now().Unix(), 10)
	o = append(o, `,"model":`...)
	o = api.AppendString(o, req.model)
	o = append(o, `,"choices":[`...)
	completion := 0
	for i := range req.n {
		if i > 0 {
			o = append(o, ',')
		}
		o = append(o, `{"index":`...)
		o = strconv.AppendInt(o, int64(i), 10)
		o = append(o, `,"message":{"role":"assistant","content":`...)
		if req.tool != "" {
			completion += x.buildArgs()
			o = append(o, `null,"tool_calls":[{"id":"call_sim_`...)
			o = appendHex(o, req.id+uint64(i))
			o = append(o, `","type":"function","function":{"name":`...)
			o = api.AppendString(o, req.tool)
			o = append(o, `,"arguments":`...)
			o = api.AppendString(o, api.View(x.args))
			o = append(o, `}}],"refusal":null,"annotations":[]},"logprobs":null,"finish_reason":"tool_calls"}`...)
			continue
		}
		words, truncated := x.buildText(i)
		completion += words
		o = api.AppendString(o, api.View(x.text))
		o = append(o, `,"refusal":null,"annotations":[]},"logprobs":null,"finish_reason":`...)
		o = append(o, openAIFinish(truncated)...)
		o = append(o, '}')
	}
	o = append(o, `],"usage":`...)
	o = appendOpenAIUsage(o, req, completion)
	o = append(o, `,"service_tier":"default","system_fingerprint":"fp_sim"}`...)
	o = append(o, '\n')
	x.out = o

	h := w.Header()
	h["Content-Type"] = s.ctJSON
	if req.magic&magicCutStream != 0 {
		h.Set("Content-Length", strconv.Itoa(len(o)))
		_, _ = w.Write(o[:len(o)/2])
		_ = http.NewResponseController(w).Flush()
		panic(http.ErrAbortHandler)
	}
	if req.magic&magicStreamError != 0 {
		s.writeError(w, dialectOpenAI, errServer())
		return
	}
	// net/http adds Content-Length itself when the body fits its buffer.
	_, _ = w.Write(o)
}

func openAIFinish(truncated bool) string {
	if truncated {
		return `"length"`
	}
	return `"stop"`
}

// appendOpenAIUsage writes OpenAI's usage: SIM_CACHE_READ_<n> tokens are
// reported as cached_tokens, inside prompt_tokens as OpenAI counts them
// (prompt_tokens grows to hold them).
func appendOpenAIUsage(o []byte, req *request, completion int) []byte {
	prompt := max(req.promptTokens, req.cacheRead)
	o = append(o, `{"prompt_tokens":`...)
	o = strconv.AppendInt(o, int64(prompt), 10)
	o = append(o, `,"completion_tokens":`...)
	o = strconv.AppendInt(o, int64(completion), 10)
	o = append(o, `,"total_tokens":`...)
	o = strconv.AppendInt(o, int64(prompt+completion), 10)
	o = append(o, `,"prompt_tokens_details":{"cached_tokens":`...)
	o = strconv.AppendInt(o, int64(req.cacheRead), 10)
	return append(o, `,"audio_tokens":0},"completion_tokens_details":{"reasoning_tokens":0,"audio_tokens":0,"accepted_prediction_tokens":0,"rejected_prediction_tokens":0}}`...)
}

// streamOpenAI answers with chat.completion.chunk events. Choices are sent
// one after the other, which clients handle like interleaved ones since
// every delta names its choice index.
func (x *exchange) streamOpenAI(ctx context.Context, w http.ResponseWriter, s *Server) {
	req := &x.req
	st := x.newStream(ctx, w, s)

	// Every chunk starts the same way; build that prefix once.
	prefix := append(x.prefix[:0], `data: {"id":"chatcmpl-sim-`...)
	prefix = appendHex(prefix, req.id)
	prefix = append(prefix, `","object":"chat.completion.chunk","created":`...)
	prefix = strconv.AppendInt(prefix, time.Now().Unix(), 10)
	prefix = append(prefix, `,"model":`...)
	prefix = api.AppendString(prefix, req.model)
	prefix = append(prefix, `,"system_fingerprint":"fp_sim","choices":[`...)
	x.prefix = prefix

	end := `]}` + "\n\n"
	if req.includeUsage {
		end = `],"usage":null}` + "\n\n"
	}
	open := func(i int) []byte {
		o := append(x.out[:0], prefix...)
		o = append(o, `{"index":`...)
		return strconv.AppendInt(o, int64(i), 10)
	}
	send := func(o []byte, content bool) bool {
		x.out = o
		return st.send(o, content)
	}

	completion := 0
	for i := range req.n {
		if req.tool != "" {
			completion += x.buildArgs()
			o := open(i)
			o = append(o, `,"delta":{"role":"assistant","content":null,"tool_calls":[{"index":0,"id":"call_sim_`...)
			o = appendHex(o, req.id+uint64(i))
			o = append(o, `","type":"function","function":{"name":`...)
			o = api.AppendString(o, req.tool)
			o = append(o, `,"arguments":""}}],"refusal":null},"logprobs":null,"finish_reason":null}`...)
			if !send(append(o, end...), false) {
				return
			}
			if i == 0 && req.magic&magicStall != 0 {
				stall(&st)
				return
			}
			for _, piece := range x.argPieces() {
				if piece == "" {
					continue
				}
				o := open(i)
				o = append(o, `,"delta":{"tool_calls":[{"index":0,"function":{"arguments":`...)
				o = api.AppendString(o, piece)
				o = append(o, `}}]},"logprobs":null,"finish_reason":null}`...)
				if !send(append(o, end...), true) {
					return
				}
				if x.faultDue(&st, false) {
					x.openAIFault(&st)
					return
				}
			}
			o = open(i)
			o = append(o, `,"delta":{},"logprobs":null,"finish_reason":"tool_calls"}`...)
			if !send(append(o, end...), false) {
				return
			}
			continue
		}

		words, truncated := x.buildText(i)
		completion += words
		o := open(i)
		o = append(o, `,"delta":{"role":"assistant","content":"","refusal":null},"logprobs":null,"finish_reason":null}`...)
		if !send(append(o, end...), false) {
			return
		}
		if i == 0 && req.magic&magicStall != 0 {
			stall(&st)
			return
		}
		for k := range x.chunkCount() {
			o := open(i)
			o = append(o, `,"delta":{"content":`...)
			o = api.AppendString(o, x.chunk(k))
			o = append(o, `},"logprobs":null,"finish_reason":null}`...)
			if !send(append(o, end...), true) {
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
		o = open(i)
		o = append(o, `,"delta":{},"logprobs":null,"finish_reason":`...)
		o = append(o, openAIFinish(truncated)...)
		o = append(o, '}')
		if !send(append(o, end...), false) {
			return
		}
	}
	if req.includeUsage {
		o := append(x.out[:0], prefix...)
		o = append(o, `],"usage":`...)
		o = appendOpenAIUsage(o, req, completion)
		o = append(o, "}\n\n"...)
		if !send(o, false) {
			return
		}
	}
	send(append(x.out[:0], "data: [DONE]\n\n"...), false)
}

// openAIFault ends a stream the way SIM_CUT_STREAM or SIM_STREAM_ERROR ask.
func (x *exchange) openAIFault(st *stream) {
	if x.req.magic&magicCutStream != 0 {
		cut(st)
	}
	o := append(x.out[:0], "data: "...)
	o = (&simError{kind: kindServer, msg: "The server had an error while processing your request (simulated stream error)."}).appendBody(o, dialectOpenAI)
	o = append(o, "\n\n"...)
	x.out = o
	st.send(o, false)
}
