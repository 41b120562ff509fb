package simulated

import (
	"context"
	"net/http"
	"strconv"

	"github.com/edge-agent/edge-agent/internal/api"
)

func anthropicStop(truncated bool) string {
	if truncated {
		return `"max_tokens"`
	}
	return `"end_turn"`
}

// appendAnthropicHead appends the start of a message object, up to the
// opening of its content array.
func (x *exchange) appendAnthropicHead(o []byte) []byte {
	o = append(o, `{"id":"msg_sim_`...)
	o = appendHex(o, x.req.id)
	o = append(o, `","type":"message","role":"assistant","model":`...)
	o = api.AppendString(o, x.req.model)
	return append(o, `,"content":[`...)
}

func (x *exchange) appendToolUse(o []byte, input bool) []byte {
	o = append(o, `{"type":"tool_use","id":"toolu_sim_`...)
	o = appendHex(o, x.req.id)
	o = append(o, `","name":`...)
	o = api.AppendString(o, x.req.tool)
	o = append(o, `,"input":`...)
	if input {
		return append(append(o, x.args...), '}')
	}
	return append(o, "{}}"...)
}

// appendAnthropicUsage writes Anthropic's usage: the prompt-cache tokens
// of SIM_CACHE_READ_<n> and SIM_CACHE_WRITE_<n> come on top of
// input_tokens, as Anthropic counts them.
func appendAnthropicUsage(o []byte, req *request, output int) []byte {
	o = append(o, `{"input_tokens":`...)
	o = strconv.AppendInt(o, int64(req.promptTokens), 10)
	o = append(o, `,"cache_creation_input_tokens":`...)
	o = strconv.AppendInt(o, int64(req.cacheWrite), 10)
	o = append(o, `,"cache_read_input_tokens":`...)
	o = strconv.AppendInt(o, int64(req.cacheRead), 10)
	o = append(o, `,"output_tokens":`...)
	o = strconv.AppendInt(o, int64(output), 10)
	return append(o, '}')
}

// writeAnthropic answers with a message object.
func (x *exchange) writeAnthropic(w http.ResponseWriter, s *Server) {
	req := &x.req
	o := x.appendAnthropicHead(x.out[:0])
	var output int
	stop := `"tool_use"`
	if req.tool != "" {
		output = x.buildArgs()
		o = x.appendToolUse(o, true)
	} else {
		var truncated bool
		output, truncated = x.buildText(0)
		stop = anthropicStop(truncated)
		o = append(o, `{"type":"text","text":`...)
		o = api.AppendString(o, api.View(x.text))
		o = append(o, '}')
	}
	o = append(o, `],"stop_reason":`...)
	o = append(o, stop...)
	o = append(o, `,"stop_sequence":null,"usage":`...)
	o = appendAnthropicUsage(o, req, output)
	o = append(o, "}\n"...)
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
		s.writeError(w, dialectAnthropic, &simError{kind: kindOverloaded, msg: "Overloaded"})
		return
	}
	_, _ = w.Write(o)
}

// streamAnthropic answers with the Messages event sequence: message_start,
// content_block_start, ping, content_block_delta..., content_block_stop,
// message_delta, message_stop.
func (x *exchange) streamAnthropic(ctx context.Context, w http.ResponseWriter, s *Server) {
	req := &x.req
	st := x.newStream(ctx, w, s)
	send := func(o []byte, content bool) bool {
		x.out = o
		return st.send(o, content)
	}

	o := append(x.out[:0], "event: message_start\ndata: {\"type\":\"message_start\",\"message\":"...)
	o = x.appendAnthropicHead(o)
	o = append(o, `],"stop_reason":null,"stop_sequence":null,"usage":`...)
	o = appendAnthropicUsage(o, req, 1)
	if !send(append(o, "}}\n\n"...), false) {
		return
	}
	if req.magic&magicStall != 0 {
		stall(&st)
		return
	}

	var output int
	var truncated bool
	o = append(x.out[:0], "event: content_block_start\ndata: {\"type\":\"content_block_start\",\"index\":0,\"content_block\":"...)
	if req.tool != "" {
		output = x.buildArgs()
		o = x.appendToolUse(o, false)
	} else {
		output, truncated = x.buildText(0)
		o = append(o, `{"type":"text","text":""}`...)
	}
	if !send(append(o, "}\n\n"...), false) {
		return
	}
	if !send(append(x.out[:0], "event: ping\ndata: {\"type\": \"ping\"}\n\n"...), false) {
		return
	}

	delta := func(kind, field, v string) bool {
		o := append(x.out[:0], "event: content_block_delta\ndata: {\"type\":\"content_block_delta\",\"index\":0,\"delta\":{\"type\":\""...)
		o = append(o, kind...)
		o = append(o, `","`...)
		o = append(o, field...)
		o = append(o, `":`...)
		o = api.AppendString(o, v)
		return send(append(o, "}}\n\n"...), true)
	}
	stop := `"tool_use"`
	if req.tool != "" {
		// Anthropic opens a tool input with an empty piece.
		if !delta("input_json_delta", "partial_json", "") {
			return
		}
		for _, piece := range x.argPieces() {
			if piece == "" {
				continue
			}
			if !delta("input_json_delta", "partial_json", piece) {
				return
			}
			if x.faultDue(&st, false) {
				x.anthropicFault(&st)
				return
			}
		}
	} else {
		stop = anthropicStop(truncated)
		for k := range x.chunkCount() {
			if !delta("text_delta", "text", x.chunk(k)) {
				return
			}
			if x.faultDue(&st, false) {
				x.anthropicFault(&st)
				return
			}
		}
	}
	if x.faultDue(&st, true) {
		x.anthropicFault(&st)
		return
	}

	if !send(append(x.out[:0], "event: content_block_stop\ndata: {\"type\":\"content_block_stop\",\"index\":0}\n\n"...), false) {
		return
	}
	o = append(x.out[:0], "event: message_delta\ndata: {\"type\":\"message_delta\",\"delta\":{\"stop_reason\":"...)
	o = append(o, stop...)
	o = append(o, `,"stop_sequence":null},"usage":{"output_tokens":`...)
	o = strconv.AppendInt(o, int64(output), 10)
	if !send(append(o, "}}\n\n"...), false) {
		return
	}
	send(append(x.out[:0], "event: message_stop\ndata: {\"type\":\"message_stop\"}\n\n"...), false)
}

// anthropicFault ends a stream the way SIM_CUT_STREAM or SIM_STREAM_ERROR ask.
func (x *exchange) anthropicFault(st *stream) {
	if x.req.magic&magicCutStream != 0 {
		cut(st)
	}
	o := append(x.out[:0], "event: error\ndata: "...)
	o = (&simError{kind: kindOverloaded, msg: "Overloaded"}).appendBody(o, dialectAnthropic)
	o = append(o, "\n\n"...)
	x.out = o
	st.send(o, false)
}
